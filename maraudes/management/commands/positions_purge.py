"""Run daily by cron or the scheduler: `manage.py positions_purge`."""

from django.conf import settings
from django.core.management.base import BaseCommand

from maraudes.services import positions_purge


class Command(BaseCommand):
    help = "Supprime les points GPS bruts plus vieux que POSITION_RETENTION_DAYS jours."

    def handle(self, *args, **options) -> None:
        deleted = positions_purge()
        self.stdout.write(
            f"{deleted} point(s) GPS supprimé(s) (conservation : "
            f"{settings.POSITION_RETENTION_DAYS} jours ; la couverture par jour est gardée)."
        )
