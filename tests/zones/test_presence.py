"""Hours of presence kept as fixes arrive (zones.presence, zones.models.ZonePresence).

The intervals are checked as a pure function; the rows through zones.services.track_ingest
(the append and recompute paths) and coverage_rebuild, against a reference written out
plainly below from the fixes as they were sent (shapely, zoneinfo; none of the project's
presence code).
"""

from __future__ import annotations

import importlib
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import shapely
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from shapely.geometry import Point

from maraudes.fixes import Fix
from maraudes.models import Shift, TeamMode
from maraudes.services import shift_start
from tests.factories import ORIGIN_X, ORIGIN_Y, TeamFactory, ZoneFactory, tile
from tests.support.paris import to_wgs84
from tests.support.reports import paris
from zones import presence
from zones.geometry import TrackFix
from zones.models import Zone, ZonePresence
from zones.presence import Interval, presence_add, presence_add_many, track_intervals
from zones.services import coverage_rebuild, track_ingest

PARIS = ZoneInfo("Europe/Paris")
MAX_GAP, FOOT = 120.0, 4.0


def fix(t: datetime, x: float, y: float = ORIGIN_Y + 500) -> TrackFix:
    return TrackFix(t, x, y)


# --- Intervals (pure) -----------------------------------------------------------------------


def test_consecutive_joined_fixes_give_intervals_at_their_midpoints():
    t = paris(2026, 11, 17, 21, 59, 50)
    track = [fix(t, 0), fix(t + timedelta(seconds=10), 10), fix(t + timedelta(seconds=30), 50)]

    intervals = track_intervals(track, max_gap_s=MAX_GAP, max_speed=FOOT, tz=PARIS)

    assert intervals == [
        Interval(x=5, y=ORIGIN_Y + 500, seconds=10, hour=21),
        Interval(x=30, y=ORIGIN_Y + 500, seconds=20, hour=22),
    ]


def test_gaps_jumps_and_lone_fixes_give_no_interval():
    t = paris(2026, 11, 17, 22)
    track = [
        fix(t, 0),  # lone: the next one is 121 s later
        fix(t + timedelta(seconds=121), 0),
        fix(t + timedelta(seconds=131), 41),  # 4.1 m/s on foot: a jump
        fix(t + timedelta(seconds=141), 81),  # 4 m/s: joined
    ]

    intervals = track_intervals(track, max_gap_s=MAX_GAP, max_speed=FOOT, tz=PARIS)

    assert [(i.x, i.seconds) for i in intervals] == [(61, 10)]
    assert track_intervals(track[:1], max_gap_s=MAX_GAP, max_speed=FOOT, tz=PARIS) == []
    assert track_intervals([], max_gap_s=MAX_GAP, max_speed=FOOT, tz=PARIS) == []
    # A vehicle may go faster.
    assert len(track_intervals(track, max_gap_s=MAX_GAP, max_speed=30, tz=PARIS)) == 2


def test_the_hour_is_the_local_hour_of_the_start_across_the_october_clock_change():
    # 25 October 2026: 02:30 CEST (00:30 UTC), then 02:30 CET (01:30 UTC) an hour later.
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    track = [fix(start + timedelta(minutes=m), m) for m in range(0, 121)]

    intervals = track_intervals(track, max_gap_s=MAX_GAP, max_speed=FOOT, tz=PARIS)

    hours = defaultdict(float)
    for interval in intervals:
        hours[interval.hour] += interval.seconds
    assert hours == {2: 7200.0}  # 02:00 CEST to 03:00 CET: two real hours in the 02h band


