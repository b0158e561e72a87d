"""Real Paris boundaries from ../shared/data, loaded straight into zones for tests and
benchmarks (the import command has its own tests), and the WGS84 <-> Lambert-93 helpers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry, MultiPolygon
from pyproj import Transformer

from zones.models import Zone

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
QUARTIERS = SHARED_DATA / "boundaries" / "paris_quartiers_administratifs.geojson"
ARRONDISSEMENTS = SHARED_DATA / "boundaries" / "paris_arrondissements.geojson"


@cache
def to_l93() -> Transformer:
    return Transformer.from_crs(4326, settings.SRID, always_xy=True)


@cache
def to_wgs84() -> Transformer:
    return Transformer.from_crs(settings.SRID, 4326, always_xy=True)


def load_zones(
    path: Path = QUARTIERS, *, kind: str = "quartier", code: str = "c_qu", name: str = "l_qu"
) -> list[Zone]:
    data = json.loads(path.read_text())
    zones = []
    for feature in data["features"]:
        geom = GEOSGeometry(json.dumps(feature["geometry"]), srid=4326)
        geom.transform(settings.SRID)
        if geom.geom_type == "Polygon":
            geom = MultiPolygon(geom, srid=settings.SRID)
        props = feature["properties"]
        zones.append(Zone(code=str(props[code]), name=props[name], kind=kind, geom=geom))
    return Zone.objects.bulk_create(zones)
