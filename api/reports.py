"""The planner's weekly report, for programs and spreadsheets (issue 6).

    GET /api/v1/reports/weekly/?week=2026-W47&kind=quartier            JSON
    GET /api/v1/reports/weekly/?week=2026-W47&kind=quartier&format=csv  CSV for programs
        ...&format=csv&dialect=excel-fr   CSV that Excel opens in French (BOM, ";", 0,5)
    GET /api/v1/reports/weekly/white-zones/?week=2026-W47&kind=quartier  GeoJSON (WGS84)

Everything the API gives is an export: people counts of 1 or 2 in a zone-week are "<3"
whoever asks (DESIGN.md, "Privacy"), and so is the encounter count beside them (2 encounters
next to "<3" people would say 2); only the coordination's screen shows exact figures.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.params import reject_unknown_params
from api.permissions import SeesAggregates
from api.views import BAD_REQUEST, FORBIDDEN, UNAUTHENTICATED
from maraudes.models import Need
from zones.reports import (
    HOUR_BANDS,
    SMALL_COUNT_LABEL,
    IsoWeek,
    ReportParamError,
    WeeklyReport,
    WeekRow,
    count_shown,
    kind_param,
    week_param,
    weekly_report,
    weekly_white_zones,
)
from zones.selectors import zone_kinds

WGS84 = 4326
DIALECTS = ("plain", "excel-fr")


def band_key(hour: int) -> str:
    return f"{hour:02d}h"


def report_params(request: Request) -> tuple[IsoWeek, str | None]:
    params = request.query_params
    try:
        week = week_param(params.get("week"))
        kind = kind_param(params.get("kind"), kinds=zone_kinds())
    except ReportParamError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None
    return week, kind


# --- JSON -----------------------------------------------------------------------------------


def _ratio(value: float) -> float:
    return round(value, 4)


def row_as_dict(row: WeekRow) -> dict:
    """A zone's (or the territory's) week, people counts protected."""
    return {
        "code": row.code,
        "name": row.name,
        "area_m2": round(row.area_m2, 1),
        "covered_m2": round(min(row.covered_m2, row.area_m2), 1),
        "white_m2": round(row.white_m2, 1),
        "white_ha": round(row.white_m2 / 10_000, 2),
        "covered_ratio": _ratio(row.covered_ratio),
        "white_ratio": _ratio(row.white_ratio),
        "last_visit": row.last_visit.isoformat() if row.last_visit else None,
        "passages": row.passages,
        "presence_hours": round(row.presence_hours, 2),
        "night_hours": {
            **{
                band_key(h): round(s / 3600, 2)
                for h, s in zip(HOUR_BANDS, row.bands_s, strict=True)
            },
            "other": round(row.other_s / 3600, 2),
        },
        "encounters": count_shown(row.encounters, protect=True, people=row.people),
        "people": count_shown(row.people, protect=True),
        "needs": {
            need: {
                "encounters": count_shown(figures.encounters, protect=True, people=figures.people),
                "people": count_shown(figures.people, protect=True),
            }
            for need, figures in row.needs.items()
        },
        "previous": {
            "covered_ratio": _ratio(row.previous_covered_ratio),
            "passages": row.previous_passages,
            "encounters": count_shown(
                row.previous_encounters, protect=True, people=row.previous_people
            ),
            "people": count_shown(row.previous_people, protect=True),
        },
        "change": row.change,
    }


def report_as_dict(report: WeeklyReport) -> dict:
    week = report.week
    return {
        "week": str(week),
        "from": week.first_day.isoformat(),
        "to": week.last_day.isoformat(),
        "previous_week": str(week.shifted(-1)),
        "kind": report.kind,
        "complete": report.complete,
        "small_counts": SMALL_COUNT_LABEL,
        "hour_bands": [band_key(h) for h in HOUR_BANDS],
        "need_labels": {value: str(label) for value, label in Need.choices},
        "zones": [row_as_dict(r) for r in report.rows],
        "totals": row_as_dict(report.totals),
        "trend": [
            {
                "week": str(point.week),
                "from": point.week.first_day.isoformat(),
                "to": point.week.last_day.isoformat(),
                "area_m2": round(point.area_m2, 1),
                "covered_m2": round(min(point.covered_m2, point.area_m2), 1),
                "covered_ratio": _ratio(point.covered_ratio),
            }
            for point in report.trend
        ],
    }


# --- CSV ------------------------------------------------------------------------------------


def _fr_number(value: float, digits: int) -> str:
    """Decimal comma and no thousands separator: what Excel in French reads as a number."""
    return f"{value:.{digits}f}".replace(".", ",")


def _plain_number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _text(value: str) -> str:
    """A cell Excel would run as a formula (=, +, -, @) is written as text (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value


CHANGE_FR = {"up": "hausse", "down": "baisse", "same": "stable"}


Column = tuple[str, Callable[[WeekRow], object]]


def _columns(dialect: str) -> list[Column]:
    """The CSV's columns: header and value, in the dialect's language and number format."""
    french = dialect == "excel-fr"
    num = _fr_number if french else _plain_number

    def hours(get: Callable[[WeekRow], float]) -> Callable[[WeekRow], object]:
        return lambda r: num(get(r) / 3600, 2)

    def band(i: int) -> Callable[[WeekRow], object]:
        return hours(lambda r: r.bands_s[i])

    def need_encounters(need: str) -> Callable[[WeekRow], object]:
        return lambda r: count_shown(
            r.needs[need].encounters, protect=True, people=r.needs[need].people
        )

    def need_people(need: str) -> Callable[[WeekRow], object]:
        return lambda r: count_shown(r.needs[need].people, protect=True)

    def encounters(r: WeekRow) -> object:
        return count_shown(r.encounters, protect=True, people=r.people)

    def people(r: WeekRow) -> object:
        return count_shown(r.people, protect=True)

    needs: list[tuple[str, str]] = [(value, str(label)) for value, label in Need.choices]
    if french:
        columns: list[Column] = [
            ("Code", lambda r: _text(r.code)),
            ("Zone", lambda r: _text(r.name)),
            ("Surface (ha)", lambda r: num(r.area_m2 / 10_000, 2)),
            ("Part couverte (%)", lambda r: num(r.covered_ratio * 100, 1)),
            ("Surface non couverte (ha)", lambda r: num(r.white_m2 / 10_000, 2)),
            ("Dernière visite", lambda r: f"{r.last_visit:%d/%m/%Y}" if r.last_visit else ""),
            ("Passages", lambda r: r.passages),
            ("Heures de présence", hours(lambda r: r.presence_s)),
            *(
                (f"Présence {h:02d}h-{(h + 1) % 24:02d}h (heures)", band(i))
                for i, h in enumerate(HOUR_BANDS)
            ),
            ("Présence autres heures (heures)", hours(lambda r: r.other_s)),
            ("Rencontres", encounters),
            ("Personnes rencontrées", people),
            (
                "Part couverte semaine précédente (%)",
                lambda r: num(r.previous_covered_ratio * 100, 1),
            ),
            ("Évolution de la part couverte", lambda r: CHANGE_FR[r.change]),
        ]
        for need, label in needs:
            columns += [
                (f"Rencontres : {label}", need_encounters(need)),
                (f"Personnes : {label}", need_people(need)),
            ]
        return columns
    columns = [
        ("code", lambda r: r.code),
        ("name", lambda r: r.name),
        ("area_m2", lambda r: num(r.area_m2, 1)),
        ("covered_m2", lambda r: num(min(r.covered_m2, r.area_m2), 1)),
        ("white_m2", lambda r: num(r.white_m2, 1)),
        ("covered_ratio", lambda r: num(r.covered_ratio, 4)),
        ("white_ratio", lambda r: num(r.white_ratio, 4)),
        ("last_visit", lambda r: r.last_visit.isoformat() if r.last_visit else ""),
        ("passages", lambda r: r.passages),
        ("presence_hours", hours(lambda r: r.presence_s)),
        *((f"hours_{band_key(h)}", band(i)) for i, h in enumerate(HOUR_BANDS)),
        ("hours_other", hours(lambda r: r.other_s)),
        ("encounters", encounters),
        ("people", people),
        ("previous_covered_ratio", lambda r: num(r.previous_covered_ratio, 4)),
        ("change", lambda r: r.change),
    ]
    for need, _label in needs:
        columns += [
            (f"encounters_{need}", need_encounters(need)),
            (f"people_{need}", need_people(need)),
        ]
    return columns


def report_csv(report: WeeklyReport, *, dialect: str) -> bytes:
    """`plain`: UTF-8, comma, decimal point, ISO dates, one line per zone, with the week and
    kind on each line. `excel-fr`: UTF-8 with a BOM (or Excel reads it as Windows-1252),
    semicolons, decimal commas, French headers and dates, and a total line."""
    columns = _columns(dialect)
    out = io.StringIO()
    if dialect == "excel-fr":
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow([name for name, _value in columns])
        rows: Iterable[WeekRow] = [*report.rows, report.totals]
        for row in rows:
            writer.writerow([value(row) for _name, value in columns])
        return out.getvalue().encode("utf-8-sig")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["week", "kind", *(name for name, _value in columns)])
    for row in report.rows:
        writer.writerow([str(report.week), report.kind, *(value(row) for _n, value in columns)])
    return out.getvalue().encode("utf-8")