def test_many_tracks_at_once_give_the_same_intervals_as_one_by_one():
    rng = random.Random(11)
    tracks = []
    # Random walks with pauses, jumps, repeated times and the October clock change.
    for start in (datetime(2026, 10, 24, 23, 50, tzinfo=UTC), paris(2026, 11, 17, 21, 58)):
        for speed in (FOOT, 30.0):
            t, x, fixes = start, ORIGIN_X, []
            for _ in range(400):
                fixes.append(fix(t, x))
                t += timedelta(seconds=rng.choice([0, 0.25, 10, 10, 10, 60, 119.999999, 120, 121]))
                x += rng.choice([1, 5, 39.999, 40, 41, 400, 3600])
            tracks.append((fixes, speed))
    tracks.append(([], FOOT))
    tracks.append((tracks[0][0][:1], FOOT))

    many = presence.tracks_intervals(tracks, max_gap_s=MAX_GAP, tz=PARIS)

    expected = [
        (n, i)
        for n, (track, speed) in enumerate(tracks)
        for i in track_intervals(track, max_gap_s=MAX_GAP, max_speed=speed, tz=PARIS)
    ]
    assert 0 < len(expected) < sum(len(track) for track, _speed in tracks)
    got = list(
        zip(many.track.tolist(), many.x, many.y, many.seconds, many.hour.tolist(), strict=True)
    )
    assert got == [(n, i.x, i.y, i.seconds, i.hour) for n, i in expected]
    assert {i.hour for _n, i in expected} >= {1, 2, 3, 21, 22}


# --- The reference --------------------------------------------------------------------------


def ref_service_day(t: datetime) -> date:
    return (t.astimezone(PARIS).replace(tzinfo=None) - timedelta(hours=6)).date()


def ref_presence(sent: list[tuple[datetime, float, float]], *, max_speed: float) -> dict:
    """{(zone id, day, local hour): seconds} of one shift's fixes as sent (kept, unique)."""
    zones = [(z.pk, shapely.from_wkb(bytes(z.geom.wkb))) for z in Zone.objects.all()]
    by_day = defaultdict(list)
    for t, x, y in sorted(set(sent)):
        by_day[ref_service_day(t)].append((t, x, y))
    result: dict = defaultdict(float)
    for day, fixes in by_day.items():
        for (t1, x1, y1), (t2, x2, y2) in pairwise(fixes):
            dt = (t2 - t1).total_seconds()
            if not 0 < dt <= MAX_GAP or ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 > max_speed * dt:
                continue
            middle = Point((x1 + x2) / 2, (y1 + y2) / 2)
            for zone_id, polygon in zones:
                if polygon.intersects(middle):
                    result[(zone_id, day, t1.astimezone(PARIS).hour)] += dt
    return dict(result)


def stored(shift: Shift | None = None) -> dict:
    rows = ZonePresence.objects.all()
    if shift is not None:
        rows = rows.filter(shift=shift)
    return {(r.zone_id, r.day, r.hour): r.seconds for r in rows}


def assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, seconds in expected.items():
        assert got[key] == pytest.approx(seconds, abs=1e-6), key


# --- Through the services -------------------------------------------------------------------


@pytest.fixture
def zones(db):
    """Three quartier tiles in a row and an arrondissement over the first two."""
    return [
        ZoneFactory(code="1", kind="quartier", geom=tile(0, 0)),
        ZoneFactory(code="2", kind="quartier", geom=tile(1, 0)),
        ZoneFactory(code="3", kind="quartier", geom=tile(2, 0)),
        ZoneFactory(code="A", kind="arrondissement", geom=tile(0, 0, size=2000)),
    ]


def a_night(seed: int = 7) -> list[tuple[datetime, float, float]]:
    """A walk east across quartiers 1 and 2, a fix every 10 s from 23:40 to 00:19:50
    (midnight inside), with a pause of three minutes at 23:50 (a gap) and a GPS jump of
    400 m at 00:05, in Lambert-93."""
    rng = random.Random(seed)
    t, x, y = paris(2026, 11, 17, 23, 40), ORIGIN_X + 300, ORIGIN_Y + 500
    sent = []
    while t < paris(2026, 11, 18, 0, 20):
        jump = 400 if t == paris(2026, 11, 18, 0, 5) else 0
        sent.append((t, x + jump, y))
        t += timedelta(minutes=3) if t == paris(2026, 11, 17, 23, 50) else timedelta(seconds=10)
        x += rng.uniform(3, 7)
        y += rng.uniform(-3, 3)
    return sent


