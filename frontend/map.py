"""The coordinator's live map (/carte/): the page and its configuration; the layers come from
the API and the live events from /ws/live/ (frontend/static/frontend/map.js)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from maraudes.days import service_day
from maraudes.models import Team
from maraudes.roles import COORDINATION, user_has_role
from maraudes.selectors import TRAIL
from zones.models import Assignment
from zones.selectors import NEVER, STALENESS_CLASSES, zone_kinds

# The white-zone window the map opens on: the last week, tonight included.
DEFAULT_WINDOW_DAYS = 7


def _default_kind(kinds: list[str]) -> str | None:
    """The kind of zones the coordination assigns lately, else the first one."""
    if not kinds:
        return None
    latest = Assignment.objects.order_by("-day", "-id").values_list("zone__kind", flat=True).first()
    return latest if latest in kinds else kinds[0]


@login_required
def coordinator_map(request: HttpRequest) -> HttpResponse:
    if not user_has_role(request.user, COORDINATION):
        return render(request, "frontend/map_forbidden.html", status=403)
    kinds = zone_kinds()
    kind = request.GET.get("kind")
    if kind not in kinds:
        kind = _default_kind(kinds)
    today = service_day(timezone.now())
    teams = Team.objects.filter(is_active=True).select_related("organization")
    config = {
        "kind": kind,
        "kinds": kinds,
        "today": today.isoformat(),
        "window": {
            "from": (today - timedelta(days=DEFAULT_WINDOW_DAYS - 1)).isoformat(),
            "to": today.isoformat(),
        },
        "trailMinutes": int(TRAIL.total_seconds() // 60),
        "dayStartMinutes": settings.DAY_START.hour * 60 + settings.DAY_START.minute,
        "timeZone": settings.TIME_ZONE,
        "csrfToken": get_token(request),
        "loginUrl": reverse("login") + "?next=" + request.path,
        "ws": "/ws/live/",
        "api": {
            "zones": reverse("zones"),
            "staleness": reverse("staleness"),
            "whiteZones": reverse("white-zones"),
            "encounters": reverse("encounters"),
            "liveTeams": reverse("live-teams"),
            "assignments": reverse("assignments"),
            "conflicts": reverse("assignment-conflicts"),
        },
        "teams": [
            {
                "id": team.pk,
                "name": team.name,
                "color": team.color,
                "mode": team.mode,
                "organization": team.organization.name,
            }
            for team in teams
        ],
        "staleness": [{"key": key, "label": str(label)} for key, _days, label in STALENESS_CLASSES]
        + [{"key": NEVER[0], "label": str(NEVER[1])}],
    }
    return render(request, "frontend/map.html", {"config": config, "kinds": kinds, "kind": kind})
