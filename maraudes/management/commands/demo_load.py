"""Load the demo: an invented territory, teams, logins and a simulated week of outreach."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import formats

from fixtures.demo import (
    DEMO_SEED,
    ORGANIZATIONS,
    TEAMS,
    USERS,
    demo_delete,
    demo_exists,
    demo_load,
)
from maraudes.models import Organization


class Command(BaseCommand):
    help = (
        "Charge les données de démonstration : secteurs inventés sur Paris, structures et "
        "équipes fictives, un compte par rôle, une semaine de maraudes simulées."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=DEMO_SEED, help=f"graine du tirage (défaut {DEMO_SEED})"
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--if-empty",
            action="store_true",
            help="ne rien faire si la base contient déjà une structure",
        )
        mode.add_argument(
            "--force",
            action="store_true",
            help="supprimer la démo existante (et elle seule) puis la recréer",
        )

    def handle(self, *args, seed: int, if_empty: bool, force: bool, **options) -> None:
        began = time.monotonic()
        with transaction.atomic():
            if if_empty and (Organization.objects.exists() or demo_exists()):
                self.stdout.write("Base déjà remplie : démo non chargée.")
                return
            if demo_exists():
                if not force:
                    raise CommandError(
                        "Des données de démonstration existent déjà. "
                        "Relancez avec --force pour les supprimer et les recréer."
                    )
                demo_delete()
            plan = demo_load(seed=seed)
        elapsed = time.monotonic() - began

        def n(value: int) -> str:
            return formats.number_format(value, force_grouping=True)

        shifts = plan.shifts
        days = sorted({s.day for s in shifts})
        open_now = sum(1 for s in shifts if s.ended_at is None)
        self.stdout.write(
            self.style.SUCCESS(
                f"Démo chargée (graine {seed}) en {formats.number_format(elapsed, 1)} s :"
            )
        )
        self.stdout.write(
            f"  {len(plan.sectors)} secteurs, {len(ORGANIZATIONS)} structures, "
            f"{len(TEAMS)} équipes, {len(USERS)} comptes de démonstration"
        )
        period = f" du {days[0]:%d/%m} au {days[-1]:%d/%m}" if days else ""
        tonight = f" ({open_now} en cours)" if open_now else ""
        self.stdout.write(
            f"  {n(len(shifts))} maraudes{period}{tonight}, "
            f"{n(sum(len(s.fixes) for s in shifts))} points GPS, "
            f"{n(sum(len(s.encounters) for s in shifts))} rencontres, "
            f"{n(len(plan.assignments))} affectations"
        )
