from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.views.decorators.cache import never_cache

from maraudes.models import Role, Team
from maraudes.roles import user_home_path, user_roles, user_team_ids

logger = logging.getLogger(__name__)

# Display order of the roles on the home page, most powerful first.
ROLE_ORDER = [Role.ADMIN, Role.COORDINATOR, Role.PLANNER, Role.FIELD]


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
