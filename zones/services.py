"""Writes of coverage: kept current as fixes arrive, and rebuilt from the raw fixes on demand.

Two materialised layers (zones.models):

- CoveragePiece: what a shift covered on a service day, one piece per batch of fixes;
- ZoneDayCoverage: per (zone, day), the covered part of the zone, pre-unioned.

A batch whose fixes all come after the shift's latest stored fix of that day can only add
segments, so its coverage is buffered alone and unioned in (the common case: phones and
trackers send in order, even hours late). A fix that lands before a stored one may split or
undo a segment (the contract joins fixes in time order, not arrival order), so the whole
shift-day is recomputed from its raw fixes and the zone-days it touches are re-unioned from
their pieces. Both paths give the same coverage as `coverage_rebuild`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import shapely
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg.errors import DeadlockDetected, SerializationFailure
from shapely.geometry import MultiPolygon

from maraudes import realtime
from maraudes.days import service_day, service_day_bounds, service_day_sql
from maraudes.db import float8_array, int8_array, pipelined, prepared_cursor
from maraudes.fixes import Fix
from maraudes.models import PositionSource, Shift, Team
from maraudes.services import PositionsRecorded, StoredFix, positions_record
from zones.geometry import (
    Located,
    TrackArrays,
    TrackFix,
    as_multipolygon,
    track_arrays,
    track_boxes,
    track_coverage,
)
from zones.models import WEEK_DAYS, Assignment, Zone, ZoneDayCoverage
from zones.presence import presence_add_many, presence_rebuild, presence_replace

log = logging.getLogger(__name__)

# A batch rolled back by a deadlock or a serialisation failure is run again, up to this many
# times in all.
INGEST_ATTEMPTS = 3

# Union/intersection results kept valid without paying for MakeValid when they already are.
# The expression is computed once: in the sub-select (OFFSET 0 keeps the planner from pulling
# it up), not once per mention, as a CASE naming it twice would.
_VALID = (
    "(SELECT CASE WHEN ST_IsValid(v.g) THEN v.g ELSE ST_MakeValid(v.g) END"
    " FROM (SELECT {g} AS g OFFSET 0) v)"
)
_POLY = "ST_Multi(ST_CollectionExtract({g}, 3))"
# {g} cut to the box of {box} grown by a metre. ST_ClipByBox2D does not promise a valid result
# (it is wrapped in _VALID); cutting the coverage of a night's tracks by the quartiers' boxes
# gave valid polygons every time (298 of 298), with the same area as an intersection.
_BOX_CUT = "ST_ClipByBox2D({g}, ST_Expand(ST_Envelope({box}), 1))"


@dataclass
class CoverageChange:
    """What a coverage update touched: (zone id, day) pairs, for events and tests."""

    zone_days: set[tuple[int, date]] = field(default_factory=set)
    recomputed_days: set[date] = field(default_factory=set)
    # What live maps are told about each zone-day (zones.services._figure).
    known_figures: dict[tuple[int, date], dict] = field(default_factory=dict)

    def figures(self) -> list[dict]:
        return [self.known_figures[key] for key in sorted(self.known_figures)]


def track_ingest(
    *, shift: Shift, fixes: Sequence[Fix], source: str = PositionSource.API
) -> PositionsRecorded:
    """Store a batch of fixes and bring coverage up to date, in one transaction.

    Writers take their locks in one order (shifts, then zones), so concurrent batches wait
    for each other instead of deadlocking; should PostgreSQL still pick a victim (or fail a
    serialisation), the whole batch rolled back and is run again after a short random wait,
    unless the caller holds an outer transaction (which the failure aborted too).
    """
    attempts = 1 if connection.in_atomic_block else INGEST_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return _track_ingest(shift=shift, fixes=fixes, source=source)
        except OperationalError as exc:
            transient = isinstance(exc.__cause__, DeadlockDetected | SerializationFailure)
            if not transient or attempt == attempts:
                raise
            log.warning("track_ingest for shift %s: %s; attempt %d", shift.pk, exc, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * attempt)  # jitter, not security
    raise AssertionError("unreachable")  # pragma: no cover


def _track_ingest(*, shift: Shift, fixes: Sequence[Fix], source: str) -> PositionsRecorded:
    with transaction.atomic():
        recorded = positions_record(shift=shift, fixes=fixes, source=source)
        if recorded.accepted:
            change = coverage_update(shift=shift, fixes=recorded.accepted)
            latest = max(recorded.accepted, key=lambda f: f.t)
            # Compare instants, not datetimes: an ambiguous local time (the October clock
            # change) never equals a UTC datetime (PEP 495).
            instant = latest.t.timestamp()
            # The fix stored is the batch's first with that time (the first one wins). With no
            # duplicate in the batch it is the only one, and nearly always the last.
            order = fixes if recorded.duplicates else reversed(fixes)
            sent = next(f for f in order if f.t.timestamp() == instant)
            drafts = [
                realtime.position_draft(
                    shift=shift, t=sent.t, lon=sent.lon, lat=sent.lat, accuracy=sent.accuracy
                )
            ]
            if change.zone_days:
                drafts.append(realtime.coverage_changed_draft(zones=change.figures()))
            realtime.publish_many(drafts)
    return recorded


def _zone_days_figures(zone_days: Iterable[tuple[int, date]]) -> dict[tuple[int, date], dict]:
    """The covered area of zone-days (0 when nothing is left), for live maps."""
    zone_days = set(zone_days)
    if not zone_days:
        return {}
    zone_ids = sorted({zone_id for zone_id, _day in zone_days})
    days = sorted({day for _zone_id, day in zone_days})
    covered = {
        (row["zone_id"], row["day"]): row["covered_m2"]
        for row in ZoneDayCoverage.objects.filter(zone_id__in=zone_ids, day__in=days).values(
            "zone_id", "day", "covered_m2"
        )
    }
    zones = {
        row["id"]: row
        for row in Zone.objects.filter(id__in=zone_ids).values("id", "code", "kind", "area_m2")
    }
    return {
        (zone_id, day): _figure(zone_id, day, zones[zone_id], covered.get((zone_id, day), 0.0))
        for zone_id, day in zone_days
        if zone_id in zones
    }


def _figure(zone_id: int, day: date, zone: dict, covered_m2: float) -> dict:
    return {
        "zone": zone_id,
        "code": zone["code"],
        "kind": zone["kind"],
        "day": day.isoformat(),
        "covered_m2": round(covered_m2, 1),
        "area_m2": round(zone["area_m2"], 1),
    }


def coverage_update(*, shift: Shift, fixes: Sequence[StoredFix]) -> CoverageChange:
    """Bring coverage up to date after `fixes` (new, stored) arrived for `shift`."""
    return _coverage_update([(shift, fixes)])


def coverage_update_many(batches: Sequence[tuple[Shift, Sequence[StoredFix]]]) -> CoverageChange:
    """`coverage_update` for the new fixes of several shifts at once (a shift may appear
    more than once), in a fixed number of statements for the common case, then one
    `coverage_changed` event for all the zone-days touched, sent after commit. Call it
    inside a transaction."""
    change = _coverage_update(batches)
    if change.zone_days:
        realtime.coverage_changed(zones=change.figures())
    return change


@dataclass
class _ShiftDay:
    shift: Shift
    day: date
    fixes: list[StoredFix]  # new kept fixes, in time order
    previous: TrackFix | None = None  # the kept fix stored just before them that day
    later: int = 0  # stored kept fixes that day after the first new one


def _coverage_update(batches: Sequence[tuple[Shift, Sequence[StoredFix]]]) -> CoverageChange:
    change = CoverageChange()
    groups: dict[tuple[int, date], _ShiftDay] = {}
    max_accuracy = settings.MAX_ACCURACY_M
    for shift, fixes in batches:
        kept = [fix for fix in fixes if fix.accuracy <= max_accuracy]
        if not kept:
            continue
        # Service days follow time, so a batch whose first and last fixes share one (nearly
        # all of them) lies wholly in it: one day computed, not one per fix.
        first = service_day(min(fix.t for fix in kept))
        if first == service_day(max(fix.t for fix in kept)):
            days = [(first, kept)]
        else:
            by_day: dict[date, list[StoredFix]] = defaultdict(list)
            for fix in kept:
                by_day[service_day(fix.t)].append(fix)
            days = list(by_day.items())
        for day, day_fixes in days:
            group = groups.get((shift.pk, day))
            if group is None:
                group = groups[(shift.pk, day)] = _ShiftDay(shift, day, [])
            group.fixes.extend(day_fixes)
    if not groups:
        return change
    ordered = [groups[key] for key in sorted(groups)]
    for group in ordered:
        group.fixes.sort(key=lambda f: f.t)
    with pipelined():  # one round trip: the lock, then the neighbours read after it
        _lock_shifts(sorted({group.shift.pk for group in ordered}))
        _neighbours(ordered)
    appended: list[tuple[_ShiftDay, MultiPolygon]] = []
    recomputed: list[tuple[_ShiftDay, list[TrackFix], MultiPolygon]] = []
    tracks: list[tuple[int, date, TrackArrays, float]] = []
    boxes: list[np.ndarray] = []  # where the pieces lie: the zones to lock
    for group in ordered:
        shift, day = group.shift, group.day
        if group.later != len(group.fixes) - 1:
            # A fix landed before a stored one: the shift-day is recomputed whole.
            track = _shift_day_fixes(shift, day)
            piece = _coverage_of(shift, track)
            recomputed.append((group, track, piece))
            if not piece.is_empty:
                boxes.append(np.array([piece.bounds]))
            continue
        # As arrays once, for the coverage and for the presence.
        track = track_arrays([group.previous, *group.fixes] if group.previous else group.fixes)
        tracks.append((shift.pk, day, track, shift.team.max_speed))
        piece = _coverage_of(shift, track)
        if not piece.is_empty:
            appended.append((group, piece))
            # The piece lies within its track grown by the radius (a metre more for rounding).
            boxes.append(track_boxes(track, margin=shift.team.radius_m + 1))
    # One round trip: every zone the batch may write is locked in one statement (only now,
    # after the buffering: a batch of another shift in those zones waits for this one's
    # statements, not for its Python), then presence and the appended pieces.
    with pipelined():
        if appended or recomputed:
            _lock_zones(
                np.concatenate(boxes) if boxes else np.empty((0, 4)),
                shift_days=[(g.shift.pk, g.day) for g, _track, _piece in recomputed],
            )
        presence_add_many(tracks, max_gap_s=settings.MAX_GAP_S)
        known = _pieces_add([(g.shift.pk, g.day, piece) for g, piece in appended])
    for group, track, piece in recomputed:
        change.zone_days |= _shift_day_replace(group.shift, group.day, track, piece)
        change.recomputed_days.add(group.day)
    change.zone_days |= set(known)
    change.known_figures.update(known)
    missing = change.zone_days - set(known)
    change.known_figures.update(_zone_days_figures(missing))
    return change


# Advisory locks (transaction-scoped) that serialise coverage writers: per shift, so that a
# batch's neighbours are read after any concurrent batch of the same shift has committed (the
# segment between their fixes is then drawn by one of them); per zone, so that the weekly
# white rows a batch fills from the zone-days include every piece committed before (without
# it, two batches that each start a zone-day could each miss the other's piece). A batch takes
# its shifts in one statement, then all its zones in one statement once its pieces are drawn
# (the buffering, in Python, is not done holding them), each in ascending order: writers wait
# for each other rather than deadlock (should PostgreSQL still pick a victim, track_ingest runs
# the batch again).
_LOCK_SHIFT = 1 << 48
_LOCK_ZONE = 2 << 48


def _lock_shifts(shift_ids: Sequence[int]) -> None:
    _advisory_locks(_LOCK_SHIFT, shift_ids)


def _lock_zone_ids(zone_ids: Sequence[int]) -> None:
    _advisory_locks(_LOCK_ZONE, zone_ids)


def _advisory_locks(key: int, ids: Sequence[int]) -> None:
    """Take the locks `key` + id, in the order of `ids` (ascending, for the callers)."""
    with prepared_cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s + s)) FROM unnest(%s::bigint[]) AS s",
            [key, list(ids)],
            prepare=True,
        )


def _lock_zones(boxes: np.ndarray, *, shift_days: Sequence[tuple[int, date]] = ()) -> None:
    """Lock, in ascending order, the zones whose box meets one of `boxes` (x0, y0, x1, y1
    rows: where the pieces about to be written lie) or the box of a stored piece of one of
    `shift_days` (those a recompute deletes). Boxes that follow a track, not the box of its
    whole piece: a 1,000-fix batch's box takes in dozens of quartiers it never enters, and a
    concurrent batch in any of them waited for it. One statement: its snapshot is taken
    before it waits, so the statements after it see whatever the writers it waited for
    committed."""
    with prepared_cursor() as cursor:
        cursor.execute(
            """
            SELECT count(pg_advisory_xact_lock(%(key)s + q.id)) FROM (
              SELECT z.id FROM zones_zone z
              JOIN unnest(%(x0)s::float8[], %(y0)s::float8[], %(x1)s::float8[],
                          %(y1)s::float8[]) AS b(x0, y0, x1, y1)
                ON z.geom && ST_MakeEnvelope(b.x0, b.y0, b.x1, b.y1, %(srid)s)
              UNION
              SELECT z.id FROM zones_coveragepiece p
              JOIN unnest(%(shifts)s::int8[], %(days)s::date[]) AS d(shift_id, day)
                ON p.shift_id = d.shift_id AND p.day = d.day
              JOIN zones_zone z ON z.geom && p.geom
              ORDER BY 1
            ) q
            """,
            {
                "key": _LOCK_ZONE,
                "x0": float8_array(boxes[:, 0]),
                "y0": float8_array(boxes[:, 1]),
                "x1": float8_array(boxes[:, 2]),
                "y1": float8_array(boxes[:, 3]),
                "srid": settings.SRID,
                "shifts": int8_array([shift_id for shift_id, _day in shift_days]),
                "days": [day for _shift_id, day in shift_days],
            },
            prepare=True,
        )


def _neighbours(groups: Sequence[_ShiftDay]) -> None:
    """For each new shift-day batch: the kept fix stored just before it that day, and how
    many kept fixes that day follow its first one (its own included)."""
    bounds = [service_day_bounds(g.day) for g in groups]
    with prepared_cursor() as cursor:
        cursor.execute(
            """
            SELECT b.i,
              -- fixes still queued for the tracker catch-up are left out: they will be
              -- placed when their turn comes (a later one appends, an earlier one
              -- recomputes the shift-day), so one that arrived a moment ago does not turn
              -- this append into a recompute
              (SELECT count(*) FROM maraudes_position p
                 WHERE p.shift_id = b.shift AND p.accuracy <= %(max_accuracy)s
                   AND p.recorded_at > b.first AND p.recorded_at < b.stop
                   AND NOT EXISTS (
                     SELECT 1 FROM maraudes_coveragebacklog q
                     WHERE q.shift_id = p.shift_id AND q.recorded_at = p.recorded_at)
              ) AS later,
              prev.recorded_at, ST_X(prev.point), ST_Y(prev.point)
            FROM unnest(%(shifts)s::bigint[], %(starts)s::timestamptz[],
                        %(stops)s::timestamptz[], %(firsts)s::timestamptz[])
                 WITH ORDINALITY AS b(shift, start, stop, first, i)
            LEFT JOIN LATERAL (
              SELECT p.recorded_at, p.point FROM maraudes_position p
              WHERE p.shift_id = b.shift AND p.accuracy <= %(max_accuracy)s
                AND p.recorded_at >= b.start AND p.recorded_at < b.first
              ORDER BY p.recorded_at DESC LIMIT 1
            ) prev ON true
            """,
            {
                "max_accuracy": settings.MAX_ACCURACY_M,
                "shifts": [g.shift.pk for g in groups],
                "starts": [start for start, _stop in bounds],
                "stops": [stop for _start, stop in bounds],
                "firsts": [g.fixes[0].t for g in groups],
            },
            prepare=True,
        )
        for i, later, t, x, y in cursor.fetchall():
            group = groups[i - 1]
            group.later = later
            group.previous = TrackFix(t, x, y) if t is not None else None


def _coverage_of(shift: Shift, track: Sequence[Located] | TrackArrays) -> MultiPolygon:
    team = shift.team
    return track_coverage(
        track, radius=team.radius_m, max_gap_s=settings.MAX_GAP_S, max_speed=team.max_speed
    )


def _kept_filter() -> str:
    return "shift_id = %s AND accuracy <= %s AND recorded_at >= %s AND recorded_at < %s"


def _shift_day_fixes(shift: Shift, day: date) -> list[TrackFix]:
    start, end = service_day_bounds(day)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT recorded_at, ST_X(point), ST_Y(point) FROM maraudes_position
                WHERE {_kept_filter()} ORDER BY recorded_at""",
            [shift.pk, settings.MAX_ACCURACY_M, start, end],
        )
        return [TrackFix(t, x, y) for t, x, y in cursor.fetchall()]