def send(shift: Shift, sent: list[tuple[datetime, float, float]]) -> None:
    transformer = to_wgs84()
    fixes = []
    for i, (t, x, y) in enumerate(sent):
        lon, lat = transformer.transform(x, y)
        fixes.append(Fix(t=t, lon=lon, lat=lat, accuracy=5, index=i))
    track_ingest(shift=shift, fixes=fixes)


def start(mode: str = TeamMode.FOOT, *, at: datetime | None = None) -> Shift:
    started_at = at or paris(2026, 11, 17, 20)
    return shift_start(team=TeamFactory(mode=mode), by=None, started_at=started_at).shift


def in_order(shift: Shift, sent, size: int = 30) -> None:
    for i in range(0, len(sent), size):
        send(shift, sent[i : i + size])


def test_batches_in_time_order_add_what_the_reference_counts(zones):
    shift, sent = start(), a_night()

    in_order(shift, sent)

    expected = ref_presence(sent, max_speed=FOOT)
    assert_same(stored(shift), expected)
    # The walk crosses midnight (hours 23 and 0 of one service day) and two quartiers, and
    # the arrondissement counts the seconds of both.
    assert {hour for _zone, _day, hour in expected} == {23, 0}
    assert {day for _zone, day, _hour in expected} == {date(2026, 11, 17)}
    by_zone = defaultdict(float)
    for (zone_id, _day, _hour), seconds in expected.items():
        by_zone[zone_id] += seconds
    one, two, _three, arrondissement = zones
    assert by_zone[one.pk] > 0 and by_zone[two.pk] > 0
    assert by_zone[arrondissement.pk] == pytest.approx(by_zone[one.pk] + by_zone[two.pk])


def test_the_gap_and_the_jump_do_not_count(zones):
    shift, sent = start(), a_night()

    in_order(shift, sent)

    total = sum(s for (zone_id, _d, _h), s in stored(shift).items() if zone_id == zones[3].pk)
    # From the first fix to the last, less the three-minute pause and the 10 s to and from
    # the jump.
    assert total == pytest.approx(2390 - 180 - 2 * 10, abs=1e-6)


def test_batches_out_of_order_give_what_batches_in_order_give(zones):
    night = a_night()
    ordered, shuffled = start(), start()
    in_order(ordered, night)

    batches = [night[i : i + 30] for i in range(0, len(night), 30)]
    random.Random(3).shuffle(batches)
    for batch in batches:
        send(shuffled, batch)

    assert_same(stored(shuffled), stored(ordered))
    assert_same(stored(shuffled), ref_presence(night, max_speed=FOOT))


def test_coverage_rebuild_gives_the_same_presence(zones):
    foot, vehicle = start(), start(TeamMode.VEHICLE)
    in_order(foot, a_night())
    in_order(vehicle, a_night(seed=8))
    before = stored(foot), stored(vehicle)
    # A shift-day outside the rebuilt days keeps its rows.
    other = start()
    t = paris(2026, 11, 20, 22)
    send(
        other,
        [(t + timedelta(seconds=10 * i), ORIGIN_X + 100 + i, ORIGIN_Y + 100) for i in range(5)],
    )
    kept = stored(other)
    ZonePresence.objects.filter(shift__in=[foot, vehicle]).update(seconds=1)

    coverage_rebuild(day_from=date(2026, 11, 17), day_to=date(2026, 11, 17))

    assert_same(stored(foot), before[0])
    assert_same(stored(vehicle), before[1])
    assert_same(stored(vehicle), ref_presence(a_night(seed=8), max_speed=30))
    assert stored(other) == kept and kept


def test_an_interval_counts_for_every_zone_holding_its_midpoint_border_included(zones):
    shift = start()
    border = ORIGIN_X + 1000  # between quartiers 1 and 2
    t = paris(2026, 11, 17, 22)

    presence_add(
        shift_id=shift.pk,
        day=date(2026, 11, 17),
        track=[fix(t, border - 5), fix(t + timedelta(seconds=10), border + 5)],
        max_gap_s=MAX_GAP,
        max_speed=FOOT,
    )

    one, two, _three, arrondissement = zones
    assert stored(shift) == {
        (one.pk, date(2026, 11, 17), 22): 10,
        (two.pk, date(2026, 11, 17), 22): 10,
        (arrondissement.pk, date(2026, 11, 17), 22): 10,
    }


