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

from api.params import reject_unknown_params, zone_kind_param
from api.permissions import SeesAggregates
from maraudes.days import WindowError, days_window
from zones.selectors import staleness_layers, white_zones, zones_coverage

WINDOW_PARAMS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="premier jour de service (inclus)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="dernier jour de service (inclus)"),
    OpenApiParameter("kind", OpenApiTypes.STR, description="type de zone (quartier…)"),
]


def parse_window_query(request: Request) -> tuple:
    reject_unknown_params(request, {"from", "to", "kind"})
    params = request.query_params
    try:
        day_from, day_to = days_window(params.get("from"), params.get("to"))
    except WindowError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None
    return day_from, day_to, zone_kind_param(request)


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


class StalenessApi(APIView):
    permission_classes = [IsAuthenticated, SeesAggregates]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "day", OpenApiTypes.DATE, description="jour de service (défaut : ce soir)"
            ),
            OpenApiParameter("kind", OpenApiTypes.STR, description="type de zone"),
        ],
        responses={200: OpenApiTypes.OBJECT},
        description="Zones découpées selon la dernière visite : cette nuit, 3 jours, 7 jours, "
        "28 jours, pas depuis 28 jours. GeoJSON (WGS84).",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"day", "kind"})
        try:
            _first, day = days_window(None, request.query_params.get("day"), default_days=1)
        except WindowError as exc:
            raise ValidationError({"day": [exc.message]}) from None
        kind = zone_kind_param(request)
        features = [
            {
                "type": "Feature",
                "geometry": json.loads(part.geojson),
                "properties": {
                    "code": part.code,
                    "name": part.name,
                    "staleness": part.staleness,
                    "label": part.label,
                    "area_m2": round(part.area_m2, 1),
                },
            }
            for part in staleness_layers(today=day, kind=kind)
        ]
        return Response({"type": "FeatureCollection", "day": day.isoformat(), "features": features})