def _shift_day_replace(
    shift: Shift, day: date, track: Sequence[TrackFix], piece: MultiPolygon
) -> set[tuple[int, date]]:
    """Replace a shift-day's pieces by `piece`, its coverage computed from all its raw fixes
    (`track`); re-union the zone-days its old or new coverage touches. Its zones are locked
    (_lock_zones, with the shift-day)."""
    presence_replace(
        shift_id=shift.pk,
        day=day,
        track=track,
        max_gap_s=settings.MAX_GAP_S,
        max_speed=shift.team.max_speed,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT DISTINCT z.id FROM zones_zone z JOIN zones_coveragepiece p
                 ON ST_Intersects(z.geom, p.geom)
               WHERE p.shift_id = %s AND p.day = %s""",
            [shift.pk, day],
        )
        zone_ids = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "DELETE FROM zones_coveragepiece WHERE shift_id = %s AND day = %s", [shift.pk, day]
        )
    if not piece.is_empty:
        _piece_insert(shift.pk, day, piece)
        zone_ids |= _zones_touching(piece)
    if zone_ids:
        _zone_days_rebuild(days=[day], zone_ids=sorted(zone_ids))
        # The kept rows of the weeks holding the day, and the missing ones up to the horizon
        # (rows past it are refreshed if they exist, never created).
        ends = _week_ends(day)
        horizon = _week_horizon(_latest_covered_day())
        wanted = _week_rows(ends, zone_ids=sorted(zone_ids), kept=True)
        for zone_id, missing in _week_rows(
            [end for end in ends if horizon and end <= horizon],
            zone_ids=sorted(zone_ids),
            kept=False,
        ).items():
            wanted.setdefault(zone_id, []).extend(missing)
        _week_whites_write(wanted)
        transaction.on_commit(week_whites_extend, robust=True)
    return {(zone_id, day) for zone_id in zone_ids}


def _piece_insert(shift_id: int, day: date, piece: MultiPolygon) -> None:
    if piece.is_empty:
        return
    _pieces_insert([(shift_id, day, piece)])


def _pieces_insert(pieces: Sequence[tuple[int, date, MultiPolygon]]) -> None:
    if not pieces:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO zones_coveragepiece (shift_id, day, geom, created_at)
               SELECT s, d, ST_GeomFromWKB(g, %s), now()
               FROM unnest(%s::bigint[], %s::date[], %s::bytea[]) AS p(s, d, g)""",
            [
                settings.SRID,
                [p[0] for p in pieces],
                [p[1] for p in pieces],
                [shapely.to_wkb(p[2]) for p in pieces],
            ],
        )


