"""The statements every batch of fixes runs are prepared once per connection and planned
generically (maraudes.db.prepared_cursor and the settings' DB_PREPARED, plan_cache_mode):
without it PostgreSQL parsed and planned them again at every batch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from maraudes.fixes import Fix
from tests.factories import ShiftFactory, ZoneFactory, l93, tile
from tests.support.paris import to_wgs84
from zones.services import track_ingest


def walk(start: int, n: int) -> list[Fix]:
    wgs84 = to_wgs84()
    now = timezone.now()
    fixes = []
    for i in range(start, start + n):
        lon, lat = wgs84.transform(*l93(100 + 10 * i, 300).coords)
        fixes.append(Fix(t=now - timedelta(seconds=900 - 10 * i), lon=lon, lat=lat, accuracy=5))
    return fixes


@pytest.mark.django_db
def test_the_coverage_statements_are_prepared_once_and_planned_generically():
    ZoneFactory(geom=tile(0, 0))
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))

    for batch in range(3):
        track_ingest(shift=shift, fixes=walk(5 * batch, 5))

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    pieces = [row for row in prepared if "INSERT INTO zones_coveragepiece" in row[0]]
    neighbours = [row for row in prepared if "maraudes_coveragebacklog" in row[0]]
    locks = [row for row in prepared if "pg_advisory_xact_lock" in row[0]]
    assert len(pieces) == 1  # prepared once, run three times
    assert pieces[0][1] >= 3 and pieces[0][2] == 0  # never planned again
    assert len(neighbours) == 1 and neighbours[0][1] >= 3 and neighbours[0][2] == 0
    assert len(locks) == 2  # the shifts', the zones'
    assert all(custom == 0 for _statement, _generic, custom in locks)


def test_the_settings_prepare_only_on_request():
    from django.conf import settings

    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["prepare_threshold"] >= 2**31 - 1  # prepare=True only, never the ORM's
    assert "plan_cache_mode=force_generic_plan" in options["options"]
    assert "jit=off" in options["options"]
