"""Reads of the outreach domain."""

from __future__ import annotations

import json

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