def _zones_touching(piece: MultiPolygon) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM zones_zone WHERE ST_Intersects(geom, ST_GeomFromWKB(%s, %s))",
            [shapely.to_wkb(piece), settings.SRID],
        )
        return {row[0] for row in cursor.fetchall()}


def _pieces_add(
    pieces: Sequence[tuple[int, date, MultiPolygon]],
) -> dict[tuple[int, date], dict]:
    """The append path, in one statement whatever the number of pieces: store the pieces,
    union them into the zone-days they touch, and take them out of the weekly white parts
    holding their day; then fill the weekly rows still missing for zone-days that are new.
    Returns the figures of the zone-days touched (zones.services._figure).

    Pieces of one zone-day are unioned together first (an upsert touches a row once), and a
    weekly row takes one difference with the union of its pieces. Rows are locked in zone
    order (zone-days, then weekly rows), so concurrent batches wait instead of deadlocking.
    """
    if not pieces:
        return {}
    # The zones were locked by _lock_zones, once the pieces were drawn.
    # A group of one geometry is that geometry: ST_Union would still re-node it (an aggregate
    # in a CASE is computed whatever the branch, hence the array).
    one_or_union = "CASE WHEN cardinality({a}) = 1 THEN {a}[1] ELSE ST_Union({a}) END"
    merged = _POLY.format(g="ST_Union(zones_zonedaycoverage.geom, EXCLUDED.geom)")
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""
            WITH p AS (
              SELECT i, s AS shift_id, d AS day, ST_GeomFromWKB(g, %(srid)s) AS g
              FROM unnest(%(shifts)s::bigint[], %(days)s::date[], %(wkbs)b::bytea[])
                   WITH ORDINALITY AS u(s, d, g, i)
            ), piece AS (
              INSERT INTO zones_coveragepiece (shift_id, day, geom, created_at)
              SELECT shift_id, day, g, now() FROM p
            ), clip AS MATERIALIZED (
              -- near: the piece cut to the zone's box grown by a metre, for the weekly white
              -- part; g: the piece's part in the zone (the zone's part of near), for the
              -- zone-day. Not g for the white part: it shares the zone's border with it, and
              -- GEOS predicates fail on such near-coincident edges ("side location
              -- conflict"); not the whole piece: a night's piece spans dozens of zones, and
              -- every difference would pay for it. Cutting by a box is several times
              -- cheaper than an intersection, and leaves the zone fewer vertices to cut.
              SELECT zone_id, day, shift_id,
                     {_POLY.format(g="ST_Intersection(zone_geom, near)")} AS g, near
              FROM (
                SELECT z.id AS zone_id, z.geom AS zone_geom, p.day, p.shift_id,
                       CASE WHEN p.g @ ST_Expand(z.geom, 1) THEN p.g
                            ELSE {_VALID.format(g=_POLY.format(g=_BOX_CUT.format(g="p.g", box="z.geom")))}
                       END AS near
                FROM p JOIN zones_zone z ON ST_Intersects(z.geom, p.g)
                OFFSET 0
              ) cut
            ), hit AS (
              SELECT zone_id, day, {_POLY.format(g=one_or_union.format(a="gs"))} AS g, shifts
              FROM (
                SELECT zone_id, day, array_agg(g) AS gs, array_agg(DISTINCT shift_id) AS shifts
                FROM clip WHERE NOT ST_IsEmpty(g)
                GROUP BY zone_id, day
              ) grouped
              ORDER BY zone_id, day
            ), day_rows AS (
              INSERT INTO zones_zonedaycoverage (zone_id, day, geom, shift_ids, updated_at)
              SELECT zone_id, day, g, shifts, now() FROM hit
              ON CONFLICT (zone_id, day) DO UPDATE SET
                geom = {_VALID.format(g=merged)},
                shift_ids = zones_zonedaycoverage.shift_ids || ARRAY(
                  SELECT s FROM unnest(EXCLUDED.shift_ids) s
                  WHERE s <> ALL(zones_zonedaycoverage.shift_ids)),
                updated_at = now()
              RETURNING zone_id, day, covered_m2, xmax = 0 AS inserted
            ), week_pieces AS (
              SELECT id, {one_or_union.format(a="gs")} AS g
              FROM (
                SELECT w.id, w.zone_id, w.last_day, array_agg(c.near) AS gs
                FROM zones_zoneweekwhite w
                JOIN clip c ON c.zone_id = w.zone_id
                  AND w.last_day BETWEEN c.day AND c.day + {WEEK_DAYS - 1}
                WHERE NOT ST_IsEmpty(c.g) AND NOT ST_IsEmpty(c.near)
                GROUP BY w.id, w.zone_id, w.last_day
              ) grouped
              ORDER BY zone_id, last_day
            ), week_rows AS (
              UPDATE zones_zoneweekwhite w
              SET geom = {_POLY.format(g="ST_Difference(w.geom, wp.g)")}, updated_at = now()
              FROM week_pieces wp
              WHERE w.id = wp.id AND ST_Intersects(w.geom, wp.g)
            )
            SELECT r.zone_id, r.day, r.covered_m2, r.inserted, z.code, z.kind, z.area_m2,
                   (SELECT max(day) FROM zones_zonedaycoverage) AS latest
            FROM day_rows r JOIN zones_zone z ON z.id = r.zone_id
            """,
            {
                "srid": settings.SRID,
                "shifts": [shift_id for shift_id, _day, _g in pieces],
                "days": [day for _shift_id, day, _g in pieces],
                "wkbs": [shapely.to_wkb(g) for _shift_id, _day, g in pieces],
            },
            prepare=True,
        )
        rows = cursor.fetchall()
    figures = {}
    new_zone_days: list[tuple[int, date]] = []
    # The latest covered day: the stored one, or one of the zone-days just written.
    latest: date | None = None
    for zone_id, day, covered_m2, inserted, code, kind, area_m2, stored_latest in rows:
        zone = {"code": code, "kind": kind, "area_m2": area_m2}
        figures[(zone_id, day)] = _figure(zone_id, day, zone, covered_m2)
        if inserted:
            new_zone_days.append((zone_id, day))
        latest = max(d for d in (latest, day, stored_latest) if d is not None)
    if new_zone_days:
        # A zone-day that is new may be the first coverage of its zone in some of the weeks
        # holding it: those weekly rows (up to the horizon) do not exist yet.
        horizon = _week_horizon(latest)
        _week_whites_write(
            _week_rows(
                [end for _zone, day in new_zone_days for end in _week_ends(day, until=horizon)],
                zone_ids=sorted({zone_id for zone_id, _day in new_zone_days}),
                kept=False,
            )
        )
        transaction.on_commit(week_whites_extend, robust=True)
    return figures


def _zone_days_rebuild(*, days: Iterable[date], zone_ids: Sequence[int] | None = None) -> None:
    """Recompute zone-days from the pieces: each zone's part of the union of that day's pieces."""
    days = sorted(set(days))
    zone_filter = "AND z.id = ANY(%s)" if zone_ids is not None else ""
    zone_args: list = [list(zone_ids)] if zone_ids is not None else []
    union = _POLY.format(g="ST_Union(ST_Intersection(z.geom, p.geom))")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM zones_zonedaycoverage z
                WHERE z.day = ANY(%s) {zone_filter.replace("z.id", "z.zone_id")}""",
            [days, *zone_args],
        )
        cursor.execute(
            f"""
            INSERT INTO zones_zonedaycoverage
                (zone_id, day, geom, shift_ids, updated_at)
            SELECT zone_id, day, {_VALID.format(g="g")}, shifts, now()
            FROM (
              SELECT z.id AS zone_id, p.day, {union} AS g,
                     array_agg(DISTINCT p.shift_id) AS shifts
              FROM zones_coveragepiece p
              JOIN zones_zone z ON ST_Intersects(z.geom, p.geom)
              WHERE p.day = ANY(%s) {zone_filter}
              GROUP BY z.id, p.day
            ) u
            WHERE NOT ST_IsEmpty(g)
            """,
            [days, *zone_args],
        )


