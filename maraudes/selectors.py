"""Reads of the outreach domain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.gis.geos import Polygon
from django.db import connection
from django.db.models import QuerySet

from maraudes.models import Organization, Shift, Team
from maraudes.roles import AGGREGATES, AnyUser, user_has_role, user_team_ids


def teams_visible_to(user: AnyUser) -> QuerySet[Team]:
    teams = Team.objects.select_related("organization").order_by("organization__name", "name")
    if user_has_role(user, AGGREGATES):
        return teams
    return teams.filter(id__in=user_team_ids(user))


def organizations_visible_to(user: AnyUser) -> QuerySet[Organization]:
    if user_has_role(user, AGGREGATES):
        return Organization.objects.order_by("name")
    return (
        Organization.objects.filter(teams__id__in=user_team_ids(user)).distinct().order_by("name")
    )


def shifts_visible_to(user: AnyUser) -> QuerySet[Shift]:
    shifts = Shift.objects.select_related("team", "team__organization")
    if user_has_role(user, AGGREGATES):
        return shifts
    return shifts.filter(team_id__in=user_team_ids(user))


def shift_track(*, shift: Shift) -> dict:
    """The shift's fixes as a GeoJSON FeatureCollection in WGS84: one LineString of the
    whole track in time order (for drawing), with the shift's figures as properties."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*), min(recorded_at), max(recorded_at),
                      ST_AsGeoJSON(ST_Transform(ST_MakeLine(point ORDER BY recorded_at), 4326), 6)
               FROM maraudes_position WHERE shift_id = %s""",
            [shift.pk],
        )
        count, first, last, line = cursor.fetchone()
    features = []
    if count:
        geometry = json.loads(line)
        if count == 1:
            geometry = {"type": "Point", "coordinates": geometry["coordinates"][0]}
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "shift": shift.pk,
                    "team": shift.team_id,
                    "fix_count": count,
                    "first_fix": first.isoformat(),
                    "last_fix": last.isoformat(),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --- Live map layers ------------------------------------------------------------------------


# An active team's trail on the live map: its fixes of the last quarter of an hour.
TRAIL = timedelta(minutes=15)

_LIVE_TEAMS_SQL = """
SELECT s.id, s.started_at, t.id, t.name, t.color, t.mode, o.name,
       last.recorded_at, ST_X(last.pt), ST_Y(last.pt), last.accuracy,
       trail.n, trail.line, trail.times
FROM maraudes_shift s
JOIN maraudes_team t ON t.id = s.team_id
JOIN maraudes_organization o ON o.id = t.organization_id
LEFT JOIN LATERAL (
  SELECT p.recorded_at, ST_Transform(p.point, 4326) AS pt, p.accuracy
  FROM maraudes_position p
  WHERE p.shift_id = s.id
  ORDER BY p.recorded_at DESC
  LIMIT 1
) last ON true
LEFT JOIN LATERAL (
  SELECT count(*) AS n,
         ST_AsGeoJSON(ST_Transform(ST_MakeLine(p.point ORDER BY p.recorded_at), 4326), 6) AS line,
         array_agg(extract(epoch FROM p.recorded_at)::float8 ORDER BY p.recorded_at) AS times
  FROM maraudes_position p
  WHERE p.shift_id = s.id AND p.accuracy <= %(max_accuracy)s
    AND p.recorded_at >= last.recorded_at - %(trail)s
) trail ON true
WHERE s.ended_at IS NULL
ORDER BY o.name, t.name, s.started_at
"""


def live_teams(*, trail: timedelta = TRAIL) -> list[dict]:
    """Open shifts with their team, last fix (WGS84) and the trail of kept fixes (accuracy
    within MAX_ACCURACY_M) leading to it over `trail`: the initial state of the live map,
    which position events then move. One query, whatever the number of teams."""
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_TEAMS_SQL, {"max_accuracy": settings.MAX_ACCURACY_M, "trail": trail})
        rows = cursor.fetchall()
    teams = []
    for (
        shift_id, started_at, team_id, team_name, color, mode, organization,
        t, lon, lat, accuracy, trail_count, trail_line, trail_times,
    ) in rows:  # fmt: skip
        has_trail = bool(trail_count and trail_count > 1)
        teams.append(
            {
                "shift": shift_id,
                "started_at": started_at.isoformat(),
                "team": team_id,
                "team_name": team_name,
                "color": color,
                "mode": mode,
                "organization": organization,
                "last_fix": None
                if t is None
                else {
                    "t": t.isoformat(),
                    "lon": round(lon, 6),
                    "lat": round(lat, 6),
                    "accuracy": round(accuracy, 1),
                },
                # A line needs two points; one fix is the marker alone. `trail_times` are
                # the unix times of the line's vertices, so a client can trim it as it moves.
                "trail": json.loads(trail_line) if has_trail else None,
                "trail_times": [round(x, 3) for x in trail_times] if has_trail else None,
            }
        )
    return teams


@dataclass(frozen=True)
class EncounterPoint:
    """An encounter as a shared map shows it: where, when, how many, which needs. Never the
    note (DESIGN.md, "Privacy")."""

    id: int
    shift: int
    team: int
    seen_at: datetime
    people_count: int
    needs: list[str]
    actions: list[str]
    lon: float
    lat: float


_ENCOUNTERS_SQL = """
SELECT e.id, e.shift_id, s.team_id, e.seen_at, e.people_count, e.needs, e.actions,
       ST_X(w.g), ST_Y(w.g)
FROM maraudes_encounter e
JOIN maraudes_shift s ON s.id = e.shift_id
CROSS JOIN LATERAL (SELECT ST_Transform(e.point, 4326) AS g) w
WHERE e.seen_at >= %(start)s AND e.seen_at < %(end)s
  AND (%(bbox)s::text IS NULL
       OR ST_Intersects(e.point, ST_Transform(ST_GeomFromEWKT(%(bbox)s), %(srid)s)))
ORDER BY e.seen_at DESC, e.id DESC
LIMIT %(limit)s
"""


def encounters_in_window(
    *, start: datetime, end: datetime, bbox: Polygon | None = None, limit: int = 20_000
) -> tuple[list[EncounterPoint], bool]:
    """Encounters seen in [start, end), latest first, optionally within a bbox (any SRID).
    Returns at most `limit` of them and whether more were left out."""
    with connection.cursor() as cursor:
        cursor.execute(
            _ENCOUNTERS_SQL,
            {
                "start": start,
                "end": end,
                "bbox": bbox.ewkt if bbox is not None else None,
                "srid": settings.SRID,
                "limit": limit + 1,
            },
        )
        rows = cursor.fetchall()
    points = [
        EncounterPoint(i, shift, team, seen_at, people, list(needs), list(actions), lon, lat)
        for i, shift, team, seen_at, people, needs, actions, lon, lat in rows[:limit]
    ]
    return points, len(rows) > limit
