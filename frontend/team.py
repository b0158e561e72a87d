"""The team app (/equipe/): a PWA for the phone of a team member at night.

The page is an app shell: its HTML, script and styles are cached by a service worker so it
opens without network; the member's work (check-in, fixes, encounters, check-out) goes into
an outbox in IndexedDB first and is sent through the public API in order
(frontend/static/frontend/team/). The views here serve the shell, its service worker and
manifest, and two reads of the app's own: tonight's zones with what is left to walk
(white parts), and the summary of a shift.

Zones: the team's assigned zones of tonight come with their white part *tonight* (what is
left to walk); "nearby" are the white zones of the last 7 days (nobody went there this week)
around the team's last stored fix, ranked by priority, with the reason. The coordination's
`/api/v1/white-zones/` is not for teams: this read gives a team only the zones around it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.gis.geos import Polygon
from django.db.models import Avg, Count, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from maraudes.days import service_day
from maraudes.models import Action, Need, Position, Role, Shift, Team
from maraudes.roles import COORDINATION, user_has_role, user_roles, user_team_ids
from maraudes.services import MAX_PEOPLE
from zones.geometry import TrackFix, track_runs
from zones.models import Zone, ZoneDayCoverage
from zones.selectors import assignments_for_day, white_zones, zones_list

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "frontend" / "team"
# The app shell: what the service worker caches so the app opens offline.
SHELL_STATIC = [
    "frontend/base.css",
    "frontend/team/app.css",
    "frontend/team/app.js",
    "frontend/team/outbox.js",
    "frontend/team/icon.svg",
    "frontend/team/icon-192.png",
    "leaflet/leaflet.css",
    "leaflet/leaflet.js",
]
# White zones "nearby": within this distance of the team's last fix, this many at most.
NEARBY_DEGREES = (0.012, 0.008)  # lon, lat: about 900 m around a Paris point
NEARBY_MAX = 5
NEARBY_WINDOW_DAYS = 7
# Fixes batched by the app: every BATCH_SECONDS or BATCH_FIXES, whichever comes first.
BATCH_SECONDS = 30
BATCH_FIXES = 20


def _label(value) -> str:
    text = str(value)
    return text[:1].upper() + text[1:]


def _app_teams(user) -> list[Team]:
    """The teams a member goes out with; the coordination may go out with any team."""
    teams = Team.objects.filter(is_active=True).select_related("organization")
    own = user_team_ids(user)
    if own:
        return list(teams.filter(id__in=own).order_by("name"))
    if user_has_role(user, COORDINATION):
        return list(teams.order_by("organization__name", "name"))
    return []


def _may_see_team(user, team_id: int) -> bool:
    return team_id in user_team_ids(user) or user_has_role(user, COORDINATION)


def _js_catalog_urls() -> list[str]:
    """The JavaScript catalog of every language: the cached page asks for the one of its own
    language, which may have changed since the worker was installed (the language menu)."""
    return [reverse("js-catalog", args=[code]) for code, _name in settings.LANGUAGES]


def _js_catalog_files() -> list[Path]:
    """The compiled catalogs behind those URLs."""
    return [
        Path(directory) / code / "LC_MESSAGES" / "djangojs.mo"
        for directory in settings.LOCALE_PATHS
        for code, _name in settings.LANGUAGES
    ]


@cache
def _shell_version() -> str:
    """Changes when a shell file changes: a new service worker then replaces the cached
    shell. Same files, same version, in every worker process."""
    digest = hashlib.sha256()
    for name in SHELL_STATIC:
        if name.startswith("frontend/"):
            digest.update((STATIC_DIR / name).read_bytes())
    for name in ("app.html", "sw.js"):
        digest.update((TEMPLATES_DIR / name).read_bytes())
    for compiled in _js_catalog_files():  # French has none: its strings are the msgids
        if compiled.is_file():
            digest.update(compiled.read_bytes())
    return digest.hexdigest()[:12]


def shell_version() -> str:
    if settings.DEBUG:
        _shell_version.cache_clear()
    return _shell_version()


@login_required
@ensure_csrf_cookie
def team_app(request: HttpRequest) -> HttpResponse:
    teams = _app_teams(request.user)
    config = {
        "version": shell_version(),
        "user": request.user.get_full_name() or request.user.get_username(),
        "teams": [
            {
                "id": t.pk,
                "name": t.name,
                "organization": t.organization.name,
                "mode": t.mode,
                "color": t.color,
                "maxSpeed": t.max_speed,
            }
            for t in teams
        ],
        "needs": [{"value": v, "label": _label(label)} for v, label in Need.choices],
        "actions": [{"value": v, "label": _label(label)} for v, label in Action.choices],
        "maxPeople": MAX_PEOPLE,
        "maxNote": 280,
        "maxAccuracy": settings.MAX_ACCURACY_M,
        "maxGapS": settings.MAX_GAP_S,
        "batchSeconds": BATCH_SECONDS,
        "batchFixes": BATCH_FIXES,
        "maxFixesPerRequest": min(500, settings.MAX_FIXES_PER_REQUEST),
        "tiles": {"url": settings.TILES_URL, "attribution": settings.TILES_ATTRIBUTION},
        "urls": {
            "shifts": reverse("shift-start"),
            "encounters": reverse("encounters"),
            "trackSetup": reverse("track-setup"),
            "zones": reverse("team-zones"),
            "openShifts": reverse("team-open-shifts"),
            "summary": reverse("team-shift-summary", args=[0]),
            "login": reverse("login") + "?next=" + reverse("team-app"),
            "sw": reverse("team-sw"),
            "app": reverse("team-app"),
        },
    }
    planner_only = Role.PLANNER in user_roles(request.user) and not teams
    response = render(
        request,
        "frontend/team/app.html",
        {"config": config, "teams": teams, "planner_only": planner_only},
    )
    # The service worker keeps a copy for offline use; the browser always asks again.
    response["Cache-Control"] = "no-cache, private"
    return response


@never_cache
def service_worker(request: HttpRequest) -> HttpResponse:
    shell = [reverse("team-app"), reverse("team-manifest")] + [static(n) for n in SHELL_STATIC]
    shell += _js_catalog_urls()
    response = render(
        request,
        "frontend/team/sw.js",
        {
            "version": shell_version(),
            "shell": json.dumps(shell),
            "scope": reverse("team-app"),
            # A JSON string is a JavaScript string; "</" escaped all the same.
            "offline_page": json.dumps(
                render_to_string("frontend/team/offline.html", request=request)
            ).replace("</", "<\\/"),
        },
        content_type="application/javascript; charset=utf-8",
    )
    response["Service-Worker-Allowed"] = reverse("team-app")
    return response


def manifest(request: HttpRequest) -> HttpResponse:
    app = reverse("team-app")
    data = {
        "name": _("Maraudes — équipe"),
        "short_name": "Maraudes",
        "description": _("Démarrer la maraude, partager sa position, noter les rencontres."),
        "lang": get_language(),
        "dir": "ltr",
        "start_url": app,
        "scope": app,
        "id": app,
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#14213d",
        "theme_color": "#14213d",
        "icons": [
            {"src": static("frontend/team/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static("frontend/team/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {
                "src": static("frontend/team/icon-maskable-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
            {"src": static("frontend/team/icon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    response = HttpResponse(
        json.dumps(data, ensure_ascii=False), content_type="application/manifest+json"
    )
    response["Cache-Control"] = "no-cache"
    return response


# --- The app's reads ------------------------------------------------------------------------


def _json_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _team_param(request: HttpRequest) -> Team | JsonResponse:
    if not request.user.is_authenticated:
        return _json_error(401, "Reconnectez-vous.")
    try:
        team_id = int(request.GET.get("team", ""))
    except ValueError:
        return _json_error(400, "team : un identifiant d'équipe est attendu.")
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return _json_error(404, "Équipe inconnue.")
    if not _may_see_team(request.user, team.pk):
        return _json_error(403, "Ce n'est pas votre équipe.")
    return team


def _geometry(geom) -> dict:
    return json.loads(geom.transform(4326, clone=True).json)


@never_cache
def team_zones(request: HttpRequest) -> JsonResponse:
    """Tonight's assigned zones (outline and white part) and the white zones nearby."""
    team = _team_param(request)
    if isinstance(team, JsonResponse):
        return team
    today = service_day(timezone.now())
    assigned = list(assignments_for_day(day=today, team_ids=[team.pk]))
    zone_ids = [a.zone_id for a in assigned]
    white_tonight = {
        w.coverage.zone_id: w for w in white_zones(day_from=today, day_to=today, zone_ids=zone_ids)
    } if zone_ids else {}  # fmt: skip
    assigned_features = []
    for assignment in assigned:
        zone = assignment.zone
        white = white_tonight.get(zone.pk)
        assigned_features.append(
            {
                "type": "Feature",
                "id": zone.pk,
                "geometry": _geometry(zone.geom),
                "properties": {
                    "code": zone.code,
                    "name": zone.name,
                    "kind": zone.kind,
                    # Nothing white left: covered tonight.
                    "white_ratio": round(white.coverage.white_ratio, 4) if white else 0.0,
                    "white": json.loads(white.coverage.white_geojson)
                    if white and white.coverage.white_geojson
                    else None,
                },
            }
        )
    return JsonResponse(
        {
            "day": today.isoformat(),
            "team": team.pk,
            "assigned": {"type": "FeatureCollection", "features": assigned_features},
            "nearby": {
                "type": "FeatureCollection",
                "features": _nearby_white_zones(team, today, assigned, exclude=set(zone_ids)),
            },
            "generated_at": timezone.now().isoformat(),
        }
    )