def test_a_batch_costs_one_statement_and_none_without_an_interval(zones):
    shift = start()
    t = paris(2026, 11, 17, 22)
    track = [fix(t + timedelta(seconds=10 * i), ORIGIN_X + 100 + 10 * i) for i in range(31)]

    with CaptureQueriesContext(connection) as statements:
        presence_add(
            shift_id=shift.pk,
            day=date(2026, 11, 17),
            track=track,
            max_gap_s=MAX_GAP,
            max_speed=FOOT,
        )
        assert len(statements) == 1
        presence_add(
            shift_id=shift.pk,
            day=date(2026, 11, 17),
            track=track[:1],
            max_gap_s=MAX_GAP,
            max_speed=4,
        )
        assert len(statements) == 1
    assert sum(stored(shift).values()) == pytest.approx(2 * 300)  # quartier 1, arrondissement


def test_the_batches_of_several_shift_days_are_added_in_one_statement(zones):
    shifts = [start(), start(), start(TeamMode.VEHICLE)]
    night = a_night()
    day = date(2026, 11, 17)
    tracks = [
        [fix(t, x, y) for t, x, y in night[:40]],
        [fix(t, x + 1000, y) for t, x, y in night[40:80]],  # in quartier 2
        [fix(t, x, y) for t, x, y in night[:1]],  # no interval
    ]
    expected = {}
    for shift, track in zip(shifts, tracks, strict=True):
        with transaction.atomic():
            presence_add(shift_id=shift.pk, day=day, track=track, max_gap_s=MAX_GAP, max_speed=FOOT)
            expected[shift.pk] = stored(shift)
            transaction.set_rollback(True)

    with CaptureQueriesContext(connection) as statements:
        presence_add_many(
            [(s.pk, day, track, s.team.max_speed) for s, track in zip(shifts, tracks, strict=True)],
            max_gap_s=MAX_GAP,
        )

    assert len(statements) == 1
    for shift in shifts:
        assert_same(stored(shift), expected[shift.pk])
    assert expected[shifts[0].pk] and expected[shifts[1].pk] and not expected[shifts[2].pk]


def test_the_october_clock_change_night_counts_the_02h_band_twice(zones):
    # One fix a minute, 1 m apart, from 01:30 CEST to 02:30 CET (Sunday 25 October 2026).
    begin = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    shift = start(at=begin - timedelta(minutes=1))
    sent = [(begin + timedelta(minutes=m), ORIGIN_X + 300 + m, ORIGIN_Y + 500) for m in range(121)]

    in_order(shift, sent)

    one, _two, _three, arrondissement = zones
    day = date(2026, 10, 24)
    expected = {(zone.pk, day, 1): 1800 for zone in (one, arrondissement)}
    expected |= {(zone.pk, day, 2): 5400 for zone in (one, arrondissement)}
    assert_same(stored(shift), expected)
    assert_same(stored(shift), ref_presence(sent, max_speed=FOOT))


def test_deleting_a_shift_deletes_its_presence(zones):
    shift, other = start(), start()
    in_order(shift, a_night())
    in_order(other, a_night(seed=9))

    shift.delete()

    assert not ZonePresence.objects.filter(shift_id=shift.pk).exists()
    assert ZonePresence.objects.filter(shift=other).exists()


def test_the_migration_fills_presence_from_the_fixes_stored_before_it(zones):
    """zones/migrations/0003 computes the rows of fixes already stored, in SQL."""
    foot, vehicle = start(), start(TeamMode.VEHICLE)
    in_order(foot, a_night())
    in_order(vehicle, a_night(seed=8))
    expected = stored(foot), stored(vehicle)
    ZonePresence.objects.all().delete()

    migration = importlib.import_module("zones.migrations.0003_zone_presence")
    migration.backfill(None, SimpleNamespace(connection=connection))

    assert_same(stored(foot), expected[0])
    assert_same(stored(vehicle), expected[1])
