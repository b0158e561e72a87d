"""White zones and coverage, over any range of service days, for any zone kind."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import SeesAggregates
from maraudes.days import WindowError, days_window
from zones.selectors import white_zones, zone_kinds, zones_coverage

WINDOW_PARAMS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="premier jour de service (inclus)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="dernier jour de service (inclus)"),
    OpenApiParameter("kind", OpenApiTypes.STR, description="type de zone (quartier…)"),
]


def parse_window_query(request: Request) -> tuple:
    params = request.query_params
    unknown = sorted(set(params) - {"from", "to", "kind", "format"})
    if unknown:
        raise ValidationError({name: ["Paramètre inconnu."] for name in unknown})
    try:
        day_from, day_to = days_window(params.get("from"), params.get("to"))
    except WindowError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None
    kind = params.get("kind") or None
    if kind is not None and kind not in zone_kinds():
        known = ", ".join(zone_kinds()) or "aucun"
        raise ValidationError(
            {"kind": [f"Aucune zone de type « {kind} ». Types connus : {known}."]}
        )
    return day_from, day_to, kind


class WhiteZonesApi(APIView):
    permission_classes = [IsAuthenticated, SeesAggregates]

    @extend_schema(
        parameters=WINDOW_PARAMS,
        responses={200: OpenApiTypes.OBJECT},
        description="Zones blanches : GeoJSON (WGS84), une entité par zone ayant une partie "
        "non couverte, par priorité décroissante.",
    )
    def get(self, request: Request) -> Response:
        day_from, day_to, kind = parse_window_query(request)
        features = []
        for white in white_zones(day_from=day_from, day_to=day_to, kind=kind):
            row = white.coverage
            features.append(
                {
                    "type": "Feature",
                    "id": row.zone_id,
                    "geometry": json.loads(row.white_geojson) if row.white_geojson else None,
                    "properties": white.as_dict(),
                }
            )
        return Response(
            {
                "type": "FeatureCollection",
                "from": day_from.isoformat(),
                "to": day_to.isoformat(),
                "features": features,
            }
        )


class CoverageApi(APIView):
    permission_classes = [IsAuthenticated, SeesAggregates]

    @extend_schema(parameters=WINDOW_PARAMS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        day_from, day_to, kind = parse_window_query(request)
        rows = zones_coverage(day_from=day_from, day_to=day_to, kind=kind)
        return Response([r.as_dict() for r in rows])
