"""Assignments: which team walks which zone on which night, and what is wrong with the plan."""

from __future__ import annotations

from datetime import date

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.params import reject_unknown_params, zone_kind_param
from api.permissions import IsCoordination
from api.serializers import ErrorSerializer, StrictSerializer
from maraudes.days import WindowError, days_window
from maraudes.models import Role, Team
from maraudes.roles import COORDINATION, user_has_role, user_team_ids
from zones import services
from zones.models import Assignment, Zone
from zones.selectors import assignment_conflicts, assignments_for_day

BAD_REQUEST = OpenApiResponse(
    ErrorSerializer, description="Données invalides : le champ est nommé."
)
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="Rôle insuffisant.")


class AssignmentIn(StrictSerializer):
    # pk_field: an integer id, not anything Django's IntegerField would coerce (1.5 -> 1).
    zone = serializers.PrimaryKeyRelatedField(
        queryset=Zone.objects.all(),
        pk_field=serializers.IntegerField(),
        help_text="id de la zone (GET /api/v1/zones/)",
        error_messages={
            "does_not_exist": "La zone n° {pk_value} n'existe pas (voir GET /api/v1/zones/)."
        },
    )
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(),
        pk_field=serializers.IntegerField(),
        help_text="id de l'équipe (GET /api/v1/teams/)",
        error_messages={
            "does_not_exist": "L'équipe n° {pk_value} n'existe pas (voir GET /api/v1/teams/)."
        },
    )
    day = serializers.DateField(
        input_formats=["iso-8601"],
        help_text="nuit du (jour de service AAAA-MM-JJ : ce soir ou plus tard)",
        error_messages={"invalid": "Date attendue au format AAAA-MM-JJ (ex. 2026-11-27)."},
    )


class AssignmentOut(serializers.ModelSerializer):
    """Same keys as the `assignment_changed` event (zones.services.assignment_data)."""

    zone_code = serializers.CharField(source="zone.code", read_only=True)
    zone_name = serializers.CharField(source="zone.name", read_only=True)
    zone_kind = serializers.CharField(source="zone.kind", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    color = serializers.CharField(source="team.color", read_only=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "zone",
            "zone_code",
            "zone_name",
            "zone_kind",
            "team",
            "team_name",
            "color",
            "day",
        ]


class SeesAssignments(BasePermission):
    """The coordination sees every assignment; a team member sees their team's."""

    message = "Réservé à la coordination et aux membres d'équipe (pour leur équipe)."

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, COORDINATION | {Role.FIELD})


def _day_param(request: Request) -> date:
    """`day`: a service day (AAAA-MM-JJ); tonight's when not given."""
    try:
        _first, day = days_window(None, request.query_params.get("day"), default_days=1)
    except WindowError as exc:
        raise ValidationError({"day": [exc.message]}) from None
    return day


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({name: ["Un identifiant (nombre entier) est attendu."]}) from None


DAY_PARAM = OpenApiParameter(
    "day", OpenApiTypes.DATE, description="nuit du (jour de service ; défaut : ce soir)"
)
KIND_PARAM = OpenApiParameter("kind", OpenApiTypes.STR, description="type de zone (secteur…)")


class AssignmentListCreateApi(APIView):
    """GET: a night's assignments (a team member sees their team's). POST: the coordination
    gives a zone to a team for a night."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsCoordination()]
        return [IsAuthenticated(), SeesAssignments()]

    @extend_schema(
        parameters=[
            DAY_PARAM,
            OpenApiParameter("team", OpenApiTypes.INT, description="id d'équipe"),
            KIND_PARAM,
        ],
        responses={200: AssignmentOut(many=True), 400: BAD_REQUEST, 403: FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"day", "team", "kind"})
        day = _day_param(request)
        team = _int_param(request, "team")
        kind = zone_kind_param(request)
        team_ids: set[int] | None = None
        if not user_has_role(request.user, COORDINATION):
            team_ids = user_team_ids(request.user)
            if team is not None and team not in team_ids:
                raise PermissionDenied("Vous ne voyez que les affectations de votre équipe.")
        if team is not None:
            team_ids = {team}
        assignments = assignments_for_day(day=day, team_ids=team_ids, kind=kind)
        return Response(AssignmentOut(assignments, many=True).data)

    @extend_schema(
        request=AssignmentIn,
        responses={201: AssignmentOut, 400: BAD_REQUEST, 403: FORBIDDEN},
        description="Affecte une zone à une équipe pour une nuit (ce soir ou plus tard). "
        "400 si la zone ou l'équipe n'existe pas, si la nuit est passée, ou si cette "
        "affectation existe déjà.",
    )
    def post(self, request: Request) -> Response:
        data = AssignmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.assignment_create(**data.validated_data, by=request.user)
        return Response(AssignmentOut(assignment).data, status=status.HTTP_201_CREATED)


class AssignmentDeleteApi(APIView):
    permission_classes = [IsAuthenticated, IsCoordination]

    @extend_schema(responses={204: None, 400: BAD_REQUEST, 403: FORBIDDEN, 404: ErrorSerializer})
    def delete(self, request: Request, assignment_id: int) -> Response:
        assignment = get_object_or_404(
            Assignment.objects.select_related("zone", "team"), pk=assignment_id
        )
        services.assignment_delete(assignment=assignment, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AssignmentConflictsApi(APIView):
    permission_classes = [IsAuthenticated, IsCoordination]

    @extend_schema(
        parameters=[DAY_PARAM, KIND_PARAM],
        responses={200: OpenApiTypes.OBJECT, 400: BAD_REQUEST, 403: FORBIDDEN},
        description="Ce qui cloche dans les affectations d'une nuit : une zone donnée à "
        "plusieurs équipes (`double_booked`), une équipe aux zones éloignées (`far_apart`), "
        "les zones blanches prioritaires des 7 derniers jours sans équipe "
        "(`uncovered_priorities`). Chaque entrée a un `message` en français.",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"day", "kind"})
        day = _day_param(request)
        kind = zone_kind_param(request)
        return Response(assignment_conflicts(day=day, kind=kind).as_dict())