# --- Rolling weekly white zones (zones.models.ZoneWeekWhite) ----------------------------------
#
# Weekly rows are kept for the weeks ending up to the horizon: the day after the latest service
# day that has coverage (tonight's week, and tomorrow's for the map of the day after). Every
# piece of coverage is taken out of the rows whose week holds its day, so a live batch rewrites
# two rows of each zone it touches rather than seven. A row that exists is exact; a row that
# is missing (a week past the horizon, or one whose zone nothing covered) is computed from the
# zone-days by its readers (zones.selectors, zones.reports), which costs a union. So after each
# commit that starts a zone-day, week_whites_extend fills the rows up to the horizon that are
# missing, zone by zone: the first batch of a night fills tomorrow's row of every zone.


def _latest_covered_day() -> date | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(day) FROM zones_zonedaycoverage")
        return cursor.fetchone()[0]


def _week_horizon(latest: date | None) -> date | None:
    """The last day of the latest week kept, given the latest covered service day."""
    return latest + timedelta(days=1) if latest else None


def _week_ends(day: date, *, until: date | None = None) -> list[date]:
    """The last days of the 7-day windows that hold `day` (up to `until`, when given)."""
    ends = [day + timedelta(days=n) for n in range(WEEK_DAYS)]
    return [end for end in ends if until is None or end <= until]


