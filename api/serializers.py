from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework_gis.fields import GeometryField
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from maraudes.models import Organization, Team, TeamMode
from zones.models import Zone


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, naming them, instead of ignoring them silently."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [_("Champ inconnu.")] for name in unknown})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings: DRF's own turns 42 into "42" without a word."""

    default_error_messages = {"invalid": _("Une chaîne de caractères est attendue.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name"]


class OrganizationInSerializer(StrictSerializer):
    name = StrictCharField(max_length=200)


class TeamSerializer(serializers.ModelSerializer):
    coverage_radius_m = serializers.FloatField(source="radius_m", read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "organization", "mode", "coverage_radius_m", "color", "is_active"]


class TeamInSerializer(StrictSerializer):
    name = StrictCharField(max_length=200)
    # pk_field: an integer id, not anything Django's IntegerField would coerce (1.5 -> 1).
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(), pk_field=serializers.IntegerField()
    )
    mode = serializers.ChoiceField(choices=TeamMode.choices, default=TeamMode.FOOT)
    coverage_radius_m = serializers.FloatField(
        required=False, allow_null=True, min_value=1, max_value=2000
    )
    color = serializers.RegexField(
        r"^#[0-9a-fA-F]{6}$",
        required=False,
        error_messages={"invalid": _("Couleur attendue au format #rrggbb.")},
    )


@extend_schema_field(OpenApiTypes.OBJECT)
class AnnotatedGeometryField(GeometryField):
    """A geometry read from a queryset annotation (e.g. Transform to 4326). The schema of a
    feature's geometry comes from the model field its GeoFeatureModelSerializer names, so this
    only keeps drf-spectacular from looking for the annotation on the model."""


class ZoneFeatureSerializer(GeoFeatureModelSerializer):
    # The view annotates `geom_wgs84` (Transform to 4326): the API edge speaks WGS84. The
    # field keeps the model field's name so that the schema knows it is a MultiPolygon.
    geom = AnnotatedGeometryField(source="geom_wgs84", read_only=True, precision=6)
    parent = serializers.CharField(source="parent.code", default=None, read_only=True)

    class Meta:
        model = Zone
        geo_field = "geom"
        id_field = "id"
        fields = ["id", "code", "name", "kind", "parent", "need_weight", "area_m2", "geom"]


class ErrorSerializer(serializers.Serializer):
    """For the schema: `{"detail": "..."}`, or `{"<field>": ["message", ...]}` on a 400."""

    detail = serializers.CharField(required=False)
