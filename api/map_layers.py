"""Layers of the coordinator's live map that the other endpoints do not serve: the encounters
of a window (GET on /api/v1/encounters/, whose POST is the phones') and the active teams."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.encounters import EncounterCreateApi
from api.params import reject_unknown_params
from api.permissions import IsCoordination
from api.views import parse_bbox
from maraudes.days import WindowError, days_window, service_day_bounds
from maraudes.selectors import encounters_in_window, live_teams

# A week of Paris outreach is a few thousand encounters; past this the map asks for a
# smaller window or a bbox rather than shipping megabytes.
MAX_ENCOUNTERS = 20_000


class EncountersApi(EncounterCreateApi):
    """POST: a phone logs an encounter (EncounterCreateApi). GET: the coordination's map layer,
    counts and categories only: the note is never on a shared map."""

    def get_permissions(self):
        if self.request.method == "GET":
            return [IsAuthenticated(), IsCoordination()]
        return super().get_permissions()

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="premier jour de service"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="dernier jour de service"),
            OpenApiParameter(
                "bbox", OpenApiTypes.STR, description="min_lon,min_lat,max_lon,max_lat (WGS84)"
            ),
        ],
        responses={200: OpenApiTypes.OBJECT},
        description="Rencontres des jours de service [from, to] (défaut : les 7 derniers), "
        "GeoJSON (WGS84), les plus récentes d'abord ; sans la note. `truncated` dit si "
        f"la limite de {MAX_ENCOUNTERS} a coupé la liste.",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"from", "to", "bbox"})
        params = request.query_params
        try:
            day_from, day_to = days_window(params.get("from"), params.get("to"))
        except WindowError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        bbox = params.get("bbox")
        points, truncated = encounters_in_window(
            start=service_day_bounds(day_from)[0],
            end=service_day_bounds(day_to)[1],
            bbox=parse_bbox(bbox) if bbox else None,
            limit=MAX_ENCOUNTERS,
        )
        features = [
            {
                "type": "Feature",
                "id": p.id,
                "geometry": {"type": "Point", "coordinates": [round(p.lon, 6), round(p.lat, 6)]},
                "properties": {
                    "shift": p.shift,
                    "team": p.team,
                    "seen_at": p.seen_at.isoformat(),
                    "people_count": p.people_count,
                    "needs": p.needs,
                    "actions": p.actions,
                },
            }
            for p in points
        ]
        return Response(
            {
                "type": "FeatureCollection",
                "from": day_from.isoformat(),
                "to": day_to.isoformat(),
                "truncated": truncated,
                "features": features,
            }
        )


class LiveTeamsApi(APIView):
    permission_classes = [IsAuthenticated, IsCoordination]

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="Les équipes en maraude (tournées ouvertes) : équipe, couleur, dernier "
        "point (lon, lat, t, précision) et trace des 15 dernières minutes (LineString WGS84). "
        "L'état initial de la carte, que les événements `position` font ensuite bouger.",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, set())
        return Response(live_teams())
