"""Zones the coordination cares about, and which team walks them which night."""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GistIndex
from django.db.models import F, Func, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from maraudes.models import Team


class Zone(models.Model):
    """A polygon: arrondissement, quartier, sector... `code` is unique within a `kind`."""

    code = models.CharField(_("code"), max_length=64)
    name = models.CharField(_("nom"), max_length=200)
    kind = models.SlugField(_("type"), max_length=40)
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("zone parente"),
    )
    need_weight = models.FloatField(
        _("poids du besoin"),
        default=1.0,
        help_text=_("Fixé par la coordination (ex. décompte de la Nuit de la Solidarité)."),
    )
    geom = models.MultiPolygonField(_("géométrie"), srid=settings.SRID, spatial_index=False)
    area_m2 = models.GeneratedField(
        expression=Func(F("geom"), function="ST_Area"),
        output_field=models.FloatField(_("surface (m²)")),
        db_persist=True,
    )

    class Meta:
        verbose_name = _("zone")
        verbose_name_plural = _("zones")
        ordering = ["kind", "code"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "code"], name="zone_unique_code"),
            models.CheckConstraint(condition=Q(geom__isvalid=True), name="zone_geom_valid"),
            models.CheckConstraint(condition=Q(need_weight__gte=0), name="zone_need_weight_pos"),
        ]
        indexes = [GistIndex(fields=["geom"], name="zone_geom_gist")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} {self.code})"


class Assignment(models.Model):
    """Zone × team × service day."""

    zone = models.ForeignKey(
        Zone, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("zone")
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("équipe")
    )
    day = models.DateField(_("nuit du"))
    created_at = models.DateTimeField(_("créée le"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("par"),
    )

    class Meta:
        verbose_name = _("affectation")
        verbose_name_plural = _("affectations")
        ordering = ["-day", "zone__code"]
        constraints = [
            models.UniqueConstraint(fields=["zone", "team", "day"], name="assignment_unique"),
        ]
        indexes = [models.Index(fields=["day"], name="assignment_day")]

    def __str__(self) -> str:
        return f"{self.zone.name} · {self.team.name} · {self.day:%d/%m/%Y}"


class CoveragePiece(models.Model):
    """What one shift covered on one service day, added batch by batch.

    The union of a shift-day's pieces is that shift's coverage for the day. A batch of fixes
    that arrives after the shift's latest fix only adds coverage, so it appends a piece; a
    fix that lands between two stored ones can undo a segment, so the shift-day's pieces are
    then replaced by one recomputed from the raw fixes (zones.services).
    """

    shift = models.ForeignKey(
        "maraudes.Shift", on_delete=models.CASCADE, related_name="coverage_pieces"
    )
    day = models.DateField(_("jour de service"))
    geom = models.MultiPolygonField(srid=settings.SRID, spatial_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("morceau de couverture")
        verbose_name_plural = _("morceaux de couverture")
        indexes = [
            models.Index(fields=["shift", "day"], name="piece_shift_day"),
            models.Index(fields=["day"], name="piece_day"),
            GistIndex(fields=["geom"], name="piece_geom_gist"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(geom__isvalid=True), name="piece_geom_valid"),
        ]


class ZoneDayCoverage(models.Model):
    """The part of a zone covered on one service day, pre-unioned: the white-zone queries
    union a handful of these per zone instead of re-buffering raw fixes."""

    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="day_coverage")
    day = models.DateField(_("jour de service"))
    geom = models.MultiPolygonField(srid=settings.SRID, spatial_index=False)
    covered_m2 = models.GeneratedField(
        expression=Func(F("geom"), function="ST_Area"),
        output_field=models.FloatField(),
        db_persist=True,
    )
    # Shifts that entered the zone that day ("passages").
    shift_ids = ArrayField(models.BigIntegerField(), default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("couverture d'une zone par jour")
        verbose_name_plural = _("couvertures des zones par jour")
        constraints = [
            models.UniqueConstraint(fields=["zone", "day"], name="zoneday_unique"),
            models.CheckConstraint(condition=Q(geom__isvalid=True), name="zoneday_geom_valid"),
        ]
        indexes = [models.Index(fields=["day"], name="zoneday_day")]


# The window ZoneWeekWhite keeps ready, in service days.
WEEK_DAYS = 7


class ZoneWeekWhite(models.Model):
    """The white part of a zone over the 7 service days ending on `last_day`.

    The weekly window is the one people ask for (the map's default, the benchmark's, a week's
    report), so it is kept ready: each new piece of coverage is subtracted from the rows whose
    week holds its day (a cheap difference with a small polygon), instead of unioning seven
    zone-days at every query. Rows are filled when missing and recomputed from the zone-days
    whenever those are rebuilt.
    """

    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="week_whites")
    last_day = models.DateField(_("dernier jour de service"))
    geom = models.MultiPolygonField(srid=settings.SRID, spatial_index=False)
    white_m2 = models.GeneratedField(
        expression=Func(F("geom"), function="ST_Area"),
        output_field=models.FloatField(),
        db_persist=True,
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("zone blanche sur 7 jours")
        verbose_name_plural = _("zones blanches sur 7 jours")
        constraints = [
            models.UniqueConstraint(fields=["zone", "last_day"], name="weekwhite_unique"),
            models.CheckConstraint(condition=Q(geom__isvalid=True), name="weekwhite_geom_valid"),
        ]


class ZonePresence(models.Model):
    """Seconds a shift spent in a zone during one local hour of a service day (issue 6).

    Kept as fixes arrive (zones.presence): the interval between two consecutive kept fixes
    that the coverage contract joins by a segment counts for every zone holding its midpoint,
    in the local hour of its start. The weekly report sums these rows instead of reading every
    raw fix of the week, and they outlive the raw fixes' purge, like the zone-day coverage.
    Keyed by shift, so that a shift-day recomputed from its raw fixes replaces its own rows.
    """

    zone = models.ForeignKey(
        Zone, on_delete=models.CASCADE, related_name="presence", verbose_name=_("zone")
    )
    shift = models.ForeignKey(
        "maraudes.Shift",
        on_delete=models.CASCADE,
        related_name="zone_presence",
        verbose_name=_("maraude"),
    )
    day = models.DateField(_("jour de service"))
    hour = models.PositiveSmallIntegerField(
        _("heure locale"), help_text=_("Heure locale du début de l'intervalle, de 0 à 23.")
    )
    seconds = models.FloatField(_("secondes de présence"))

    class Meta:
        verbose_name = _("présence dans une zone")
        verbose_name_plural = _("présences dans les zones")
        constraints = [
            models.UniqueConstraint(
                fields=["zone", "shift", "day", "hour"], name="presence_unique"
            ),
            models.CheckConstraint(condition=Q(hour__lte=23), name="presence_hour_of_day"),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="presence_seconds_pos"),
        ]
        indexes = [models.Index(fields=["day"], name="presence_day")]

    def __str__(self) -> str:
        return f"{self.zone_id} · {self.shift_id} · {self.day:%d/%m/%Y} {self.hour:02d}h"
