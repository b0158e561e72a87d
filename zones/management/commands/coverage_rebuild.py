"""Recompute coverage from the raw fixes: `manage.py coverage_rebuild [--from D --to D]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from maraudes.days import WindowError, days_window
from zones.services import coverage_rebuild


class Command(BaseCommand):
    help = "Recalcule la couverture (morceaux et zones par jour) à partir des points bruts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="day_from", help="premier jour de service, AAAA-MM-JJ")
        parser.add_argument("--to", dest="day_to", help="dernier jour de service, AAAA-MM-JJ")

    def handle(self, *args, day_from=None, day_to=None, **options) -> None:
        if day_from or day_to:
            if not (day_from and day_to):
                raise CommandError("Donnez --from et --to ensemble, ou aucun des deux.")
            try:
                first, last = days_window(day_from, day_to)
            except WindowError as exc:
                raise CommandError(f"--{exc.field} : {exc.message}") from None
        else:
            first = last = None
        started = time.perf_counter()
        result = coverage_rebuild(day_from=first, day_to=last)
        self.stdout.write(
            self.style.SUCCESS(
                f"Couverture recalculée : {result.shift_days} maraudes-jours, "
                f"{result.zone_days} zones-jours, en {time.perf_counter() - started:.1f} s."
            )
        )
