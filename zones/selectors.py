"""Reads of zones. Spatial queries live here so the SQL that matters is reviewed in one place."""

from __future__ import annotations

from django.contrib.gis.geos import Polygon
from django.db.models import QuerySet

from zones.models import Zone


def zone_kinds() -> list[str]:
    return list(Zone.objects.order_by("kind").values_list("kind", flat=True).distinct())


def zones_list(*, kind: str | None = None, bbox: Polygon | None = None) -> QuerySet[Zone]:
    """Zones, optionally of one kind and intersecting a bbox (any SRID; transformed here)."""
    zones = Zone.objects.select_related("parent").order_by("kind", "code")
    if kind:
        zones = zones.filter(kind=kind)
    if bbox is not None:
        zones = zones.filter(geom__intersects=bbox)
    return zones
