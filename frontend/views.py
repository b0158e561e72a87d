from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.i18n import JavaScriptCatalog

from maraudes.models import Role, Team
from maraudes.roles import user_home_path, user_roles, user_team_ids

logger = logging.getLogger(__name__)

# Display order of the roles on the home page, most powerful first.
ROLE_ORDER = [Role.ADMIN, Role.COORDINATOR, Role.PLANNER, Role.FIELD]
# The apps whose JavaScript calls gettext(); their strings live in locale/*/djangojs.po.
JS_CATALOG_PACKAGES = ["frontend"]

_javascript_catalog = JavaScriptCatalog.as_view(packages=JS_CATALOG_PACKAGES)


def _exists(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's main screen (map, team app, reports) once it exists; until then, links."""
    target = user_home_path(request.user)
    if target != request.path and _exists(target):
        return redirect(target)
    roles = user_roles(request.user)
    teams = Team.objects.filter(id__in=user_team_ids(request.user)).select_related("organization")
    context = {
        "roles": sorted(roles),
        "role_labels": [role.label for role in ROLE_ORDER if role in roles],
        "teams": teams,
    }
    return render(request, "frontend/home.html", context)


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and `make run` scripts: the app answers and reaches its database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("healthz: database unreachable")
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


def js_catalog(request: HttpRequest, lang: str) -> HttpResponse:
    """gettext(), ngettext() and interpolate() for the pages' scripts, in the language of the URL.

    The language is in the URL, not taken from the request (cookie, Accept-Language), so that
    one URL always holds one language: the team app's service worker keeps a copy of each for
    offline use, and a page in French must never get the copy of the English catalog."""
    if lang not in dict(settings.LANGUAGES):
        raise Http404(f"{lang}: no such language")
    with translation.override(lang):
        response = _javascript_catalog(request)
    response["Content-Language"] = lang
    return response
