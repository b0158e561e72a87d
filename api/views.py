"""REST views: thin. They parse, call one service or selector, and serialize."""

from __future__ import annotations

import math

from django.contrib.gis.db.models.functions import Transform
from django.contrib.gis.geos import Polygon
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.params import reject_unknown_params, zone_kind_param
from api.permissions import IsAdminRole, IsCoordination
from maraudes import services
from maraudes.selectors import organizations_visible_to, teams_visible_to
from zones.selectors import zones_list

WGS84 = 4326

BAD_REQUEST = OpenApiResponse(
    s.ErrorSerializer, description="Données invalides : le champ fautif est nommé."
)
UNAUTHENTICATED = OpenApiResponse(s.ErrorSerializer, description="Non authentifié.")
FORBIDDEN = OpenApiResponse(s.ErrorSerializer, description="Rôle insuffisant.")


class OrganizationListCreateApi(APIView):
    """Structures: everyone sees those they belong to (all of them for the coordination and
    planners); only administrators create them."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsAdminRole()]
        return [IsAuthenticated()]

    @extend_schema(responses={200: s.OrganizationSerializer(many=True), 401: UNAUTHENTICATED})
    def get(self, request: Request) -> Response:
        orgs = organizations_visible_to(request.user)
        return Response(s.OrganizationSerializer(orgs, many=True).data)

    @extend_schema(
        request=s.OrganizationInSerializer,
        responses={
            201: s.OrganizationSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    )
    def post(self, request: Request) -> Response:
        data = s.OrganizationInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org = services.organization_create(**data.validated_data)
        return Response(s.OrganizationSerializer(org).data, status=status.HTTP_201_CREATED)


class TeamListCreateApi(APIView):
    """Teams: a field member sees their own; the coordination and planners see all; the
    coordination creates them."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsCoordination()]
        return [IsAuthenticated()]

    @extend_schema(responses={200: s.TeamSerializer(many=True), 401: UNAUTHENTICATED})
    def get(self, request: Request) -> Response:
        return Response(s.TeamSerializer(teams_visible_to(request.user), many=True).data)

    @extend_schema(
        request=s.TeamInSerializer,
        responses={201: s.TeamSerializer, 400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def post(self, request: Request) -> Response:
        data = s.TeamInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.team_create(**data.validated_data)
        return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)


def parse_bbox(raw: str) -> Polygon:
    """`min_lon,min_lat,max_lon,max_lat` in WGS84, as Leaflet's map.getBounds().toBBoxString()."""
    try:
        values = [float(p) for p in raw.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValidationError(
            {"bbox": [_("Attendu : quatre nombres min_lon,min_lat,max_lon,max_lat (WGS84).")]}
        )
    x0, y0, x1, y1 = values
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise ValidationError(
            {"bbox": [_("Bornes invalides : il faut min < max, longitudes ±180, latitudes ±90.")]}
        )
    poly = Polygon.from_bbox((x0, y0, x1, y1))
    poly.srid = WGS84
    return poly


class ZoneListApi(APIView):
    """Map layer: zones as GeoJSON in WGS84 (stored in the metric SRID, transformed here)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind", OpenApiTypes.STR, description="Type de zone : arrondissement, quartier…"
            ),
            OpenApiParameter(
                "bbox",
                OpenApiTypes.STR,
                description="min_lon,min_lat,max_lon,max_lat (WGS84), ex. 2.30,48.84,2.38,48.87",
            ),
        ],
        responses={
            200: s.ZoneFeatureSerializer(many=True),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
        },
        description="Les zones en GeoJSON (FeatureCollection, WGS84), par type et par bbox.",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"kind", "bbox"})
        kind = zone_kind_param(request)
        bbox = request.query_params.get("bbox")
        zones = zones_list(kind=kind, bbox=parse_bbox(bbox) if bbox else None).annotate(
            geom_wgs84=Transform("geom", WGS84)
        )
        return Response(s.ZoneFeatureSerializer(zones, many=True).data)
