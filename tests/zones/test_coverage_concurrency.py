"""Two coverage writers at once over the same zone (zones.services' advisory locks).

Each test runs two batches in two threads, each with its own connection and transaction, and
holds the first one open (after its coverage is written, before it commits) to check that the
second waits for it on a zone lock, then that both pieces end up everywhere they belong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta

import psycopg.errors
import pytest
from django.db import OperationalError, connection
from shapely.geometry import LineString

import zones.services as zone_services
from maraudes.fixes import Fix
from maraudes.models import Position, Shift
from tests.factories import ORIGIN_X, ORIGIN_Y, ShiftFactory, ZoneFactory, paris_time, tile
from tests.support.paris import to_wgs84
from zones.geometry import QUAD_SEGS
from zones.models import WEEK_DAYS, Zone, ZoneDayCoverage, ZoneWeekWhite

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_S = 20


def walk(x: float, y: float, start, n: int = 6, step_m: float = 10.0) -> list[Fix]:
    """n fixes 60 s apart going east by `step_m` from (x, y), Lambert-93."""
    transformer = to_wgs84()
    fixes = []
    for i in range(n):
        lon, lat = transformer.transform(x + step_m * i, y)
        t = start + timedelta(seconds=60 * i)
        fixes.append(Fix(t=t, lon=lon, lat=lat, accuracy=5.0, index=i))
    return fixes


def in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def advisory_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def week_white_is_exact(zone: Zone, last_day: date) -> tuple[float, float]:
    """The stored weekly white area, and the one recomputed from the zone-days."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT w.white_m2,
                      ST_Area(ST_Difference(z.geom, (
                        SELECT ST_Union(c.geom) FROM zones_zonedaycoverage c
                        WHERE c.zone_id = z.id AND c.day BETWEEN %s AND %s)))
               FROM zones_zoneweekwhite w JOIN zones_zone z ON z.id = w.zone_id
               WHERE z.id = %s AND w.last_day = %s""",
            [last_day - timedelta(days=WEEK_DAYS - 1), last_day, zone.pk, last_day],
        )
        return cursor.fetchone()


def start_held(
    monkeypatch, step: str, work: Callable[[], None], errors: list[BaseException], what: str
) -> tuple[threading.Thread, threading.Event]:
    """Run `work` in a thread and hold that thread once `zone_services.<step>` has returned
    in it (its locks taken, not committed); returns the thread and the event that lets it
    go on. Calls of `step` from other threads are not held."""
    done, release = threading.Event(), threading.Event()
    holder: list[int] = []
    original = getattr(zone_services, step)

    def then_hold(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.get_ident() in holder:
            done.set()
            release.wait(TIMEOUT_S)
        return result

    monkeypatch.setattr(zone_services, step, then_hold)

    def run() -> None:
        holder.append(threading.get_ident())
        work()

    thread = in_thread(run, errors)
    wait_until(lambda: done.is_set() or bool(errors), what)
    return thread, release


def start_held_batch(
    monkeypatch, shift: Shift, fixes: list[Fix], errors: list[BaseException]
) -> tuple[threading.Thread, threading.Event]:
    """Run a batch in a thread and hold it open once its coverage is written."""
    return start_held(
        monkeypatch,
        "_pieces_add",
        lambda: zone_services.track_ingest(shift=shift, fixes=fixes),
        errors,
        "the held batch to write its coverage",
    )


def run_two_batches(monkeypatch, first: tuple[Shift, list[Fix]], second: tuple[Shift, list[Fix]]):
    """`first` in a thread held open after its coverage is written; `second` in another;
    `second` must wait on a lock until `first` commits."""
    errors: list[BaseException] = []
    a, release = start_held_batch(monkeypatch, *first, errors)
    b = in_thread(lambda: zone_services.track_ingest(shift=second[0], fixes=second[1]), errors)
    wait_until(lambda: advisory_waiters() >= 1 or errors, "the second batch to wait on a lock")
    assert not b.join(0.2) and b.is_alive(), "the second batch went through a held zone"
    release.set()
    a.join(TIMEOUT_S)
    b.join(TIMEOUT_S)
    assert not errors, errors
    assert not a.is_alive() and not b.is_alive()


def test_two_new_zone_days_of_one_zone_both_reach_the_weeks_they_share(monkeypatch):
    # Two teams in one zone on two consecutive nights, each the first coverage of the zone
    # in its weeks: each batch creates its zone-day and fills the weekly rows that are
    # missing. Without the zone lock the second fills from zone-days that miss the first's
    # (not committed yet) and overwrites the rows they share.
    zone = ZoneFactory(geom=tile(0, 0))
    night = date(2026, 11, 20)
    shift_a = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    shift_b = ShiftFactory(started_at=paris_time(2026, 11, 21, 20, 0))
    fixes_a = walk(ORIGIN_X + 200, ORIGIN_Y + 200, paris_time(2026, 11, 20, 21, 0))
    fixes_b = walk(ORIGIN_X + 700, ORIGIN_Y + 700, paris_time(2026, 11, 21, 21, 0))

    run_two_batches(monkeypatch, (shift_a, fixes_a), (shift_b, fixes_b))

    days = set(ZoneDayCoverage.objects.filter(zone=zone).values_list("day", flat=True))
    assert days == {night, night + timedelta(days=1)}
    # Weekly rows are kept up to the day after the latest covered night: the weeks ending on
    # the second night and the day after hold both nights.
    shared = [night + timedelta(days=1), night + timedelta(days=2)]
    for last_day in shared:
        stored, exact = week_white_is_exact(zone, last_day)
        assert stored == pytest.approx(exact, abs=1.0), last_day
        assert stored < zone.geom.area - 2 * 3.0e4  # both ~100 m buffers taken out
    kept = set(ZoneWeekWhite.objects.filter(zone=zone).values_list("last_day", flat=True))
    assert kept == {night, *shared}


def test_two_batches_of_one_shift_are_joined_in_time_order(monkeypatch):
    # The same shift, two batches at once (the team app and a tracker): the later batch
    # waits for the earlier one, then sees its last fix, so the 150 m between the batches
    # is a segment (2.5 m/s, a minute apart). Without the shift lock it would read the
    # stored fixes before the first batch commits, and leave that stretch out.
    zone = ZoneFactory(geom=tile(0, 0, size=3000.0))
    shift = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    x, y = ORIGIN_X + 500, ORIGIN_Y + 1500
    fixes = walk(x, y, paris_time(2026, 11, 20, 21, 0), n=4, step_m=150.0)

    run_two_batches(monkeypatch, (shift, fixes[:2]), (shift, fixes[2:]))

    whole_line = LineString([(x, y), (x + 450.0, y)]).buffer(
        shift.team.radius_m, quad_segs=QUAD_SEGS
    )
    covered = ZoneDayCoverage.objects.get(zone=zone).covered_m2
    assert covered == pytest.approx(whole_line.area, rel=0.002)


def test_a_batch_does_not_wait_for_a_zone_its_track_never_nears(monkeypatch):
    # An L-shaped walk along the south and east edges of a 3 × 3 block of tiles: the box of
    # its coverage holds the north-west tile, which the walk never comes within 1 km of. A
    # batch held open there must not hold it up (zones are locked along the track, not over
    # the box of its whole piece).
    zones = {(col, row): ZoneFactory(geom=tile(col, row)) for col in range(3) for row in range(3)}
    held = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    held_fixes = walk(ORIGIN_X + 200, ORIGIN_Y + 2500, paris_time(2026, 11, 20, 21, 0))
    walker = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    transformer = to_wgs84()
    # A fix every 50 m, 30 s apart: 97 segments, so the track has two boxes (64 segments
    # each), the east leg with the foot of the north one, then the rest of the north leg.
    corners = [(ORIGIN_X + 50 * i, ORIGIN_Y + 100) for i in range(51)]  # east, 2.5 km
    corners += [(ORIGIN_X + 2500, ORIGIN_Y + 100 + 50 * i) for i in range(1, 48)]  # north
    start = paris_time(2026, 11, 20, 21, 0)
    l_fixes = [
        Fix(t=start + timedelta(seconds=30 * i), lon=lon, lat=lat, accuracy=5.0, index=i)
        for i, (lon, lat) in enumerate(transformer.transform(x, y) for x, y in corners)
    ]
    errors: list[BaseException] = []
    a, release = start_held_batch(monkeypatch, held, held_fixes, errors)
    try:
        b = in_thread(lambda: zone_services.track_ingest(shift=walker, fixes=l_fixes), errors)
        b.join(TIMEOUT_S)
        assert not b.is_alive(), "the walk waited for a zone it never comes near"
    finally:
        release.set()
        a.join(TIMEOUT_S)
    assert not errors, errors

    def zones_covered_by(shift: Shift) -> set[int]:
        rows = ZoneDayCoverage.objects.filter(shift_ids__contains=[shift.pk])
        return set(rows.values_list("zone_id", flat=True))

    along = [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert zones_covered_by(walker) == {zones[key].pk for key in along}
    assert zones_covered_by(held) == {zones[(0, 2)].pk}


def test_a_batch_waits_for_the_filling_of_a_weekly_row_of_its_zone(monkeypatch):
    # The filling of missing weekly rows (week_whites_extend, after a commit that opened a
    # zone-day) computes a row from the zone-days under the zone's lock. A batch in that zone
    # meanwhile must wait, then take its piece out of the row just filled: without the lock,
    # the row would be computed without the batch's piece, and written after it.
    zone_a = ZoneFactory(geom=tile(0, 0))
    ZoneFactory(geom=tile(1, 0))  # walked on the second night, which moves the horizon
    night = date(2026, 11, 20)
    for n, zone_x in ((0, ORIGIN_X + 200), (1, ORIGIN_X + 1200)):
        shift = ShiftFactory(started_at=paris_time(2026, 11, 20 + n, 20, 0))
        start = paris_time(2026, 11, 20 + n, 21, 0)
        zone_services.track_ingest(shift=shift, fixes=walk(zone_x, ORIGIN_Y + 200, start))
    horizon = night + timedelta(days=2)  # the day after the latest covered night
    # Zone a's row for the horizon was filled after the second commit: as if not yet.
    ZoneWeekWhite.objects.filter(zone=zone_a, last_day=horizon).delete()
    late = ShiftFactory(started_at=paris_time(2026, 11, 21, 20, 0))
    late_fixes = walk(ORIGIN_X + 600, ORIGIN_Y + 700, paris_time(2026, 11, 21, 22, 0))

    errors: list[BaseException] = []

    def extend() -> None:
        assert zone_services.week_whites_extend() == 1

    a, release = start_held(
        monkeypatch, "_week_whites_write", extend, errors, "the filling to write its row"
    )
    try:
        b = in_thread(lambda: zone_services.track_ingest(shift=late, fixes=late_fixes), errors)
        wait_until(lambda: advisory_waiters() >= 1 or errors, "the batch to wait on a lock")
        assert not b.join(0.2) and b.is_alive(), "the batch went through a zone being filled"
    finally:
        release.set()
        a.join(TIMEOUT_S)
    b.join(TIMEOUT_S)
    assert not errors, errors
    for last_day in (night, night + timedelta(days=1), horizon):
        stored, exact = week_white_is_exact(zone_a, last_day)
        assert stored == pytest.approx(exact, abs=1.0), last_day
    # The horizon's row holds both walks of zone a taken out.
    assert week_white_is_exact(zone_a, horizon)[0] < zone_a.geom.area - 2 * 3.0e4


# --- Should PostgreSQL still pick a victim, the batch is run again --------------------------


def deadlock() -> OperationalError:
    try:
        raise psycopg.errors.DeadlockDetected("deadlock detected")
    except psycopg.errors.DeadlockDetected as cause:
        try:
            raise OperationalError("deadlock detected") from cause
        except OperationalError as exc:
            return exc


def test_a_batch_rolled_back_by_a_deadlock_is_run_again(monkeypatch):
    shift = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    fixes = walk(ORIGIN_X + 200, ORIGIN_Y + 200, paris_time(2026, 11, 20, 21, 0))
    original = zone_services._track_ingest
    calls = []

    def deadlocking_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise deadlock()
        return original(**kwargs)

    monkeypatch.setattr(zone_services, "_track_ingest", deadlocking_once)

    recorded = zone_services.track_ingest(shift=shift, fixes=fixes)

    assert len(recorded.accepted) == len(fixes)
    assert len(calls) == 2
    assert Position.objects.filter(shift=shift).count() == len(fixes)


def test_other_database_errors_are_not_run_again(monkeypatch):
    shift = ShiftFactory(started_at=paris_time(2026, 11, 20, 20, 0))
    calls = []

    def broken(**kwargs):
        calls.append(1)
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(zone_services, "_track_ingest", broken)

    with pytest.raises(OperationalError):
        zone_services.track_ingest(
            shift=shift, fixes=walk(ORIGIN_X, ORIGIN_Y, paris_time(2026, 11, 20, 21, 0))
        )
    assert len(calls) == 1
