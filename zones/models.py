"""Zones the coordination cares about, and which team walks them which night."""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.indexes import GistIndex
from django.db.models import Q
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
    area_m2 = models.FloatField(_("surface (m²)"), default=0, editable=False)

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

    def save(self, *args, **kwargs) -> None:
        # Cheap derived value kept with the row: areas are exact in the metric storage SRID.
        self.area_m2 = self.geom.area if self.geom else 0
        super().save(*args, **kwargs)


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
