"""Encounters: logged from the phone with a client-generated id; listed for maps."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers import StrictSerializer
from maraudes import services
from maraudes.models import Action, Encounter, Need, Shift
from maraudes.roles import COORDINATION, user_has_role, user_team_ids


class EncounterIn(StrictSerializer):
    client_id = serializers.UUIDField(help_text="UUID généré par le téléphone")
    shift = serializers.IntegerField()
    seen_at = serializers.DateTimeField()
    lon = serializers.FloatField()
    lat = serializers.FloatField()
    people_count = serializers.IntegerField(default=1)
    needs = serializers.ListField(child=serializers.ChoiceField(Need.choices), default=list)
    actions = serializers.ListField(child=serializers.ChoiceField(Action.choices), default=list)
    note = serializers.CharField(
        max_length=280,
        required=False,
        allow_blank=True,
        default="",
        help_text="Courte ; jamais de nom ni d'élément identifiant.",
    )


class EncounterOut(serializers.ModelSerializer):
    class Meta:
        model = Encounter
        fields = [
            "id",
            "client_id",
            "shift",
            "seen_at",
            "people_count",
            "needs",
            "actions",
            "note",
            "created_at",
        ]


class EncounterCreateApi(APIView):
    @extend_schema(
        request=EncounterIn,
        responses={201: EncounterOut, 200: EncounterOut},
        description="201 la première fois, 200 quand le même client_id est renvoyé.",
    )
    def post(self, request: Request) -> Response:
        data = EncounterIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        shift = get_object_or_404(Shift.objects.select_related("team"), pk=values.pop("shift"))
        if not (
            user_has_role(request.user, COORDINATION)
            or shift.team_id in user_team_ids(request.user)
        ):
            raise PermissionDenied("Cette maraude n'est pas celle de votre équipe.")
        saved = services.encounter_create(shift=shift, by=request.user, **values)
        return Response(
            EncounterOut(saved.encounter).data,
            status=status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK,
        )
