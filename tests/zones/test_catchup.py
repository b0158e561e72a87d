"""zones.catchup: tracker points are stored and queued; coverage follows in batches, one
drainer at a time across processes, and nothing queued is lost or applied twice."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import InternalError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import zones.catchup
from maraudes import realtime
from maraudes.fixes import Fix
from maraudes.models import CoverageBacklog, Event, Position
from tests.factories import ShiftFactory, ZoneFactory, l93, tile, tracked_shift
from tests.support.paris import to_wgs84
from zones.catchup import (
    COVERAGE_LOCK,
    coverage_catch_up,
    coverage_drain,
    track_store,
    track_store_many,
)
from zones.models import CoveragePiece, ZoneDayCoverage
from zones.services import CoverageChange, coverage_rebuild

# Polling for what another thread does: generous, and the test fails when it runs out.
TIMEOUT_S = 20


@pytest.fixture
def background(settings, monkeypatch):
    """Background mode with no drainer thread: the tests drive the drain themselves."""
    settings.TRACKER_COVERAGE = "background"
    monkeypatch.setattr(zones.catchup._runner, "nudge", lambda: None)


def walk(n: int, *, dx: float = 300, start_s: float = 600, step_s: float = 10) -> list[Fix]:
    """n fixes walking east through tile(0, 0), 10 s and about 10 m apart, ending in the past."""
    wgs84 = to_wgs84()
    now = timezone.now()
    fixes = []
    for i in range(n):
        point = l93(dx + 10 * i, 300)
        lon, lat = wgs84.transform(point.x, point.y)
        t = now - timedelta(seconds=start_s - step_s * i)
        fixes.append(Fix(t=t, lon=lon, lat=lat, accuracy=5, index=i))
    return fixes


def open_shift():
    return ShiftFactory(started_at=timezone.now() - timedelta(hours=2))


def queued() -> int:
    return CoverageBacklog.objects.count()


# --- Storing and catching up ----------------------------------------------------------------


@pytest.mark.django_db
def test_storing_queues_the_new_fixes_and_covers_nothing_yet(background):
    ZoneFactory(geom=tile(0, 0))
    shift = open_shift()

    recorded = track_store(shift=shift, fixes=walk(3), source="traccar")

    assert len(recorded.accepted) == 3
    assert Position.objects.filter(shift=shift).count() == 3
    assert queued() == 3
    assert not ZoneDayCoverage.objects.exists()


@pytest.mark.django_db
def test_requests_stored_together_each_get_their_own_answer_and_are_queued_once(background):
    first, second = open_shift(), open_shift()
    fixes = walk(4)
    late = Fix(t=timezone.now() + timedelta(hours=1), lon=2.35, lat=48.85, accuracy=5, index=1)
    early = Fix(t=first.started_at - timedelta(minutes=1), lon=2.35, lat=48.85, accuracy=5)

    recorded = track_store_many(
        [
            (first, [early, *fixes[:3]], "traccar"),
            (first, fixes[2:], "osmand"),  # fixes[2] again: the first batch's wins
            (second, [fixes[0], late], "traccar"),  # the same time, another shift: new
            (second, [], "traccar"),
        ]
    )

    assert [(len(r.accepted), r.duplicates) for r in recorded] == [(3, 0), (1, 1), (1, 0), (0, 0)]
    assert [r.index for r in recorded[0].rejected] == [0]
    assert [r.index for r in recorded[2].rejected] == [1]
    assert "avant le début" in recorded[0].rejected[0].reason
    assert "après la fin" in recorded[2].rejected[0].reason
    assert sorted(f.t for f in recorded[1].accepted) == [fixes[3].t]
    assert Position.objects.get(shift=first, recorded_at=fixes[2].t).source == "traccar"
    assert Position.objects.filter(shift=first).count() == 4
    assert Position.objects.filter(shift=second).count() == 1
    assert Counter(CoverageBacklog.objects.values_list("shift_id", flat=True)) == {
        first.pk: 4,
        second.pk: 1,
    }

    again = track_store_many([(first, fixes, "traccar"), (second, fixes[:1], "traccar")])

    assert [(len(r.accepted), r.duplicates) for r in again] == [(0, 4), (0, 1)]
    assert queued() == 5


@pytest.mark.django_db
def test_a_catch_up_covers_several_shifts_in_one_batch(background):
    zone = ZoneFactory(code="A", geom=tile(0, 0))
    first, second = open_shift(), open_shift()
    track_store(shift=first, fixes=walk(4), source="traccar")
    track_store(shift=second, fixes=walk(3, dx=100), source="traccar")

    taken = coverage_catch_up()

    assert taken == 7
    assert queued() == 0
    day = ZoneDayCoverage.objects.get(zone=zone)
    assert sorted(day.shift_ids) == sorted([first.pk, second.pk])
    # One coverage event for the batch, one position per shift (its latest fix).
    events = list(Event.objects.order_by("seq"))
    assert [e.type for e in events].count("coverage_changed") == 1
    positions = {e.data["shift"]: e.data for e in events if e.type == "position"}
    assert set(positions) == {first.pk, second.pk}
    latest = walk(4)[-1]
    assert positions[first.pk]["lon"] == pytest.approx(latest.lon, abs=1e-6)
    assert (
        positions[first.pk]["t"]
        == Position.objects.filter(shift=first).latest("recorded_at").recorded_at.isoformat()
    )


@pytest.mark.django_db
def test_caught_up_coverage_is_what_a_rebuild_computes(background):
    zone = ZoneFactory(geom=tile(0, 0))
    shift = open_shift()
    fixes = walk(12)
    # In order, then a late batch that lands between stored fixes: both update paths.
    track_store(shift=shift, fixes=fixes[0::2], source="traccar")
    coverage_catch_up()
    track_store(shift=shift, fixes=fixes[1::2], source="traccar")
    coverage_catch_up()
    caught_up = ZoneDayCoverage.objects.get(zone=zone).geom

    coverage_rebuild()

    rebuilt = ZoneDayCoverage.objects.get(zone=zone).geom
    assert caught_up.sym_difference(rebuilt).area < 1e-3 * rebuilt.area


@pytest.mark.django_db
def test_an_empty_queue_takes_nothing(background):
    assert coverage_catch_up() == 0
    assert coverage_drain() == 0


@pytest.mark.django_db
def test_a_batch_takes_whole_shifts(background):
    first, second = open_shift(), open_shift()
    track_store(shift=first, fixes=walk(3), source="traccar")
    track_store(shift=second, fixes=walk(2, start_s=900), source="traccar")

    # The shift whose oldest queued fix is oldest goes first, with all its fixes.
    assert coverage_catch_up(limit=1) == 2
    assert set(CoverageBacklog.objects.values_list("shift_id", flat=True)) == {first.pk}
    assert coverage_catch_up(limit=1) == 3
    assert queued() == 0


@pytest.mark.django_db
def test_a_fix_gone_before_the_catch_up_is_skipped(background):
    shift = open_shift()
    track_store(shift=shift, fixes=walk(2), source="traccar")
    Position.objects.filter(shift=shift).delete()  # e.g. purged

    assert coverage_catch_up() == 2
    assert queued() == 0
    assert not CoveragePiece.objects.exists()


@pytest.mark.django_db
def test_deleting_a_shift_deletes_its_queued_fixes(background):
    shift = open_shift()
    track_store(shift=shift, fixes=walk(2), source="traccar")

    shift.delete()

    assert queued() == 0


# --- Failures -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_database_failure_puts_the_fixes_back_in_the_queue(background, monkeypatch):
    ZoneFactory(geom=tile(0, 0))
    track_store(shift=open_shift(), fixes=walk(3), source="traccar")

    def deadlocked(batches):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr(zones.catchup, "coverage_update_many", deadlocked)

    with pytest.raises(OperationalError):
        coverage_catch_up()

    assert queued() == 3
    monkeypatch.undo()
    assert coverage_catch_up() == 3
    assert ZoneDayCoverage.objects.exists()


@pytest.mark.django_db
def test_one_bad_shift_is_dropped_and_the_others_are_covered(background, monkeypatch, caplog):
    zone = ZoneFactory(geom=tile(0, 0))
    good, bad = open_shift(), open_shift()
    track_store(shift=good, fixes=walk(3), source="traccar")
    track_store(shift=bad, fixes=walk(3, dx=100), source="traccar")
    real = zones.catchup.coverage_update_many

    def topology_error_for_bad(batches):
        if any(shift.pk == bad.pk for shift, _fixes in batches):
            raise InternalError("GEOSIntersects: TopologyException: side location conflict")
        return real(batches)

    monkeypatch.setattr(zones.catchup, "coverage_update_many", topology_error_for_bad)

    with caplog.at_level(logging.ERROR, logger="zones.catchup"):
        assert coverage_catch_up() == 6

    assert queued() == 0  # the queue is not wedged behind the bad shift
    assert ZoneDayCoverage.objects.get(zone=zone).shift_ids == [good.pk]
    assert Position.objects.filter(shift=bad).count() == 3  # stored, only not covered
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"shift {bad.pk}" in record.getMessage()
    assert "coverage_rebuild --from" in record.getMessage()


@pytest.mark.django_db(transaction=True)  # a retry needs the batch's own transaction
def test_a_drain_retries_a_batch_rolled_back_by_a_deadlock(background, monkeypatch):
    ZoneFactory(geom=tile(0, 0))
    track_store(shift=open_shift(), fixes=walk(3), source="traccar")
    real = zones.catchup.coverage_update_many
    calls = []

    def deadlocking_once(batches):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(batches)

    monkeypatch.setattr(zones.catchup, "coverage_update_many", deadlocking_once)

    assert coverage_drain() == 3
    assert len(calls) == 2
    assert queued() == 0


# --- One drainer at a time, across processes ------------------------------------------------


def in_thread(target, *args) -> threading.Thread:
    """Run target in a thread with its own database connection (a session of its own, like
    another worker process), closed at the end."""

    def run() -> None:
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db
def test_a_batch_gives_up_while_another_session_holds_the_lock(background):
    track_store(shift=open_shift(), fixes=walk(2), source="traccar")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COVERAGE_LOCK])
            holding.set()
            release.wait(TIMEOUT_S)

    thread = in_thread(hold)
    assert holding.wait(TIMEOUT_S)
    try:
        assert coverage_catch_up() is None
        assert coverage_drain() == 0
        assert queued() == 2
    finally:
        release.set()
        thread.join(TIMEOUT_S)
    assert coverage_catch_up() == 2


@pytest.mark.django_db(transaction=True)
def test_two_drainers_at_once_apply_each_fix_once(background, monkeypatch):
    ZoneFactory(geom=tile(0, 0))
    shifts = [open_shift() for _ in range(4)]
    for n, shift in enumerate(shifts):
        track_store(shift=shift, fixes=walk(5, dx=50 * n), source="traccar")
    real = zones.catchup.coverage_update_many
    applied: list[tuple[int, object]] = []
    inside = Counter()
    guard = threading.Lock()

    def recording(batches):
        with guard:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        time.sleep(0.3)  # long enough for the other drainer to try meanwhile
        try:
            result = real(batches)
            with guard:
                applied.extend((shift.pk, f.t) for shift, fixes in batches for f in fixes)
            return result
        finally:
            with guard:
                inside["now"] -= 1

    monkeypatch.setattr(zones.catchup, "coverage_update_many", recording)
    totals: list[int] = []

    def drain(limit: int) -> None:
        totals.append(coverage_drain(limit=limit))

    threads = [in_thread(drain, 5), in_thread(drain, 5)]
    for thread in threads:
        thread.join(TIMEOUT_S)

    assert sum(totals) == 20
    assert len(applied) == 20 and len(set(applied)) == 20  # each fix once
    assert inside["most"] == 1  # never two drainers at once
    assert queued() == 0
    assert set(ZoneDayCoverage.objects.get().shift_ids) == {s.pk for s in shifts}


@pytest.mark.django_db(transaction=True)
def test_a_fix_queued_while_the_drainer_finds_the_queue_empty_is_not_left_behind(
    background, monkeypatch
):
    """The race the module docstring describes: a fix commits after the drainer's last
    (empty) batch looked, but before that batch released the lock. Its request's drainer
    finds the lock taken and gives up; the holder must see the fix when it checks the queue
    after releasing the lock."""
    ZoneFactory(geom=tile(0, 0))
    shift = open_shift()
    late_fix = walk(1)
    latecomer: list[int | None] = []
    main = threading.get_ident()

    def late_request() -> None:
        track_store(shift=shift, fixes=late_fix, source="traccar")  # commits
        latecomer.append(coverage_drain())  # the lock is held: gives up

    def after_empty_take(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        is_take = "DELETE FROM maraudes_coveragebacklog" in sql
        empty = is_take and context["cursor"].rowcount == 0
        if empty and threading.get_ident() == main and not latecomer:
            # Once, inside the empty batch, the lock held.
            in_thread(late_request).join(TIMEOUT_S)
        return result

    with connection.execute_wrapper(after_empty_take):
        taken = coverage_drain()

    assert latecomer == [0]  # the latecomer's drainer found the lock taken
    assert taken == 1  # the holder took the late fix after releasing the lock
    assert queued() == 0
    assert ZoneDayCoverage.objects.exists()


# --- The background drainer, as a worker process runs it ------------------------------------


@pytest.mark.django_db(transaction=True)
def test_in_background_coverage_follows_a_tracker_request_within_seconds(settings):
    from django.test import Client

    settings.TRACKER_COVERAGE = "background"
    zone = ZoneFactory(geom=tile(0, 0))
    token, shift = tracked_shift()
    fix = walk(1)[0]
    body = (
        '{"location": {"timestamp": "%s", "coords": {"latitude": %r, "longitude": %r, '
        '"accuracy": 5}}, "device_id": "%s"}' % (fix.t.isoformat(), fix.lat, fix.lon, token)
    )

    response = Client().generic("POST", "/api/v1/track/", body, content_type="application/json")

    assert response.status_code == 200, response.content
    deadline = time.monotonic() + TIMEOUT_S
    while queued() or not ZoneDayCoverage.objects.filter(zone=zone).exists():
        assert time.monotonic() < deadline, "coverage did not follow"
        time.sleep(0.05)
    assert ZoneDayCoverage.objects.get(zone=zone).shift_ids == [shift.pk]


# --- The command ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_drains_the_queue(background, capsys):
    ZoneFactory(geom=tile(0, 0))
    track_store(shift=open_shift(), fixes=walk(3), source="traccar")

    call_command("coverage_catch_up")

    assert "3 points rattrapés" in capsys.readouterr().out
    assert queued() == 0
    assert ZoneDayCoverage.objects.exists()


@pytest.mark.django_db
def test_a_catch_up_of_many_shifts_costs_a_fixed_number_of_queries_before_coverage(
    background, monkeypatch
):
    for n in range(5):
        track_store(shift=open_shift(), fixes=walk(2, dx=50 * n), source="traccar")
    monkeypatch.setattr(zones.catchup, "coverage_update_many", lambda batches: CoverageChange())
    monkeypatch.setattr(realtime, "publish_many", lambda drafts: [])

    with CaptureQueriesContext(connection) as queries:
        assert coverage_catch_up() == 10

    # The lock, the take, the shifts with their teams (coverage and events stubbed: they
    # are one statement each per batch, zones.services and maraudes.realtime).
    sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 3, sql
    assert "ROLLBACK" not in " ".join(q["sql"] for q in queries.captured_queries)


# --- The drainer thread ---------------------------------------------------------------------


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_nudge_during_a_drain_makes_one_more_drain(monkeypatch):
    runner = zones.catchup._Runner()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def drain() -> int:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(TIMEOUT_S)
        return 0

    monkeypatch.setattr(zones.catchup, "coverage_drain", drain)

    runner.nudge()
    assert started.wait(TIMEOUT_S)
    runner.nudge()  # rows committed meanwhile: not lost
    runner.nudge()  # and nudges coalesce
    release.set()

    wait_for(lambda: len(calls) == 2, "the second drain did not come")
    time.sleep(0.1)
    assert len(calls) == 2


def test_after_a_failed_drain_the_drainer_tries_again(monkeypatch):
    runner = zones.catchup._Runner()
    runner.MAX_BACKOFF_S = 0.05
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the server closed the connection")
        return 0

    monkeypatch.setattr(zones.catchup, "coverage_drain", flaky)

    runner.nudge()

    wait_for(lambda: len(calls) == 2, "no second try after the failure")
