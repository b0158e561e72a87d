"""Coverage that follows the trackers' points within seconds, batched across shifts.

A background tracker (Traccar Client, OsmAnd) sends one point per request, hundreds of
requests a second for a city. Updating coverage in each request (zones.services.track_ingest:
tens of milliseconds of overlays for one point) capped the tracker endpoint at ~50 requests a
second. So a tracker request only *stores*: `track_store` records the fixes
(maraudes.services.positions_record) and queues their keys in maraudes.CoverageBacklog, in
one transaction, and the request answers. The fixes are then safe: nothing below can lose
them, and `coverage_rebuild` recomputes coverage from the raw fixes whatever happens here.

`coverage_catch_up` takes queued fixes of many shifts in one transaction, whole shifts at a
time, and hands them to zones.services.coverage_update_many (one coverage_changed event for
the batch), then publishes one live position per shift, its latest fix, instead of one per
request.

Who drains (DESIGN.md, "Scale": no single-process assumption)
--------------------------------------------------------------
Any number of worker processes queue fixes; **one drainer at a time**, across all of them,
holds the PostgreSQL advisory lock COVERAGE_LOCK. Each batch is a transaction that starts
with `pg_try_advisory_xact_lock`: if another session holds the lock, the batch does nothing
and the caller gives up, since the holder will see our rows. The lock is transaction-level
on purpose: it is released by COMMIT or ROLLBACK, so neither an exception nor a connection
handed back to psycopg's pool can leave it held (a session-level lock would stay with a
pooled connection after a missed unlock and stop every drainer for good).

`coverage_drain` loops: a batch under the lock; if it took rows, another batch; when a batch
found the queue empty, the lock is released (COMMIT) and **only then** the queue is checked
once more, outside the lock; if it is not empty, loop. Why this order closes the race: a
request R commits its row r, then (after commit) nudges a drainer, whose try-lock fails
because H holds the lock. So r committed before H released it. H checks the queue after its
release, in a new statement that sees everything committed before it: it sees r and drains
again. Had H checked *before* releasing, r could commit between H's check and H's release: R
finds the lock taken and gives up, H finds nothing and stops, and r waits for the next
request. If H's new try-lock fails in turn, someone else took the lock after H's release,
and the same argument applies to that holder.

A batch takes all the queued fixes of the shifts it takes, so that coverage_update never
meets a stored fix of the batch's shift that follows the batch yet is not in it (it would
recompute the whole shift-day from its raw fixes instead of appending). The batch runs at
READ COMMITTED, as zones.services' own locks expect (a statement that waited for a lock sees
what the holder committed). A tracker fix of the same shift committed between the batch's
take and coverage_update's reading of the neighbours (a few milliseconds) still makes that
shift-day recomputed: correct, only slower, and rare.

Failures: an OperationalError (deadlock, serialization failure, lost connection, cancelled
statement) is the database's condition, not the shift's: the transaction rolls back, the
queued rows come back with it, and the batch is retried (the runner backs off). Any other
error in the coverage update is retried shift by shift, each in a savepoint, and only a shift
that fails on its own is dropped from the queue, logged with the `coverage_rebuild` command
that repairs it: one bad shift never wedges the queue.

Who runs it, the TRACKER_COVERAGE setting: "background" (default) nudges, after commit, a
thread of the worker process (started on first use, woken by a threading.Event) that runs
`coverage_drain` with its own database connection, closed after each drain. It is per-process
machinery, not shared state: what the processes agree on lives in the database (the queue and
the lock). "inline" drains in the request, after its transaction committed (tests,
single-threaded setups). `manage.py coverage_catch_up` drains once, e.g. from cron after a
crash (the queue is durable; any later tracker request drains it too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import OperationalError, connection, transaction

from maraudes import realtime
from maraudes.days import service_day
from maraudes.fixes import Fix
from maraudes.models import Shift
from maraudes.services import PositionsRecorded, StoredFix, positions_record_many
from zones.services import coverage_update_many

log = logging.getLogger(__name__)

# The advisory lock key of the drainer: any 64-bit number no other code uses.
COVERAGE_LOCK = int.from_bytes(b"coverage", "big")
# Fixes per batch, in whole shifts (a batch takes every queued fix of the shifts it takes,
# so it may pass the limit by one shift's fixes). A batch holds its zone-day rows until it
# commits: big enough to share the fixed costs, small enough not to make a positions-API
# request wait for long.
BATCH_FIXES = 1000
# A drain retries a batch that PostgreSQL rolled back (deadlock, serialization failure).
BATCH_ATTEMPTS = 3
# Rows that stay queued though batches take nothing (rows of a transaction not yet
# committed are invisible to both): stop after this many empty rounds, the next nudge
# comes with the commit.
EMPTY_ROUNDS = 3

_QUEUE = """
INSERT INTO maraudes_coveragebacklog (shift_id, recorded_at)
SELECT shift_id, t FROM unnest(%s::int8[], %s::timestamptz[]) AS q(shift_id, t)
ON CONFLICT DO NOTHING
"""

# Whole shifts, the one whose oldest queued fix is oldest first, until `limit` fixes; their
# queued rows deleted and, for each, the stored fix (in the storage SRID) and, for each
# shift's latest one, its WGS84 coordinates for the live position event. A row whose fix is
# gone (purged, its shift deleted) comes back with NULLs.
_TAKE = """
WITH pending AS (
  SELECT shift_id,
         sum(count(*)) OVER (ORDER BY min(recorded_at), shift_id) - count(*) AS before
  FROM maraudes_coveragebacklog
  GROUP BY shift_id
), taken AS (
  DELETE FROM maraudes_coveragebacklog b
  USING pending
  WHERE b.shift_id = pending.shift_id AND pending.before < %s
  RETURNING b.shift_id, b.recorded_at
), fixes AS (
  SELECT t.shift_id, t.recorded_at, p.point, p.accuracy,
         row_number() OVER (PARTITION BY t.shift_id ORDER BY t.recorded_at DESC) AS rank
  FROM taken t
  LEFT JOIN maraudes_position p ON p.shift_id = t.shift_id AND p.recorded_at = t.recorded_at
)
SELECT shift_id, recorded_at, ST_X(point), ST_Y(point), accuracy,
       CASE WHEN rank = 1 THEN ST_X(ST_Transform(point, 4326)) END,
       CASE WHEN rank = 1 THEN ST_Y(ST_Transform(point, 4326)) END
