from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MaraudesConfig(AppConfig):
    name = "maraudes"
    verbose_name = _("Maraudes")
