"""`manage.py white_zones --from D --to D [--kind K] [--format geojson|csv]`, to stdout."""

from __future__ import annotations

import csv
import json

from django.core.management.base import BaseCommand, CommandError

from maraudes.days import WindowError, days_window
from zones.selectors import white_zones, zone_kinds

CSV_FIELDS = [
    "code", "name", "kind", "area_m2", "covered_m2", "white_m2", "white_ratio", "last_visit",
    "passages", "encounters", "priority", "reason",
]  # fmt: skip


class Command(BaseCommand):
    help = "Zones blanches d'une période, en GeoJSON (WGS84) ou CSV, par priorité."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="day_from", required=True)
        parser.add_argument("--to", dest="day_to", required=True)
        parser.add_argument("--kind")
        parser.add_argument("--format", choices=["geojson", "csv"], default="geojson")

    def handle(self, *args, day_from, day_to, kind, format, **options) -> None:
        try:
            first, last = days_window(day_from, day_to)
        except WindowError as exc:
            raise CommandError(f"--{exc.field} : {exc.message}") from None
        if kind and kind not in zone_kinds():
            raise CommandError(
                f"--kind : aucune zone de type « {kind} » (connus : {', '.join(zone_kinds())})."
            )
        rows = [
            (white.as_dict(), white.coverage.white_geojson)
            for white in white_zones(day_from=first, day_to=last, kind=kind)
        ]
        if format == "csv":
            writer = csv.DictWriter(self.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
            writer.writeheader()
            for props, _geom in rows:
                writer.writerow(props)
            return
        collection = {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": props, "geometry": json.loads(geom)}
                for props, geom in rows
            ],
        }
        self.stdout.write(json.dumps(collection, ensure_ascii=False))
