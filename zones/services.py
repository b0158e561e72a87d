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

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import shapely
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg.errors import DeadlockDetected
from shapely.geometry import MultiPolygon

from maraudes import realtime
from maraudes.days import service_day, service_day_bounds, service_day_sql
from maraudes.fixes import Fix
from maraudes.models import PositionSource, Shift, Team
from maraudes.services import PositionsRecorded, StoredFix, positions_record
from zones.geometry import TrackFix, track_coverage
from zones.models import WEEK_DAYS, Assignment, Zone, ZoneDayCoverage
from zones.presence import presence_add, presence_rebuild, presence_replace

# Union/intersection results kept valid without paying for MakeValid when they already are.
_VALID = "CASE WHEN ST_IsValid({g}) THEN {g} ELSE ST_MakeValid({g}) END"
_POLY = "ST_Multi(ST_CollectionExtract({g}, 3))"


@dataclass
class CoverageChange:
    """What a coverage update touched: (zone id, day) pairs, for events and tests."""

    zone_days: set[tuple[int, date]] = field(default_factory=set)
    recomputed_days: set[date] = field(default_factory=set)


def track_ingest(
    *, shift: Shift, fixes: Sequence[Fix], source: str = PositionSource.API
) -> PositionsRecorded:
    """Store a batch of fixes and bring coverage up to date, in one transaction.

    Rows shared between shifts are locked in zone order, so concurrent batches wait for each
    other instead of deadlocking; should PostgreSQL still pick a victim, the whole batch is
    retried (it rolled back whole), unless the caller holds an outer transaction.
    """
    attempts = 1 if connection.in_atomic_block else 3
    for attempt in range(1, attempts + 1):
        try:
            return _track_ingest(shift=shift, fixes=fixes, source=source)
        except OperationalError as exc:
            if attempt == attempts or not isinstance(exc.__cause__, DeadlockDetected):
                raise
    raise AssertionError("unreachable")


def _track_ingest(*, shift: Shift, fixes: Sequence[Fix], source: str) -> PositionsRecorded:
    with transaction.atomic():
        recorded = positions_record(shift=shift, fixes=fixes, source=source)
        if recorded.accepted:
            change = coverage_update(shift=shift, fixes=recorded.accepted)
            latest = max(recorded.accepted, key=lambda f: f.t)
            # Compare instants, not datetimes: an ambiguous local time (the October clock
            # change) never equals a UTC datetime (PEP 495).
            sent = next(f for f in fixes if f.t.timestamp() == latest.t.timestamp())
            realtime.position(
                shift=shift, t=sent.t, lon=sent.lon, lat=sent.lat, accuracy=sent.accuracy
            )
            if change.zone_days:
                realtime.coverage_changed(zones=_zone_days_figures(change.zone_days))
    return recorded


def _zone_days_figures(zone_days: set[tuple[int, date]]) -> list[dict]:
    """The covered area of each changed zone-day (0 when nothing is left), for live maps."""
    zone_ids = sorted({zone_id for zone_id, _day in zone_days})
    days = sorted({day for _zone_id, day in zone_days})
    covered = {
        (row["zone_id"], row["day"]): row["covered_m2"]
        for row in ZoneDayCoverage.objects.filter(zone_id__in=zone_ids, day__in=days).values(
            "zone_id", "day", "covered_m2"
        )
    }
    zones = Zone.objects.in_bulk(zone_ids)
    return [
        {
            "zone": zone_id,
            "code": zones[zone_id].code,
            "kind": zones[zone_id].kind,
            "day": day.isoformat(),
            "covered_m2": round(covered.get((zone_id, day), 0.0), 1),
            "area_m2": round(zones[zone_id].area_m2, 1),
        }
        for zone_id, day in sorted(zone_days)
        if zone_id in zones
    ]


