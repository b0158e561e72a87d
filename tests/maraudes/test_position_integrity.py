"""A position always names a shift that exists (migration 0005: checked once per statement,
as a foreign key would check each row)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from maraudes.fixes import Fix
from maraudes.models import Position, Shift
from maraudes.services import positions_record
from tests.factories import ShiftFactory, l93
from tests.support.paris import to_wgs84

pytestmark = pytest.mark.django_db

_INSERT = """INSERT INTO maraudes_position (shift_id, recorded_at, received_at, point, accuracy,
             source) SELECT s, now() - g * interval '1 s', now(),
             ST_SetSRID(ST_MakePoint(651000, 6862000), 2154), 5, 'api'
             FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(s, g)"""


def _refused(sql: str, params=None, *, match: str) -> None:
    """`sql` fails with an IntegrityError saying `match`, and its transaction rolls back."""
    with (
        pytest.raises(IntegrityError, match=match),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def _fixes(shift: Shift, count: int) -> list[Fix]:
    lon, lat = to_wgs84().transform(l93().x, l93().y)
    return [
        Fix(t=shift.started_at + timedelta(seconds=10 * i), lon=lon, lat=lat, accuracy=5, index=i)
        for i in range(count)
    ]


def test_a_statement_naming_a_missing_shift_fails_whole():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    _refused(_INSERT, [[shift.pk, shift.pk + 1000]], match="does not exist")
    assert Position.objects.count() == 0


def test_an_update_to_a_missing_shift_fails():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 2))
    with pytest.raises(IntegrityError), transaction.atomic():
        Position.objects.update(shift_id=shift.pk + 1000)
    assert set(Position.objects.values_list("shift_id", flat=True)) == {shift.pk}


def test_positions_of_several_existing_shifts_go_in_one_statement():
    a, b = (ShiftFactory(started_at=timezone.now() - timedelta(hours=1)) for _ in range(2))
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [[a.pk, b.pk, a.pk]])
    assert Position.objects.filter(shift=a).count() == 2
    assert Position.objects.filter(shift=b).count() == 1


def test_a_shift_with_positions_cannot_be_deleted_behind_their_back():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 3))
    _refused("DELETE FROM maraudes_shift WHERE id = %s", [shift.pk], match="still has positions")
    assert Position.objects.filter(shift=shift).count() == 3


def test_deleting_a_shift_through_django_takes_its_positions_with_it():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    other = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 3))
    positions_record(shift=other, fixes=_fixes(other, 1))
    shift.delete()
    assert list(Position.objects.values_list("shift_id", flat=True)) == [other.pk]


def test_ending_a_shift_with_positions_is_an_update_that_passes():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 2))
    Shift.objects.filter(pk=shift.pk).update(ended_at=timezone.now())
    assert Position.objects.filter(shift=shift).count() == 2


@pytest.mark.django_db(transaction=True)
def test_storing_positions_holds_their_shift_until_commit():
    """As a foreign key does: a delete of the shift waits for the batch, then fails."""
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:
        other.execute("SET lock_timeout = '300ms'")
        with transaction.atomic():
            positions_record(shift=shift, fixes=_fixes(shift, 2))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM maraudes_shift WHERE id = %s", [shift.pk])
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            other.execute("DELETE FROM maraudes_shift WHERE id = %s", [shift.pk])
    finally:
        other.close()
    assert Position.objects.filter(shift=shift).count() == 2


# Committed rows: TRUNCATE refuses a table with deferred checks pending in the transaction.
@pytest.mark.django_db(transaction=True)
def test_the_shifts_cannot_be_emptied_while_positions_remain():
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 1))
    _refused("TRUNCATE maraudes_shift CASCADE", match="positions remain")
    assert Position.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_emptying_shifts_and_positions_together_passes():
    """As Django's flush between tests does."""
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    positions_record(shift=shift, fixes=_fixes(shift, 1))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE maraudes_position, maraudes_shift CASCADE")
    assert not Shift.objects.exists() and not Position.objects.exists()