def csv_filename(report: WeeklyReport, *, dialect: str) -> str:
    suffix = "-excel" if dialect == "excel-fr" else ""
    return f"rapport-maraudes-{report.week}-{report.kind or 'aucune-zone'}{suffix}.csv"


class CsvRenderer(BaseRenderer):
    """Passes through the bytes the view made (report_csv): the dialect decides the rest."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, bytes):
            return data
        return json.dumps(data, ensure_ascii=False).encode()  # pragma: no cover - see below


class JsonErrorsMixin:
    """Errors as JSON whatever format was asked: a 400 must stay readable. An unknown
    `format` is a 400 naming it, not DRF's 404."""

    def perform_content_negotiation(self, request, force=False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            raise ValidationError({"format": ["« json » ou « csv » attendu."]}) from None

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


# --- Schema (documentation of the JSON) ------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "enum": [SMALL_COUNT_LABEL]},
        ],
        "description": "Effectif ; « <3 » quand 1 ou 2 personnes sont en jeu (secret "
        "statistique : le nombre de rencontres qui va avec est masqué de même).",
    }
)
class PeopleField(serializers.Field):
    pass


class NeedFiguresSerializer(serializers.Serializer):
    encounters = PeopleField()
    people = PeopleField()


NeedsSerializer = type(
    "ReportNeedsSerializer",
    (serializers.Serializer,),
    {value: NeedFiguresSerializer(help_text=str(label)) for value, label in Need.choices},
)