def _nearby_white_zones(team: Team, today, assigned, *, exclude: set[int]) -> list[dict]:
    last = (
        Position.objects.filter(shift__team=team, shift__ended_at__isnull=True)
        .order_by("-recorded_at")
        .values_list("point", flat=True)
        .first()
    )
    if last is None:
        return []
    here = last.transform(4326, clone=True)
    dx, dy = NEARBY_DEGREES
    bbox = Polygon.from_bbox((here.x - dx, here.y - dy, here.x + dx, here.y + dy))
    bbox.srid = 4326
    kinds = {a.zone.kind for a in assigned}
    if not kinds:
        finest = Zone.objects.values("kind").annotate(avg=Avg("area_m2")).order_by("avg").first()
        kinds = {finest["kind"]} if finest else set()
    ids = [z.pk for kind in kinds for z in zones_list(kind=kind, bbox=bbox) if z.pk not in exclude]
    if not ids:
        return []
    found = white_zones(
        day_from=today - timedelta(days=NEARBY_WINDOW_DAYS - 1), day_to=today, zone_ids=ids
    )
    features = []
    for white in found[:NEARBY_MAX]:
        row = white.coverage
        features.append(
            {
                "type": "Feature",
                "id": row.zone_id,
                "geometry": json.loads(row.white_geojson) if row.white_geojson else None,
                "properties": {
                    "code": row.code,
                    "name": row.name,
                    "kind": row.kind,
                    "white_ratio": round(row.white_ratio, 4),
                    "last_visit": row.last_visit.isoformat() if row.last_visit else None,
                    "priority": white.priority,
                    "reason": white.reason,
                },
            }
        )
    return features