def week_whites_extend() -> int:
    """Fill the weekly rows that are missing up to the horizon (for the seven weeks ending
    there), for every zone some coverage of those weeks touched; each zone in its own
    transaction, under its lock, so that a batch writing there waits a moment, not for all of
    them. Run after commit by the writers that start zone-days. Returns the rows filled."""
    horizon = _week_horizon(_latest_covered_day())
    if horizon is None:
        return 0
    days = [horizon - timedelta(days=n) for n in range(WEEK_DAYS)]
    filled = 0
    for zone_id in sorted(_week_rows(days, kept=False)):
        with transaction.atomic():
            _lock_zone_ids([zone_id])
            # Read again under the lock: another writer may have filled them meanwhile.
            missing = _week_rows(days, zone_ids=[zone_id], kept=False)
            _week_whites_write(missing)
            filled += sum(len(ends) for ends in missing.values())
    return filled


def _week_rows(
    last_days: Sequence[date], *, zone_ids: Sequence[int] | None = None, kept: bool
) -> dict[int, list[date]]:
    """Per zone (of `zone_ids`, or every zone), the days of `last_days` whose weekly row is
    kept (`kept`), or is missing while some zone-day of its week exists (not `kept`)."""
    if not last_days:
        return {}
    row = "SELECT 1 FROM zones_zoneweekwhite w WHERE w.zone_id = z.id AND w.last_day = d"
    condition = (
        f"EXISTS ({row})"
        if kept
        else f"""NOT EXISTS ({row}) AND EXISTS (
                   SELECT 1 FROM zones_zonedaycoverage c
                   WHERE c.zone_id = z.id AND c.day BETWEEN d - {WEEK_DAYS - 1} AND d)"""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT z.id, array_agg(d ORDER BY d)
            FROM zones_zone z CROSS JOIN unnest(%(days)s::date[]) AS d
            WHERE (%(zones)s::bigint[] IS NULL OR z.id = ANY(%(zones)s)) AND {condition}
            GROUP BY z.id
            """,
            {
                "days": sorted(set(last_days)),
                "zones": list(zone_ids) if zone_ids is not None else None,
            },
        )
        return {zone_id: list(ends) for zone_id, ends in cursor.fetchall()}


# Threads buffering shift-days in coverage_rebuild: one per core, two at least (the database
# works on the inserts meanwhile).
REBUILD_THREADS = max(2, os.cpu_count() or 1)


def _week_whites_write(wanted: Mapping[int, Sequence[date]]) -> None:
    """Compute and store the weekly white rows `wanted` (zone id -> last days) from the
    zone-days, with shapely, in threads when there are several zones (one zone per task):
    each is the zone minus each zone-day of its week in turn. That is half the time of a
    difference with their union (measured on the benchmark's week), and GEOS 3.14's overlay
    (shapely's) takes these near-coincident borders where the server's 3.11 failed."""
    wanted = {zone_id: sorted(set(ends)) for zone_id, ends in wanted.items() if ends}
    if not wanted:
        return
    zone_ids = sorted(wanted)
    first = min(ends[0] for ends in wanted.values()) - timedelta(days=WEEK_DAYS - 1)
    last = max(ends[-1] for ends in wanted.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, ST_AsBinary(geom) FROM zones_zone WHERE id = ANY(%s) ORDER BY id",
            [zone_ids],
        )
        zones = [(zone_id, bytes(wkb)) for zone_id, wkb in cursor.fetchall()]
        cursor.execute(
            """SELECT zone_id, day, ST_AsBinary(geom) FROM zones_zonedaycoverage
               WHERE zone_id = ANY(%s) AND day BETWEEN %s AND %s""",
            [zone_ids, first, last],
        )
        covered: dict[int, dict[date, bytes]] = defaultdict(dict)
        for zone_id, day, wkb in cursor.fetchall():
            covered[zone_id][day] = bytes(wkb)

    def whites(zone: tuple[int, bytes]) -> list[tuple[int, date, bytes]]:
        zone_id, wkb = zone
        geom = shapely.from_wkb(wkb)
        days = {day: shapely.from_wkb(g) for day, g in covered.get(zone_id, {}).items()}
        rows = []
        for end in wanted[zone_id]:
            white = geom
            for n in range(WEEK_DAYS):
                if (day := end - timedelta(days=n)) in days:
                    white = shapely.difference(white, days[day])
            rows.append((zone_id, end, shapely.to_wkb(as_multipolygon(white))))
        return rows

    if len(zones) > 1:
        with ThreadPoolExecutor(max_workers=REBUILD_THREADS) as pool:
            rows = [row for zone_rows in pool.map(whites, zones) for row in zone_rows]
    else:
        rows = [row for zone in zones for row in whites(zone)]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            cursor.execute(
                """
                INSERT INTO zones_zoneweekwhite (zone_id, last_day, geom, updated_at)
                SELECT z, d, ST_GeomFromWKB(g, %s), now()
                FROM unnest(%s::bigint[], %s::date[], %s::bytea[]) AS r(z, d, g)
                ON CONFLICT (zone_id, last_day) DO UPDATE
                  SET geom = EXCLUDED.geom, updated_at = now()
                """,
                [
                    settings.SRID,
                    [r[0] for r in chunk],
                    [r[1] for r in chunk],
                    [r[2] for r in chunk],
                ],
            )


@dataclass
class RebuildResult:
    shift_days: int
    zone_days: int


def coverage_rebuild(*, day_from: date | None = None, day_to: date | None = None) -> RebuildResult:
    """Recompute pieces and zone-days from the raw fixes, for the days in [day_from, day_to]
    (every day when not given) that have raw fixes. Same result as the incremental path."""
    day_sql = service_day_sql("p.recorded_at")
    where = ["p.accuracy <= %s"]
    args: list = [settings.MAX_ACCURACY_M]
    if day_from:
        where.append("p.recorded_at >= %s")
        args.append(service_day_bounds(day_from)[0])
    if day_to:
        where.append("p.recorded_at < %s")
        args.append(service_day_bounds(day_to)[1])
    with transaction.atomic():
        # Every zone, in ascending order as the writers take them: a batch, or the filling of
        # weekly rows after one, waits for the rebuild instead of writing from the zone-days
        # it replaces.
        zone_ids = list(Zone.objects.order_by("pk").values_list("pk", flat=True))
        _lock_zone_ids(zone_ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT p.shift_id, {day_sql} AS day, p.recorded_at,
                           ST_X(p.point), ST_Y(p.point)
                    FROM maraudes_position p WHERE {" AND ".join(where)}
                    ORDER BY p.shift_id, p.recorded_at""",
                args,
            )
            rows = cursor.fetchall()
        tracks: dict[tuple[int, date], list[TrackFix]] = defaultdict(list)
        for shift_id, day, t, x, y in rows:
            tracks[(shift_id, day)].append(TrackFix(t, x, y))
        shifts = Shift.objects.select_related("team").in_bulk({key[0] for key in tracks})
        # Only days that still have raw fixes are rebuilt: once fixes are purged after the
        # retention period, the coverage of their days is all that is left, and is kept.
        days = sorted({key[1] for key in tracks})
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM zones_coveragepiece WHERE day = ANY(%s)", [days])
        # Buffering is most of a rebuild, and shapely releases the GIL while it buffers and
        # unions: the shift-days are shared among threads (pure geometry, no database).
        keys = list(tracks)
        with ThreadPoolExecutor(max_workers=REBUILD_THREADS) as pool:
            pieces = pool.map(
                lambda key: _coverage_of(shifts[key[0]], tracks[key]), keys, chunksize=8
            )
            batch: list[tuple[int, date, MultiPolygon]] = []
            for (shift_id, day), piece in zip(keys, pieces, strict=True):
                if not piece.is_empty:
                    batch.append((shift_id, day, piece))
                if len(batch) >= 200:
                    _pieces_insert(batch)
                    batch = []
        _pieces_insert(batch)
        presence_rebuild(
            days=days,
            tracks={key: (track, shifts[key[0]].team.max_speed) for key, track in tracks.items()},
            max_gap_s=settings.MAX_GAP_S,
        )
        if days:
            _zone_days_rebuild(days=days)
            horizon = _week_horizon(_latest_covered_day())
            with connection.cursor() as cursor:
                # Rows past the horizon would not be recomputed: none is kept.
                cursor.execute(
                    """DELETE FROM zones_zoneweekwhite
                       WHERE %(horizon)s::date IS NULL OR last_day > %(horizon)s""",
                    {"horizon": horizon},
                )
            # No end when every rebuilt day is past the horizon (days whose fixes cover no
            # zone, after the latest covered night).
            ends = sorted({end for day in days for end in _week_ends(day, until=horizon)})
            if horizon is not None:
                _week_whites_write(dict.fromkeys(zone_ids, ends))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM zones_zonedaycoverage WHERE day = ANY(%s)", [days])
            (zone_days,) = cursor.fetchone()
    return RebuildResult(shift_days=len(tracks), zone_days=zone_days)


# --- Assignments: zone x team x night -------------------------------------------------------


# Nights are planned ahead, but a date more than a year away is a typo, not a plan.
ASSIGNMENT_MAX_AHEAD = timedelta(days=366)


def assignment_data(assignment: Assignment) -> dict:
    """An assignment as live clients see it (the API's representation, same keys)."""
    zone, team = assignment.zone, assignment.team
    return {
        "id": assignment.pk,
        "zone": zone.pk,
        "zone_code": zone.code,
        "zone_name": zone.name,
        "zone_kind": zone.kind,
        "team": team.pk,
        "team_name": team.name,
        "color": team.color,
        "day": assignment.day.isoformat(),
    }


def _night(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def assignment_create(
    *, zone: Zone, team: Team, day: date, by: AbstractBaseUser | None
) -> Assignment:
    """Give a zone to a team for the night of service day `day` (tonight or later).

    Publishes `assignment_changed` to the coordination and the team's feed after commit.
    Giving the same zone to two teams is allowed (a coordinator may mean it); the conflict
    selector flags it.
    """
    today = service_day(timezone.now())
    if day < today:
        raise ValidationError(
            {
                "day": _(
                    "La nuit du %(day)s est passée : on affecte pour cette nuit (%(today)s) "
                    "ou une nuit à venir."
                )
                % {"day": _night(day), "today": _night(today)}
            }
        )
    if day > today + ASSIGNMENT_MAX_AHEAD:
        raise ValidationError(
            {"day": _("Au plus un an à l'avance (jusqu'au %(last)s).")
             % {"last": _night(today + ASSIGNMENT_MAX_AHEAD)}}
        )  # fmt: skip
    if not team.is_active:
        raise ValidationError(
            {"team": _("L'équipe « %(team)s » n'est plus active.") % {"team": team.name}}
        )
    duplicate = ValidationError(
        {
            "zone": _("« %(zone)s » est déjà affectée à %(team)s la nuit du %(day)s.")
            % {"zone": zone.name, "team": team.name, "day": _night(day)}
        }
    )
    try:
        with transaction.atomic():
            assignment = Assignment.objects.create(
                zone=zone,
                team=team,
                day=day,
                created_by=by if by is not None and by.is_authenticated else None,
            )
            realtime.assignment_changed(
                action="created", assignment_data=assignment_data(assignment), team_id=team.pk
            )
    except IntegrityError:  # assignment_unique: made already, maybe by a concurrent request
        raise duplicate from None
    return assignment


def assignment_delete(*, assignment: Assignment, by: AbstractBaseUser | None) -> None:
    """Take a zone back from a team. Past nights are history and stay as they were."""
    today = service_day(timezone.now())
    if assignment.day < today:
        raise ValidationError(
            {
                "day": _("La nuit du %(day)s est passée : son affectation ne se supprime plus.")
                % {"day": _night(assignment.day)}
            }
        )
    data = assignment_data(assignment)
    with transaction.atomic():
        deleted, _by_model = Assignment.objects.filter(pk=assignment.pk).delete()
        if deleted:  # else a concurrent request deleted it and told everyone
            realtime.assignment_changed(
                action="deleted", assignment_data=data, team_id=assignment.team_id
            )
