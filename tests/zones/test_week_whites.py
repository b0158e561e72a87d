"""Weekly white rows kept up to the horizon, the day after the latest covered service day
(zones.services, "Rolling weekly white zones"), and their readers when a row is missing
(zones.selectors, zones.reports)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry
from django.db import connection

from tests.factories import ORIGIN_X, ORIGIN_Y, TeamFactory, ZoneFactory, tile
from tests.support.reports import paris, walk
from zones import services
from zones.models import WEEK_DAYS, Zone, ZoneWeekWhite
from zones.reports import IsoWeek, weekly_report
from zones.selectors import zones_coverage

pytestmark = pytest.mark.django_db

NIGHT = date(2026, 11, 17)


def day(n: int) -> date:
    return NIGHT + timedelta(days=n)


def walk_night(zone: Zone, n: int, *, dy: float = 500.0):
    """A ten-minute walk in `zone` (a tile) on the night NIGHT + n."""
    x0, y0 = zone.geom.extent[:2]
    return walk(TeamFactory(), start=paris(2026, 11, 17 + n, 22), x=x0 + 200, y=y0 + dy, n=61)


def kept(zone: Zone) -> set[date]:
    return set(ZoneWeekWhite.objects.filter(zone=zone).values_list("last_day", flat=True))


def exact_white_m2(zone: Zone, last_day: date) -> float:
    """The zone minus the union of its zone-days in the week ending on `last_day`."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT ST_Area(COALESCE(ST_Difference(z.geom, (
                        SELECT ST_Union(c.geom) FROM zones_zonedaycoverage c
                        WHERE c.zone_id = z.id AND c.day BETWEEN %s AND %s)), z.geom))
               FROM zones_zone z WHERE z.id = %s""",
            [last_day - timedelta(days=WEEK_DAYS - 1), last_day, zone.pk],
        )
        return cursor.fetchone()[0]


def assert_rows_exact(zone: Zone) -> None:
    for row in ZoneWeekWhite.objects.filter(zone=zone):
        assert row.white_m2 == pytest.approx(exact_white_m2(zone, row.last_day), abs=1.0), (
            row.last_day
        )


@pytest.fixture
def zone_a():
    return ZoneFactory(geom=tile(0, 0))


@pytest.fixture
def zone_b():
    return ZoneFactory(geom=tile(1, 0))


def test_a_night_keeps_its_week_and_the_next_days_not_the_six_after(zone_a):
    walk_night(zone_a, 0)

    assert kept(zone_a) == {day(0), day(1)}
    assert_rows_exact(zone_a)
    assert exact_white_m2(zone_a, day(0)) < zone_a.geom.area - 1e5  # the walk is taken out


def test_a_later_night_moves_the_horizon_and_is_taken_out_of_the_rows_kept(zone_a):
    walk_night(zone_a, 0)
    walk_night(zone_a, 2, dy=800.0)

    assert kept(zone_a) == {day(0), day(1), day(2), day(3)}
    assert_rows_exact(zone_a)


def test_a_late_batch_of_an_earlier_night_reaches_every_row_kept_that_holds_it(zone_a):
    walk_night(zone_a, 2)
    walk_night(zone_a, 0, dy=800.0)  # arrives after the later night

    assert kept(zone_a) == {day(0), day(1), day(2), day(3)}
    assert_rows_exact(zone_a)


def test_extend_fills_the_horizon_of_the_zones_not_walked_tonight(zone_a, zone_b):
    walk_night(zone_a, 0)
    walk_night(zone_b, 1)
    assert kept(zone_a) == {day(0), day(1)}

    assert services.week_whites_extend() == 1

    assert kept(zone_a) == {day(0), day(1), day(2)}
    assert kept(zone_b) == {day(1), day(2)}
    assert_rows_exact(zone_a)
    assert_rows_exact(zone_b)
    assert services.week_whites_extend() == 0


def test_extend_fills_the_last_seven_weeks_that_hold_coverage_and_only_those(zone_a, zone_b):
    walk_night(zone_a, 0)
    walk_night(zone_a, 9)  # nothing in between; zone b never walked

    services.week_whites_extend()

    # Up to the horizon (day 10), the weeks ending on days 4 to 10 are looked at: those
    # ending on days 4 to 6 still hold night 0, those ending on days 7 and 8 hold nothing.
    assert kept(zone_a) == {day(0), day(1), day(4), day(5), day(6), day(9), day(10)}
    assert kept(zone_b) == set()
    assert_rows_exact(zone_a)


def test_the_first_batch_of_a_night_extends_the_other_zones_after_its_commit(
    zone_a, zone_b, django_capture_on_commit_callbacks
):
    walk_night(zone_a, 0)
    with django_capture_on_commit_callbacks(execute=True):
        walk_night(zone_b, 1)
        assert day(2) not in kept(zone_a)  # not before the commit

    assert day(2) in kept(zone_a)
    assert_rows_exact(zone_a)


def test_a_week_past_the_horizon_reads_as_the_row_would(zone_a, zone_b):
    walk_night(zone_a, 0)
    walk_night(zone_b, 3)
    last = day(5)  # past the horizon (day 4): no row
    assert not ZoneWeekWhite.objects.filter(last_day=last).exists()
    first = last - timedelta(days=WEEK_DAYS - 1)

    computed = {c.zone_id: c for c in zones_coverage(day_from=first, day_to=last)}
    services._week_whites_write({zone_a.pk: [last], zone_b.pk: [last]})
    read = {c.zone_id: c for c in zones_coverage(day_from=first, day_to=last)}

    assert ZoneWeekWhite.objects.filter(last_day=last).count() == 2
    for zone in (zone_a, zone_b):
        assert computed[zone.pk].covered_m2 == pytest.approx(read[zone.pk].covered_m2, abs=1.0)
        assert computed[zone.pk].white_m2 == pytest.approx(exact_white_m2(zone, last), abs=1.0)
        assert 0 < computed[zone.pk].covered_m2 < zone.geom.area


def test_the_white_part_of_a_week_past_the_horizon_is_drawn_from_the_zone_days(zone_a):
    walk_night(zone_a, 0)
    last = day(3)
    first = last - timedelta(days=WEEK_DAYS - 1)

    (row,) = zones_coverage(day_from=first, day_to=last, with_geometry=True)

    white = GEOSGeometry(row.white_geojson)
    white.srid = 4326
    white.transform(settings.SRID)
    assert white.area == pytest.approx(exact_white_m2(zone_a, last), rel=1e-3)
    assert white.area < zone_a.geom.area - 1e5


def test_the_report_of_the_week_running_reads_its_zone_days(zone_a, zone_b):
    zone_a.kind = zone_b.kind = "quartier"
    zone_a.save()
    zone_b.save()
    walk_night(zone_a, 0)  # Tuesday of 2026-W47; its Sunday is past the horizon
    report = weekly_report(week=IsoWeek(2026, 47), kind="quartier")

    rows = {row.zone_id: row for row in report.rows}
    assert rows[zone_a.pk].covered_m2 == pytest.approx(
        zone_a.geom.area - exact_white_m2(zone_a, date(2026, 11, 22)), abs=1.0
    )
    assert rows[zone_b.pk].covered_m2 == 0


def test_a_recompute_refreshes_a_row_past_the_horizon_but_creates_none(zone_a):
    walk_night(zone_a, 0)
    # A row past the horizon, as an older version kept them.
    services._week_whites_write({zone_a.pk: [day(4)]})
    shift = walk_night(zone_a, 0, dy=200.0)
    # Between that shift's fixes (every 10 s from 22:00): the shift-day is recomputed.
    start = paris(2026, 11, 17, 22, 0, 5)
    walk(shift.team, start=start, x=ORIGIN_X + 600, y=ORIGIN_Y + 350, n=3, shift=shift)

    assert kept(zone_a) == {day(0), day(1), day(4)}
    assert_rows_exact(zone_a)


def test_a_rebuild_keeps_no_row_past_the_horizon_and_recomputes_the_others(zone_a):
    walk_night(zone_a, 0)
    services._week_whites_write({zone_a.pk: [day(4)]})
    ZoneWeekWhite.objects.filter(zone=zone_a).update(geom=zone_a.geom)  # all stale

    services.coverage_rebuild()

    assert kept(zone_a) == {day(0), day(1)}
    assert_rows_exact(zone_a)
    assert exact_white_m2(zone_a, day(0)) < zone_a.geom.area - 1e5


def test_rebuilding_a_night_that_covers_no_zone_after_the_horizon(zone_a):
    walk_night(zone_a, 0)
    outside = walk(TeamFactory(), start=paris(2026, 11, 22, 22), x=ORIGIN_X - 5000, y=ORIGIN_Y)

    result = services.coverage_rebuild(day_from=day(5), day_to=day(5))

    assert result.shift_days == 1 and result.zone_days == 0
    assert outside.positions.exists()
    assert kept(zone_a) == {day(0), day(1)}