def coverage_update(*, shift: Shift, fixes: Sequence[StoredFix]) -> CoverageChange:
    """Bring coverage up to date after `fixes` (new, stored) arrived for `shift`."""
    change = CoverageChange()
    kept = [f for f in fixes if f.accuracy <= settings.MAX_ACCURACY_M]
    by_day: dict[date, list[StoredFix]] = defaultdict(list)
    for fix in kept:
        by_day[service_day(fix.t)].append(fix)
    for day, day_fixes in sorted(by_day.items()):
        day_fixes.sort(key=lambda f: f.t)
        previous, later_count = _neighbours(shift, day, day_fixes)
        if later_count == len(day_fixes) - 1:
            track = ([previous] if previous else []) + [TrackFix(f.t, f.x, f.y) for f in day_fixes]
            piece = _coverage_of(shift, track)
            presence_add(
                shift_id=shift.pk,
                day=day,
                track=track,
                max_gap_s=settings.MAX_GAP_S,
                max_speed=shift.team.max_speed,
            )
            _piece_insert(shift.pk, day, piece)
            touched = _zone_days_add(shift.pk, day, piece)
            _week_whites_subtract({zone_id for zone_id, _day in touched}, day, piece)
            change.zone_days |= touched
        else:
            change.zone_days |= _shift_day_recompute(shift, day)
            change.recomputed_days.add(day)
    return change


def coverage_update_many(batches: Sequence[tuple[Shift, Sequence[StoredFix]]]) -> CoverageChange:
    """`coverage_update` for the new fixes of several shifts at once (a shift may appear
    more than once; its batches in arrival order), then one `coverage_changed` event for all
    the zone-days touched, sent after commit. Call it inside a transaction."""
    change = CoverageChange()
    for shift, fixes in batches:
        if fixes:
            one = coverage_update(shift=shift, fixes=fixes)
            change.zone_days |= one.zone_days
            change.recomputed_days |= one.recomputed_days
    if change.zone_days:
        realtime.coverage_changed(zones=_zone_days_figures(change.zone_days))
    return change


def _coverage_of(shift: Shift, track: Sequence[TrackFix]) -> MultiPolygon:
    team = shift.team
    return track_coverage(
        track, radius=team.radius_m, max_gap_s=settings.MAX_GAP_S, max_speed=team.max_speed
    )


def _kept_filter() -> str:
    return "shift_id = %s AND accuracy <= %s AND recorded_at >= %s AND recorded_at < %s"


def _neighbours(shift: Shift, day: date, new: Sequence[StoredFix]) -> tuple[TrackFix | None, int]:
    """The kept fix just before the batch that day, and how many kept fixes follow its start."""
    start, end = service_day_bounds(day)
    first = new[0].t
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
              (SELECT count(*) FROM maraudes_position
                 WHERE {_kept_filter()} AND recorded_at > %s),
              prev.recorded_at, ST_X(prev.point), ST_Y(prev.point)
            FROM (SELECT 1) one
            LEFT JOIN LATERAL (
              SELECT recorded_at, point FROM maraudes_position
              WHERE {_kept_filter()} AND recorded_at < %s
              ORDER BY recorded_at DESC LIMIT 1
            ) prev ON true
            """,
            [shift.pk, settings.MAX_ACCURACY_M, start, end, first] * 2,
        )
        later, t, x, y = cursor.fetchone()
    previous = TrackFix(t, x, y) if t is not None else None
    return previous, later


def _shift_day_fixes(shift: Shift, day: date) -> list[TrackFix]:
    start, end = service_day_bounds(day)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT recorded_at, ST_X(point), ST_Y(point) FROM maraudes_position
                WHERE {_kept_filter()} ORDER BY recorded_at""",
            [shift.pk, settings.MAX_ACCURACY_M, start, end],
        )
        return [TrackFix(t, x, y) for t, x, y in cursor.fetchall()]


def _shift_day_recompute(shift: Shift, day: date) -> set[tuple[int, date]]:
    """Replace a shift-day's pieces by one computed from all its raw fixes; re-union the
    zone-days its old or new coverage touches."""
    track = _shift_day_fixes(shift, day)
    piece = _coverage_of(shift, track)
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
        _week_whites_fill(zone_ids=sorted(zone_ids), last_days=_week_ends(day), replace=True)
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