@never_cache
def team_open_shifts(request: HttpRequest) -> JsonResponse:
    """The team's open shifts: to resume one on this phone, or to find the one a check-in
    created when its answer was lost."""
    team = _team_param(request)
    if isinstance(team, JsonResponse):
        return team
    shifts = Shift.objects.filter(team=team, ended_at__isnull=True).order_by("-started_at")[:5]
    return JsonResponse(
        {
            "shifts": [
                {
                    "id": s.pk,
                    "started_at": s.started_at.isoformat(),
                    "started_by_me": s.started_by_id == request.user.pk,
                }
                for s in shifts
            ]
        }
    )


@never_cache
def team_shift_summary(request: HttpRequest, shift_id: int) -> JsonResponse:
    """Duration, distance walked (the coverage rule's segments), encounters and the zones the
    shift passed through."""
    if not request.user.is_authenticated:
        return _json_error(401, "Reconnectez-vous.")
    shift = Shift.objects.select_related("team").filter(pk=shift_id).first()
    if shift is None:
        return _json_error(404, "Maraude inconnue.")
    if not _may_see_team(request.user, shift.team_id):
        return _json_error(403, "Cette maraude n'est pas celle de votre équipe.")
    fixes = [
        TrackFix(t, p.x, p.y)
        for t, p in Position.objects.filter(shift=shift, accuracy__lte=settings.MAX_ACCURACY_M)
        .order_by("recorded_at")
        .values_list("recorded_at", "point")
    ]
    runs = track_runs(fixes, max_gap_s=settings.MAX_GAP_S, max_speed=shift.team.max_speed)
    distance = sum(
        ((b.x - a.x) ** 2 + (b.y - a.y) ** 2) ** 0.5 for run in runs for a, b in pairwise(run)
    )
    encounters = shift.encounters.aggregate(n=Count("id"), people=Sum("people_count"))
    zones = (
        Zone.objects.filter(
            id__in=ZoneDayCoverage.objects.filter(shift_ids__contains=[shift.pk]).values("zone_id")
        )
        .order_by("kind", "name")
        .values("code", "name", "kind")
    )
    end = shift.ended_at or timezone.now()
    return JsonResponse(
        {
            "shift": shift.pk,
            "started_at": shift.started_at.isoformat(),
            "ended_at": shift.ended_at.isoformat() if shift.ended_at else None,
            "duration_s": round((end - shift.started_at).total_seconds()),
            "distance_m": round(distance),
            "fix_count": Position.objects.filter(shift=shift).count(),
            "encounters": encounters["n"] or 0,
            "people": encounters["people"] or 0,
            "zones": list(zones),
        }
    )


urlpatterns = [
    path("", team_app, name="team-app"),
    path("sw.js", service_worker, name="team-sw"),
    path("manifest.webmanifest", manifest, name="team-manifest"),
    path("api/zones/", team_zones, name="team-zones"),
    path("api/maraudes/en-cours/", team_open_shifts, name="team-open-shifts"),
    path("api/maraudes/<int:shift_id>/bilan/", team_shift_summary, name="team-shift-summary"),
]
