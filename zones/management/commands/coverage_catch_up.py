"""Bring coverage up to date with the queued tracker points: `manage.py coverage_catch_up`.

Worker processes drain the queue themselves within about a second (zones.catchup); this
command is for cron, after a crash or a restart left points queued with no request to follow.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from zones.catchup import BATCH_FIXES, backlog_size, coverage_drain


class Command(BaseCommand):
    help = "Calcule la couverture des points de traceurs encore en attente."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--limit",
            type=int,
            default=BATCH_FIXES,
            help=f"points par lot, en maraudes entières (défaut : {BATCH_FIXES})",
        )

    def handle(self, *args, limit: int, **options) -> None:
        started = time.perf_counter()
        taken = coverage_drain(limit=max(1, limit))
        left = backlog_size()
        message = f"{taken} points rattrapés en {time.perf_counter() - started:.1f} s"
        if left:
            # Another process holds the drainer's lock, or points keep arriving.
            message += f" ; {left} encore en attente (un autre processus les traite)"
        self.stdout.write(self.style.SUCCESS(message + "."))
