"""Run every 15 minutes by cron or the scheduler: `manage.py shifts_close_stale`."""

from django.conf import settings
from django.core.management.base import BaseCommand

from maraudes.services import shifts_close_stale


class Command(BaseCommand):
    help = "Ferme les maraudes restées ouvertes plus de SHIFT_MAX_HOURS heures."

    def handle(self, *args, **options) -> None:
        closed = shifts_close_stale()
        self.stdout.write(
            f"{len(closed)} maraude(s) fermée(s) automatiquement "
            f"(ouvertes depuis plus de {settings.SHIFT_MAX_HOURS:g} h)."
        )