def _zone_days_add(shift_id: int, day: date, piece: MultiPolygon) -> set[tuple[int, date]]:
    """Union a piece into the zone-days it touches (the append path)."""
    if piece.is_empty:
        return set()
    clipped = _POLY.format(g="ST_Intersection(z.geom, p.g)")
    merged = _POLY.format(g="ST_Union(zones_zonedaycoverage.geom, EXCLUDED.geom)")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH p AS (SELECT ST_GeomFromWKB(%s, %s) AS g),
            hit AS (
              SELECT z.id AS zone_id, {clipped} AS g
              FROM zones_zone z, p WHERE ST_Intersects(z.geom, p.g)
              ORDER BY z.id  -- rows locked in one order: concurrent batches cannot deadlock
            )
            INSERT INTO zones_zonedaycoverage
                (zone_id, day, geom, shift_ids, updated_at)
            SELECT zone_id, %s, g, ARRAY[%s]::bigint[], now()
            FROM hit WHERE NOT ST_IsEmpty(g)
            ON CONFLICT (zone_id, day) DO UPDATE SET
              geom = {_VALID.format(g=merged)},
              shift_ids = CASE WHEN %s = ANY(zones_zonedaycoverage.shift_ids)
                               THEN zones_zonedaycoverage.shift_ids
                               ELSE zones_zonedaycoverage.shift_ids || EXCLUDED.shift_ids END,
              updated_at = now()
            RETURNING zone_id
            """,
            [shapely.to_wkb(piece), settings.SRID, day, shift_id, shift_id],
        )
        return {(row[0], day) for row in cursor.fetchall()}


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


def _week_ends(day: date) -> list[date]:
    """The last days of the 7-day windows that hold `day`."""
    return [day + timedelta(days=n) for n in range(WEEK_DAYS)]


def _week_whites_subtract(zone_ids: set[int], day: date, piece: MultiPolygon) -> None:
    """A new piece of coverage on `day`: take it out of the weekly white parts holding that
    day (existing rows), and fill the rows still missing from the zone-days."""
    if not zone_ids or piece.is_empty:
        return
    ends = _week_ends(day)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH locked AS (
              -- rows locked in one order: concurrent batches cannot deadlock
              SELECT id FROM zones_zoneweekwhite
              WHERE zone_id = ANY(%s) AND last_day = ANY(%s)
              ORDER BY zone_id, last_day FOR UPDATE
            )
            UPDATE zones_zoneweekwhite w
            SET geom = {_VALID.format(g=_POLY.format(g="ST_Difference(w.geom, p.g)"))},
                updated_at = now()
            FROM locked, (SELECT ST_GeomFromWKB(%s, %s) AS g) p
            WHERE w.id = locked.id AND ST_Intersects(w.geom, p.g)
            """,
            [sorted(zone_ids), ends, shapely.to_wkb(piece), settings.SRID],
        )
    _week_whites_fill(zone_ids=sorted(zone_ids), last_days=ends, replace=False)


def _week_whites_fill(
    *, zone_ids: Sequence[int] | None, last_days: Sequence[date], replace: bool
) -> None:
    """Compute weekly white parts from the zone-days: the missing rows, or all (`replace`)."""
    white = _VALID.format(
        g="CASE WHEN u.g IS NULL THEN z.geom ELSE "
        + _POLY.format(g="ST_Difference(z.geom, u.g)")
        + " END"
    )
    missing = (
        ""
        if replace
        else """AND NOT EXISTS (SELECT 1 FROM zones_zoneweekwhite w
                                WHERE w.zone_id = z.id AND w.last_day = d.day)"""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO zones_zoneweekwhite (zone_id, last_day, geom, updated_at)
            SELECT z.id, d.day, {white}, now()
            FROM zones_zone z
            CROSS JOIN unnest(%(days)s::date[]) AS d(day)
            LEFT JOIN LATERAL (
              SELECT ST_Union(c.geom) AS g FROM zones_zonedaycoverage c
              WHERE c.zone_id = z.id AND c.day BETWEEN d.day - {WEEK_DAYS - 1} AND d.day
            ) u ON true
            WHERE (%(zones)s::bigint[] IS NULL OR z.id = ANY(%(zones)s)) {missing}
            ORDER BY z.id, d.day
            ON CONFLICT (zone_id, last_day) DO UPDATE
              SET geom = EXCLUDED.geom, updated_at = now()
            """,
            {"days": list(last_days), "zones": list(zone_ids) if zone_ids is not None else None},
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
        batch: list[tuple[int, date, MultiPolygon]] = []
        for (shift_id, day), track in tracks.items():
            piece = _coverage_of(shifts[shift_id], track)
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
            last_days = sorted({end for day in days for end in _week_ends(day)})
            _week_whites_fill(zone_ids=None, last_days=last_days, replace=True)
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
