"""Print the demo logins and where to use them (shown by `make run`)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from fixtures.demo import USERS
from maraudes.models import Role


class Command(BaseCommand):
    help = "Affiche les comptes de démonstration et les adresses de l'application."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default=settings.SITE_URL,
            help="adresse du serveur (défaut : SITE_URL, %(default)s)",
        )

    def handle(self, *args, base_url: str, **options) -> None:
        base = base_url.rstrip("/")
        existing = set(
            get_user_model()
            .objects.filter(username__in=[u.username for u in USERS])
            .values_list("username", flat=True)
        )
        out = self.stdout.write
        out("")
        if existing:
            out(self.style.MIGRATE_HEADING("Comptes de démonstration"))
            out(f"  mot de passe (tous les comptes) : {settings.DEMO_PASSWORD}")
            width = max(len(u.username) for u in USERS)
            for user in USERS:
                role = str(Role(user.role).label)
                if user.role == Role.ADMIN:
                    role += ", accès à l'administration"
                if user.team:
                    role += f", équipe « {user.team} »"
                missing = "" if user.username in existing else "  (absent de la base)"
                out(f"  {user.username:<{width}}  {role}{missing}")
        else:
            out("Aucun compte de démonstration : lancez « manage.py demo_load ».")
        out("")
        out(self.style.MIGRATE_HEADING("Adresses"))
        out(f"  application             {base}/")
        out(f"  administration          {base}/admin/")
        out(f"  documentation de l'API  {base}/api/docs/")
        out("")
        out(self.style.MIGRATE_HEADING("Faire bouger la carte"))
        out("  dans un autre terminal : .venv/bin/python manage.py simulate --teams 4")
        out("")
