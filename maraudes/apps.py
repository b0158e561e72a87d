from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MaraudesConfig(AppConfig):
    name = "maraudes"
    verbose_name = _("Maraudes")

    def ready(self) -> None:
        # Registers the binary array parameters with psycopg before the first connection
        # opens: Django's connections copy an adapters map built from psycopg's global one
        # then (a later registration fails loudly: "cannot adapt type 'BinaryArray'").
        from maraudes import db  # noqa: F401
