"""manage.py import_zones FILE --kind K --code-field F --name-field F [--parent-field F]."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from zones.importing import ZoneImportError, zones_import


class Command(BaseCommand):
    help = (
        "Importe des zones depuis un fichier que GDAL sait lire (GeoJSON, GeoPackage, "
        "Shapefile…), tout ou rien : un seul problème et rien n'est écrit. Une zone déjà "
        "connue (même type, même code) est mise à jour ; son poids du besoin est conservé."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Le fichier à importer.")
        parser.add_argument(
            "--kind", required=True, help="Type des zones : arrondissement, quartier, secteur…"
        )
        parser.add_argument("--code-field", required=True, help="Champ du code de la zone.")
        parser.add_argument("--name-field", required=True, help="Champ du nom de la zone.")
        parser.add_argument(
            "--parent-field", help="Champ du code de la zone parente (déjà importée)."
        )
        parser.add_argument(
            "--parent-kind",
            help=(
                "Type des zones parentes ; facultatif quand un seul autre type a des zones "
                "portant ces codes."
            ),
        )
        parser.add_argument(
            "--layer", help="Couche à lire, par nom ou par numéro (la première par défaut)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Vérifie le fichier sans rien écrire."
        )

    def handle(self, *args, **options) -> None:
        layer = options["layer"]
        try:
            result = zones_import(
                path=options["file"],
                kind=options["kind"],
                code_field=options["code_field"],
                name_field=options["name_field"],
                parent_field=options["parent_field"],
                parent_kind=options["parent_kind"],
                layer=int(layer) if layer and layer.isdigit() else layer,
                dry_run=options["dry_run"],
            )
        except ZoneImportError as exc:
            raise CommandError(str(exc)) from exc

        if options["dry_run"]:
            self.stdout.write(
                _(
                    "Fichier valide, rien n'a été écrit (--dry-run) : %(created)d zone(s) à créer, "
                    "%(updated)d à mettre à jour."
                )
                % {"created": result.created, "updated": result.updated}
            )
            return
        total = ngettext("%d zone importée", "%d zones importées", result.total) % result.total
        created = ngettext("%d créée", "%d créées", result.created) % result.created
        updated = ngettext("%d mise à jour", "%d mises à jour", result.updated) % result.updated
        self.stdout.write(self.style.SUCCESS(f"{total} ({created}, {updated})"))
