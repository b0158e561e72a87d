"""Shifts and positions: check-in, fixes in, check-out, the track out."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import BoundedLenientJSONParser, PayloadTooLarge
from api.serializers import StrictSerializer
from maraudes import services
from maraudes.fixes import parse_fixes
from maraudes.models import Role, Shift, Team
from maraudes.roles import COORDINATION, user_has_role, user_roles, user_team_ids
from maraudes.selectors import shift_track, shifts_visible_to
from zones.services import track_ingest


class ShiftSerializer(serializers.ModelSerializer):
    fix_count = serializers.IntegerField(read_only=True, default=None)
    team_name = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Shift
        fields = [
            "id",
            "team",
            "team_name",
            "started_at",
            "ended_at",
            "closed_automatically",
            "fix_count",
        ]


class ShiftStartedSerializer(ShiftSerializer):
    tracker_token = serializers.CharField(read_only=True)

    class Meta(ShiftSerializer.Meta):
        fields = [*ShiftSerializer.Meta.fields, "tracker_token"]


class ShiftStartIn(StrictSerializer):
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all())
    started_at = serializers.DateTimeField(required=False)


class ShiftEndIn(StrictSerializer):
    ended_at = serializers.DateTimeField(required=False)


def _may_write_for_team(user, team_id: int) -> bool:
    return user_has_role(user, COORDINATION) or team_id in user_team_ids(user)


def _shift_for_writing(request: Request, shift_id: int) -> Shift:
    shift = get_object_or_404(Shift.objects.select_related("team"), pk=shift_id)
    if not _may_write_for_team(request.user, shift.team_id):
        raise PermissionDenied("Cette maraude n'est pas celle de votre équipe.")
    return shift


class ShiftStartApi(APIView):
    @extend_schema(request=ShiftStartIn, responses={201: ShiftStartedSerializer})
    def post(self, request: Request) -> Response:
        data = ShiftStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        team = data.validated_data["team"]
        started_at = data.validated_data.get("started_at")
        if not _may_write_for_team(request.user, team.pk):
            raise PermissionDenied("Vous ne pouvez démarrer une maraude que pour votre équipe.")
        if (
            started_at is not None
            and not user_has_role(request.user, COORDINATION)
            and started_at < timezone.now() - timedelta(hours=settings.SHIFT_MAX_HOURS)
        ):
            raise ValidationError(
                {
                    "started_at": [
                        "Seule la coordination peut saisir une maraude de plus de "
                        f"{settings.SHIFT_MAX_HOURS:g} heures."
                    ]
                }
            )
        started = services.shift_start(team=team, by=request.user, started_at=started_at)
        body = ShiftStartedSerializer(started.shift).data
        body["tracker_token"] = started.tracker_token
        body["fix_count"] = 0
        return Response(body, status=status.HTTP_201_CREATED)


class ShiftDetailApi(APIView):
    @extend_schema(responses=ShiftSerializer)
    def get(self, request: Request, shift_id: int) -> Response:
        shifts = shifts_visible_to(request.user).annotate(fix_count=Count("positions"))
        shift = get_object_or_404(shifts, pk=shift_id)
        return Response(ShiftSerializer(shift).data)


class ShiftEndApi(APIView):
    @extend_schema(request=ShiftEndIn, responses=ShiftSerializer)
    def post(self, request: Request, shift_id: int) -> Response:
        shift = _shift_for_writing(request, shift_id)
        data = ShiftEndIn(data=request.data)
        data.is_valid(raise_exception=True)
        shift = services.shift_end(shift=shift, ended_at=data.validated_data.get("ended_at"))
        return Response(ShiftSerializer(shift).data)


class ShiftTrackApi(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, description="GeoJSON, WGS84.")
    def get(self, request: Request, shift_id: int) -> Response:
        shift = get_object_or_404(shifts_visible_to(request.user), pk=shift_id)
        return Response(shift_track(shift=shift))


class FixIn(serializers.Serializer):
    """Documentation of one fix; parsing is maraudes.fixes (fast, one reason per bad fix)."""

    t = serializers.DateTimeField(help_text="ISO-8601 avec décalage horaire")
    lon = serializers.FloatField()
    lat = serializers.FloatField()
    accuracy = serializers.FloatField(help_text="mètres")
    speed = serializers.FloatField(required=False, help_text="m/s")
    heading = serializers.FloatField(required=False, help_text="degrés")


class PositionsRecordApi(APIView):
    parser_classes = [BoundedLenientJSONParser]

    @extend_schema(
        request=inline_serializer("FixBatch", {"fixes": FixIn(many=True)}),
        responses={
            200: inline_serializer(
                "FixBatchResult",
                {
                    "accepted": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                    "rejected": inline_serializer(
                        "RejectedFix",
                        {"index": serializers.IntegerField(), "reason": serializers.CharField()},
                        many=True,
                    ),
                },
            )
        },
        description=(
            "Enregistre un lot de points (5 000 au plus). Chaque point refusé est rendu avec "
            "son index et la raison ; les autres sont enregistrés une seule fois."
        ),
    )
    def post(self, request: Request, shift_id: int) -> Response:
        if Role.PLANNER in user_roles(request.user) and not user_has_role(
            request.user, COORDINATION | {Role.FIELD}
        ):
            raise PermissionDenied("Les planificateurs ne saisissent pas de points.")
        shift = _shift_for_writing(request, shift_id)
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("fixes"), list):
            raise ValidationError({"fixes": ['Attendu : {"fixes": [{t, lon, lat, accuracy}, …]}.']})
        unknown = sorted(set(body) - {"fixes"})
        if unknown:
            raise ValidationError({name: ["Champ inconnu."] for name in unknown})
        items = body["fixes"]
        limit = settings.MAX_FIXES_PER_REQUEST
        if len(items) > limit:
            raise PayloadTooLarge(
                f"{len(items)} points reçus : {limit} au plus par requête ; découpez le lot."
            )
        fixes, rejected = parse_fixes(items)
        recorded = track_ingest(shift=shift, fixes=fixes, source="api")
        recorded.rejected.extend(rejected)
        return Response(recorded.as_dict())