FROM fixes
ORDER BY shift_id, recorded_at
"""


# --- Storing (the request) ------------------------------------------------------------------


def track_store(*, shift: Shift, fixes: Sequence[Fix], source: str) -> PositionsRecorded:
    """Store a tracker's fixes and queue the new ones for coverage, in one transaction; then
    let coverage follow (`coverage_follow`). Same answer as zones.services.track_ingest."""
    return track_store_many([(shift, fixes, source)])[0]


def track_store_many(
    batches: Sequence[tuple[Shift, Sequence[Fix], str]],
) -> list[PositionsRecorded]:
    """track_store for the fixes of several tracker requests (arrived together, of one shift
    or several), in one transaction and two statements whatever their number; one result
    per batch, as maraudes.services.positions_record_many."""
    with transaction.atomic():
        recorded = positions_record_many(batches)
        shift_ids = [
            shift.pk
            for (shift, _fixes, _source), result in zip(batches, recorded, strict=True)
            for _fix in result.accepted
        ]
        if shift_ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    _QUEUE,
                    [shift_ids, [fix.t for result in recorded for fix in result.accepted]],
                )
    if shift_ids:
        coverage_follow()
    return recorded


def coverage_follow() -> None:
    """Queued fixes were committed (or will be, with the caller's transaction): drain now
    ("inline") or wake this process's drainer thread after commit ("background")."""
    if settings.TRACKER_COVERAGE == "inline":
        try:
            coverage_drain()
        except Exception:  # the fixes are stored and still queued: the next drain takes them
            log.exception("coverage catch-up failed; the fixes stay queued")
    else:
        transaction.on_commit(_runner.nudge)


# --- Draining -------------------------------------------------------------------------------


@dataclass
class _Taken:
    shift_id: int
    fixes: list[StoredFix]
    latest: tuple[float, float] | None  # WGS84 lon, lat of the latest fix


def coverage_catch_up(*, limit: int = BATCH_FIXES) -> int | None:
    """One batch: take the queued fixes of whole shifts (about `limit` fixes), update their
    coverage and publish each shift's latest position, in one transaction, under the
    drainer's lock. Returns how many queued fixes it took (applied, or dropped with their
    shift after an error of that shift's own), or None when another session holds the lock."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [COVERAGE_LOCK])
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(_TAKE, [limit])
            rows = cursor.fetchall()
        if not rows:
            return 0
        started = time.perf_counter()
        taken = _group(rows)
        shifts = Shift.objects.select_related("team").in_bulk([t.shift_id for t in taken])
        batches = [(shifts[t.shift_id], t) for t in taken if t.shift_id in shifts and t.fixes]
        recomputed = _coverage_apply([(shift, t.fixes) for shift, t in batches])
        # One live position per shift, its latest fix, all stored in one statement
        # (coalesced per team to one a second by realtime).
        realtime.publish_many(
            [
                realtime.position_draft(
                    shift=shift,
                    t=t.fixes[-1].t,
                    lon=t.latest[0],
                    lat=t.latest[1],
                    accuracy=t.fixes[-1].accuracy,
                )
                for shift, t in batches
                if t.latest is not None
            ]
        )
        log.debug(
            "coverage caught up: %d fixes of %d shifts in %.0f ms, %d days recomputed",
            len(rows),
            len(taken),
            (time.perf_counter() - started) * 1000,
            recomputed,
        )
    return len(rows)


def _group(rows: Sequence[tuple]) -> list[_Taken]:
    by_shift: dict[int, _Taken] = {}
    for shift_id, t, x, y, accuracy, lon, lat in rows:  # ordered by shift, then time
        taken = by_shift.setdefault(shift_id, _Taken(shift_id, [], None))
        if x is None:
            continue  # the fix is gone: nothing to cover
        taken.fixes.append(StoredFix(t=t, x=x, y=y, accuracy=accuracy))
        if lon is not None:
            taken.latest = (lon, lat)
    return list(by_shift.values())


def _coverage_apply(batches: list[tuple[Shift, list[StoredFix]]]) -> int:
    """coverage_update_many for all the shifts; after an error, shift by shift, dropping
    (with a log line saying how to repair) only the shifts that fail on their own.
    OperationalError is never a shift's fault: it propagates and the whole batch rolls back.
    Returns how many days coverage_update had to recompute from the raw fixes."""
    if not batches:
        return 0
    try:
        with transaction.atomic():
            return len(coverage_update_many(batches).recomputed_days)
    except OperationalError:
        raise
    except Exception:
        if len(batches) == 1:
            _log_dropped(*batches[0])
            return 0
        log.warning("coverage catch-up of %d shifts failed; one shift at a time", len(batches))
    recomputed = 0
    for shift, fixes in batches:
        try:
            with transaction.atomic():
                recomputed += len(coverage_update_many([(shift, fixes)]).recomputed_days)
        except OperationalError:
            raise
        except Exception:
            _log_dropped(shift, fixes)
    return recomputed


def _log_dropped(shift: Shift, fixes: Sequence[StoredFix]) -> None:
    days = sorted({service_day(f.t) for f in fixes})
    log.exception(
        "coverage of shift %s failed for %d fixes: they are stored but not covered; "
        "repair with `manage.py coverage_rebuild --from %s --to %s`",
        shift.pk,
        len(fixes),
        days[0],
        days[-1],
    )


def coverage_drain(*, limit: int = BATCH_FIXES) -> int:
    """Drain the queue under the drainer's lock, batch after batch, until it is empty or
    another session holds the lock (then that one drains what is left). Returns the number
    of queued fixes taken. See the module docstring for why the queue is checked after the
    lock is released."""
    total = 0
    empty_rounds = 0
    while True:
        taken = _catch_up_retrying(limit)
        if taken is None:
            return total  # another drainer holds the lock: it will see our rows
        total += taken
        if taken:
            empty_rounds = 0
            continue
        # The batch found nothing and committed: the lock is released. Only now look again.
        if not backlog_exists():
            return total
        empty_rounds += 1
        if empty_rounds >= EMPTY_ROUNDS:
            return total


def _catch_up_retrying(limit: int) -> int | None:
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return coverage_catch_up(limit=limit)
        except OperationalError as exc:
            if attempt == BATCH_ATTEMPTS or connection.in_atomic_block:
                raise
            log.warning("coverage catch-up: %s; attempt %d", exc, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * attempt)  # jitter, not security
    raise AssertionError("unreachable")  # pragma: no cover


def backlog_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM maraudes_coveragebacklog)")
        return bool(cursor.fetchone()[0])


def backlog_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM maraudes_coveragebacklog")
        return int(cursor.fetchone()[0])


# --- The background drainer -----------------------------------------------------------------


class _Runner:
    """This process's drainer thread: started on the first nudge, woken by each nudge (an
    Event: a nudge during a drain makes one more drain, none is lost), draining with its own
    database connection, closed after each drain. After a failure it waits, doubling up to
    MAX_BACKOFF_S, and tries again: the queued rows came back with the rollback."""

    MAX_BACKOFF_S = 30.0

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._server_loop: asyncio.AbstractEventLoop | None = None

    def nudge(self) -> None:
        loop = realtime.server_loop()

        if loop is not None:
            self._server_loop = loop  # the drainer's events go out through it
        self._wake.set()
        if not self._running():
            with self._start:
                if not self._running():
                    self._pid = os.getpid()  # a forked child starts its own thread
                    self._thread = threading.Thread(
                        target=self._loop, name="coverage-catch-up", daemon=True
                    )
                    self._thread.start()

    def _running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                with realtime.sending_through(self._server_loop):
                    coverage_drain()
                backoff = 0.0
            except Exception:
                backoff = min(max(backoff * 2, 1.0), self.MAX_BACKOFF_S)
                log.exception("coverage catch-up failed; next try in %g s", backoff)
            finally:
                connection.close()
            if backoff:
                time.sleep(backoff)
                self._wake.set()


_runner = _Runner()
