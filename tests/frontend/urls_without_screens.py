"""The project's URLs without the main screens (/carte/, /equipe/, /rapports/): for tests of
the home page itself, which everyone with a role otherwise leaves for their screen."""

from frontend import urls as frontend_urls
from maraudes.urls import urlpatterns as project_urlpatterns

SCREENS = ("carte/", "equipe/", "rapports/")

urlpatterns = [
    p for p in project_urlpatterns if getattr(p, "urlconf_module", None) is not frontend_urls
] + [p for p in frontend_urls.urlpatterns if not str(p.pattern).startswith(SCREENS)]