NightHoursSerializer = type(
    "ReportNightHoursSerializer",
    (serializers.Serializer,),
    {
        **{
            band_key(h): serializers.FloatField(
                help_text=f"heures de {h:02d}h à {(h + 1) % 24:02d}h"
            )
            for h in HOUR_BANDS
        },
        "other": serializers.FloatField(help_text="heures hors de 20h-06h"),
    },
)


class PreviousWeekSerializer(serializers.Serializer):
    covered_ratio = serializers.FloatField()
    passages = serializers.IntegerField()
    encounters = PeopleField()
    people = PeopleField()


class ReportRowSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="vide sur la ligne du territoire")
    name = serializers.CharField()
    area_m2 = serializers.FloatField()
    covered_m2 = serializers.FloatField()
    white_m2 = serializers.FloatField()
    white_ha = serializers.FloatField()
    covered_ratio = serializers.FloatField(help_text="part couverte, de 0 à 1")
    white_ratio = serializers.FloatField()
    last_visit = serializers.DateField(allow_null=True)
    passages = serializers.IntegerField(help_text="maraudes distinctes entrées dans la zone")
    presence_hours = serializers.FloatField(help_text="heures passées dans la zone")
    night_hours = NightHoursSerializer()
    encounters = PeopleField()
    people = PeopleField()
    needs = NeedsSerializer()
    previous = PreviousWeekSerializer()
    change = serializers.ChoiceField(
        choices=["up", "down", "same"], help_text="part couverte contre la semaine précédente"
    )


class TrendPointSerializer(serializers.Serializer):
    week = serializers.CharField()
    from_ = serializers.DateField()
    to = serializers.DateField()
    area_m2 = serializers.FloatField()
    covered_m2 = serializers.FloatField()
    covered_ratio = serializers.FloatField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class WeeklyReportSerializer(serializers.Serializer):
    week = serializers.CharField(help_text="semaine ISO, ex. 2026-W47")
    from_ = serializers.DateField()
    to = serializers.DateField()
    previous_week = serializers.CharField()
    kind = serializers.CharField(allow_null=True)
    complete = serializers.BooleanField(help_text="false pour la semaine en cours")
    small_counts = serializers.CharField()
    hour_bands = serializers.ListField(child=serializers.CharField())
    need_labels = serializers.DictField(child=serializers.CharField())
    zones = ReportRowSerializer(many=True)
    totals = ReportRowSerializer()
    trend = TrendPointSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class WhiteZonePropertiesSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    area_m2 = serializers.FloatField()
    covered_m2 = serializers.FloatField()
    white_m2 = serializers.FloatField()
    white_ha = serializers.FloatField()
    white_ratio = serializers.FloatField()
    covered_ratio = serializers.FloatField()
    last_visit = serializers.DateField(allow_null=True)
    passages = serializers.IntegerField()


class WhiteZoneFeatureSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Feature"])
    id = serializers.IntegerField()
    geometry = serializers.JSONField(help_text="MultiPolygon GeoJSON (WGS84)")
    properties = WhiteZonePropertiesSerializer()


class WhiteZoneCollectionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["FeatureCollection"])
    week = serializers.CharField()
    kind = serializers.CharField(allow_null=True)
    features = WhiteZoneFeatureSerializer(many=True)


WEEK_PARAMS = [
    OpenApiParameter(
        "week",
        OpenApiTypes.STR,
        pattern=r"^\d{4}-W\d{2}$",
        description="Semaine ISO des jours de service (lundi 06:00 au lundi suivant 06:00), "
        "ex. 2026-W47. Défaut : la dernière semaine complète. Une semaine qui n'a pas "
        "commencé est refusée.",
    ),
    OpenApiParameter(
        "kind",
        OpenApiTypes.STR,
        description="Type de zone (quartier, arrondissement, secteur…). Défaut : quartier "
        "s'il existe.",
    ),
]


# --- Views ----------------------------------------------------------------------------------


class WeeklyReportApi(JsonErrorsMixin, APIView):
    permission_classes = [IsAuthenticated, SeesAggregates]
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        operation_id="reports_weekly",
        parameters=[
            *WEEK_PARAMS,
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
            OpenApiParameter(
                "dialect",
                OpenApiTypes.STR,
                enum=list(DIALECTS),
                description="Avec format=csv : `plain` (défaut ; UTF-8, virgule, point "
                "décimal) ou `excel-fr` (UTF-8 avec BOM, point-virgule, virgule décimale, "
                "en-têtes en français, ligne de total).",
            ),
        ],
        responses={
            (200, "application/json"): WeeklyReportSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
        description="Rapport hebdomadaire de couverture par zone : part couverte, surface "
        "non couverte, dernière visite, passages, heures de présence (et par tranche horaire "
        "de 20h à 06h), rencontres et personnes par besoin, comparaison avec la semaine "
        "précédente, tendance sur 8 semaines. Les effectifs de 1 ou 2 personnes s'écrivent "
        "« <3 ».",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"week", "kind", "dialect"})
        dialect = request.query_params.get("dialect") or "plain"
        if dialect not in DIALECTS:
            raise ValidationError(
                {"dialect": [f"« {dialect} » inconnu : {' ou '.join(DIALECTS)} attendu."]}
            )
        week, kind = report_params(request)
        report = weekly_report(week=week, kind=kind)
        if request.accepted_renderer.format == "csv":
            name = csv_filename(report, dialect=dialect)
            return Response(
                report_csv(report, dialect=dialect),
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return Response(report_as_dict(report))


class WeeklyWhiteZonesApi(APIView):
    permission_classes = [IsAuthenticated, SeesAggregates]

    @extend_schema(
        operation_id="reports_weekly_white_zones",
        parameters=WEEK_PARAMS,
        responses={
            200: WhiteZoneCollectionSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
        description="Zones blanches de la semaine : GeoJSON (WGS84), une entité par zone "
        "ayant une partie non couverte, la plus grande surface non couverte d'abord.",
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, {"week", "kind"})
        week, kind = report_params(request)
        zones = weekly_white_zones(week=week, kind=kind, srid=WGS84) if kind else []  # type: ignore[arg-type]
        return Response(
            {
                "type": "FeatureCollection",
                "week": str(week),
                "kind": kind,
                "features": [
                    {
                        "type": "Feature",
                        "id": zone.zone_id,
                        "geometry": json.loads(zone.geojson),
                        "properties": {
                            "code": zone.code,
                            "name": zone.name,
                            "area_m2": round(zone.area_m2, 1),
                            "covered_m2": round(min(zone.covered_m2, zone.area_m2), 1),
                            "white_m2": round(zone.white_m2, 1),
                            "white_ha": round(zone.white_m2 / 10_000, 2),
                            "white_ratio": round(zone.white_ratio, 4),
                            "covered_ratio": round(1 - zone.white_ratio, 4),
                            "last_visit": zone.last_visit.isoformat() if zone.last_visit else None,
                            "passages": zone.passages,
                        },
                    }
                    for zone in zones
                ],
            }
        )
