from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MaraudesConfig(AppConfig):
    name = "maraudes"
    verbose_name = _("Maraudes")

    def ready(self) -> None:
        # Registers the binary array parameters with psycopg before any connection opens
        # (a connection copies psycopg's adapters when it opens).
        from maraudes import db  # noqa: F401
