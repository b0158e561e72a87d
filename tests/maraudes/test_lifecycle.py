"""A shift left open closes itself; raw fixes are purged, coverage is kept."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from maraudes.fixes import Fix
from maraudes.models import Position, Shift
from maraudes.services import positions_purge, shifts_close_stale
from tests.factories import ShiftFactory, ZoneFactory, l93, tile
from tests.support.paris import to_wgs84
from zones.models import ZoneDayCoverage
from zones.services import track_ingest

pytestmark = pytest.mark.django_db


def test_a_shift_open_too_long_is_closed_at_its_last_fix():
    now = timezone.now()
    shift = ShiftFactory(started_at=now - timedelta(hours=13))
    lon, lat = to_wgs84().transform(l93().x, l93().y)
    last = now - timedelta(hours=10)
    track_ingest(shift=shift, fixes=[Fix(t=last, lon=lon, lat=lat, accuracy=5)])
    fresh = ShiftFactory(started_at=now - timedelta(hours=2))
    closed = shifts_close_stale(now=now)
    assert [s.pk for s in closed] == [shift.pk]
    shift.refresh_from_db()
    assert shift.ended_at == last and shift.closed_automatically
    assert Shift.objects.get(pk=fresh.pk).ended_at is None


def test_the_close_command_says_how_many(settings):
    ShiftFactory(started_at=timezone.now() - timedelta(hours=30))
    out = io.StringIO()
    call_command("shifts_close_stale", stdout=out)
    assert out.getvalue().startswith("1 maraude(s) fermée(s)")


def test_old_fixes_are_purged_but_coverage_stays():
    ZoneFactory(geom=tile(0, 0))
    now = timezone.now()
    old = ShiftFactory(started_at=now - timedelta(days=70))
    lon, lat = to_wgs84().transform(l93(500).x, l93(0, 500).y)
    track_ingest(
        shift=old,
        fixes=[Fix(t=old.started_at + timedelta(minutes=5), lon=lon, lat=lat, accuracy=5)],
    )
    recent = ShiftFactory(started_at=now - timedelta(days=2))
    track_ingest(
        shift=recent,
        fixes=[Fix(t=recent.started_at + timedelta(minutes=5), lon=lon, lat=lat, accuracy=5)],
    )
    assert positions_purge(now=now) == 1
    assert list(Position.objects.values_list("shift_id", flat=True)) == [recent.pk]
    assert ZoneDayCoverage.objects.count() == 2
    # A rebuild afterwards keeps the purged days' coverage.
    call_command("coverage_rebuild", stdout=io.StringIO())
    assert ZoneDayCoverage.objects.count() == 2
