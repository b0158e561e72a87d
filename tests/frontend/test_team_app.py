"""The team app (/equipe/): its shell, service worker and manifest, and its own reads."""

from __future__ import annotations

import json
import struct
from datetime import timedelta

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from maraudes.days import service_day, service_day_bounds
from maraudes.fixes import Fix
from maraudes.models import Encounter, Role
from tests.factories import ShiftFactory, TeamFactory, UserFactory, ZoneFactory, user_with_role
from zones.models import Assignment
from zones.services import track_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    return TeamFactory(name="Maraude Nord", organization__name="Aurore")


@pytest.fixture
def member(team):
    return user_with_role(Role.FIELD, team=team, username="amina")


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def square(lon0: float, lat0: float, lon1: float, lat1: float) -> MultiPolygon:
    polygon = Polygon.from_bbox((lon0, lat0, lon1, lat1))
    polygon.srid = 4326
    polygon.transform(2154)
    return MultiPolygon(polygon, srid=2154)


# --- The shell ------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/equipe/")

    assert response.status_code == 302
    assert response["Location"] == "/connexion/?next=/equipe/"


def test_a_field_member_lands_on_the_team_app(client_for, member):
    assert client_for(member).get("/")["Location"] == "/equipe/"


def test_it_shows_the_members_team_and_the_big_button_in_french(client_for, member):
    response = client_for(member).get("/equipe/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="fr">' in html
    for text in ("Maraude Nord", "Aurore", "Démarrer la maraude", "Rencontre", "Terminer"):
        assert text in html
    assert 'rel="manifest" href="/equipe/manifest.webmanifest"' in html
    assert "csrftoken" in response.cookies
    assert "no-cache" in response["Cache-Control"]


def test_the_encounter_form_offers_needs_and_actions_with_french_labels_and_a_reminder(
    client_for, member
):
    html = client_for(member).get("/equipe/").content.decode()

    assert 'value="shelter"><span>Hébergement / 115</span>' in html
    assert 'value="hot_drink"><span>Boisson chaude</span>' in html
    assert "Jamais de nom" in html
    assert 'maxlength="280"' in html


def test_its_configuration_names_the_api_and_the_rules(client_for, member, team):
    response = client_for(member).get("/equipe/")

    config = json.loads(json.dumps(response.context["config"]))
    assert config["teams"] == [
        {
            "id": team.pk,
            "name": "Maraude Nord",
            "organization": "Aurore",
            "mode": "foot",
            "color": team.color,
            "maxSpeed": 4.0,
        }
    ]
    assert config["urls"]["shifts"] == "/api/v1/shifts/"
    assert config["urls"]["encounters"] == "/api/v1/encounters/"
    assert config["urls"]["trackSetup"] == "/api/v1/track/setup/"
    assert (config["batchSeconds"], config["batchFixes"]) == (30, 20)
    assert {n["value"] for n in config["needs"]} >= {"food", "shelter", "health"}


def test_a_person_without_a_team_is_told_whom_to_ask(client_for):
    html = client_for(UserFactory(username="sans-equipe")).get("/equipe/").content.decode()

    assert "aucune équipe" in html
    assert "Démarrer la maraude" not in html


def test_a_coordinator_may_go_out_with_any_active_team(client_for, team):
    TeamFactory(name="Sud 2")
    TeamFactory(name="Dissoute", is_active=False)

    html = client_for(user_with_role(Role.COORDINATOR)).get("/equipe/").content.decode()

    assert "Votre équipe ce soir" in html
    assert "Maraude Nord" in html and "Sud 2" in html
    assert "Dissoute" not in html


# --- Service worker and manifest ------------------------------------------------------------


def test_the_service_worker_is_served_at_the_apps_scope(client):
    response = client.get("/equipe/sw.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Service-Worker-Allowed"] == "/equipe/"
    assert "no-cache" in response["Cache-Control"]
    body = response.content.decode()
    shell = json.loads(body.split("const SHELL = ")[1].split(";\n")[0])
    assert "/equipe/" in shell
    assert "/static/frontend/team/app.js" in shell
    assert "/static/leaflet/leaflet.js" in shell
    # The scripts' catalog of every language: the page kept offline may be in either.
    assert "/i18n/js/fr/" in shell
    assert "/i18n/js/en/" in shell


def test_every_shell_file_is_served(client):
    body = client.get("/equipe/sw.js").content.decode()
    shell = json.loads(body.split("const SHELL = ")[1].split(";\n")[0])

    for url in shell:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url
        elif url != "/equipe/":  # the page itself needs a login; the worker fetches it apart
            assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_app_loads_the_scripts_catalog_of_its_language_before_its_scripts(
    client_for, member, lang
):
    html = client_for(member).get("/equipe/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()

    catalog = html.index(f'<script src="/i18n/js/{lang}/"></script>')
    assert catalog < html.index("/static/frontend/team/app.js")
    assert catalog < html.index("/static/leaflet/leaflet.js")


def test_the_service_worker_version_follows_the_shell(client, settings, monkeypatch):
    from frontend import team as team_views

    first = client.get("/equipe/sw.js").content
    monkeypatch.setattr(team_views, "SHELL_STATIC", [*team_views.SHELL_STATIC, "frontend/map.css"])
    settings.DEBUG = True  # recomputed at each request

    assert client.get("/equipe/sw.js").content != first


def test_the_service_worker_version_follows_the_scripts_catalogs(
    client, settings, monkeypatch, tmp_path
):
    """A new translation must reach the phones: the worker's version follows the .mo files."""
    compiled = tmp_path / "en" / "LC_MESSAGES" / "djangojs.mo"
    compiled.parent.mkdir(parents=True)
    compiled.write_bytes(b"first")
    settings.LOCALE_PATHS = [tmp_path]
    settings.DEBUG = True  # recomputed at each request
    first = client.get("/equipe/sw.js").content

    compiled.write_bytes(b"second")

    assert client.get("/equipe/sw.js").content != first


@pytest.mark.parametrize(
    ("lang", "title", "message"),
    [("fr", "Hors ligne", "Pas de réseau"), ("en", "Offline", "No network")],
)
def test_the_offline_page_of_the_service_worker_is_in_the_language_it_was_installed_in(
    client, lang, title, message
):
    body = client.get("/equipe/sw.js", HTTP_ACCEPT_LANGUAGE=lang).content.decode()

    line = next(row for row in body.splitlines() if row.startswith("const OFFLINE_PAGE = "))
    page = json.loads(line.removeprefix("const OFFLINE_PAGE = ").removesuffix(";"))
    assert f'<html lang="{lang}">' in page
    assert f"<title>{title}</title>" in page and message in page
    assert "</" not in line  # a JavaScript string that never closes a script element


@pytest.mark.parametrize(("lang", "name"), [("fr", "Maraudes — équipe"), ("en", "Maraudes — team")])
def test_the_manifest_speaks_the_language_of_the_request(client, lang, name):
    manifest = client.get("/equipe/manifest.webmanifest", HTTP_ACCEPT_LANGUAGE=lang).json()

    assert manifest["lang"] == lang
    assert manifest["name"] == name
    assert manifest["short_name"] == "Maraudes"


def test_the_manifest_makes_the_app_installable(client):
    response = client.get("/equipe/manifest.webmanifest")

    assert response["Content-Type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["lang"] == "fr"
    assert manifest["start_url"] == manifest["scope"] == "/equipe/"
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        path = finders.find(icon["src"].removeprefix("/static/"))
        assert path, icon
        if icon["type"] == "image/png":
            with open(path, "rb") as png:
                head = png.read(24)
            assert head[:8] == b"\x89PNG\r\n\x1a\n"
            width, height = struct.unpack(">II", head[16:24])
            assert f"{width}x{height}" == icon["sizes"]


# --- Zones ----------------------------------------------------------------------------------


@pytest.fixture
def zones(team):
    """Two quartier-sized squares near Notre-Dame: one assigned tonight, one beside it."""
    assigned = ZoneFactory(
        code="ND", name="Notre-Dame", kind="quartier", geom=square(2.345, 48.850, 2.355, 48.856)
    )
    beside = ZoneFactory(
        code="SV", name="Saint-Victor", kind="quartier", geom=square(2.355, 48.850, 2.365, 48.856)
    )
    Assignment.objects.create(zone=assigned, team=team, day=service_day(timezone.now()))
    return assigned, beside


def walk(shift, n=20, lon=2.3499, lat=48.853):
    """n fixes 10 s apart going east, within tonight's service day (whatever the hour)."""
    now = timezone.now()
    start = max(now - timedelta(minutes=4), service_day_bounds(service_day(now))[0])
    fixes = [
        Fix(t=start + timedelta(seconds=10 * i), lon=lon + 0.0001 * i, lat=lat, accuracy=8.0)
        for i in range(n)
    ]
    track_ingest(shift=shift, fixes=fixes)


def test_it_gives_tonights_zones_with_what_is_left_to_walk(client_for, member, team, zones):
    shift = ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=1))
    walk(shift)

    response = client_for(member).get(f"/equipe/api/zones/?team={team.pk}")

    assert response.status_code == 200
    body = response.json()
    (feature,) = body["assigned"]["features"]
    assert feature["properties"]["name"] == "Notre-Dame"
    assert 0 < feature["properties"]["white_ratio"] < 1
    assert feature["properties"]["white"]["type"] == "MultiPolygon"
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    assert 2.3 < lon < 2.4 and 48.8 < lat < 48.9
    (nearby,) = body["nearby"]["features"]
    assert nearby["properties"]["name"] == "Saint-Victor"
    assert nearby["properties"]["reason"]


def test_without_a_fix_there_is_nothing_nearby(client_for, member, team, zones):
    body = client_for(member).get(f"/equipe/api/zones/?team={team.pk}").json()

    assert body["assigned"]["features"][0]["properties"]["white_ratio"] == 1.0
    assert body["nearby"]["features"] == []


def test_zones_are_for_the_team_only(client_for, team, zones):
    stranger = user_with_role(Role.FIELD, team=TeamFactory())

    assert client_for(stranger).get(f"/equipe/api/zones/?team={team.pk}").status_code == 403
    assert Client().get(f"/equipe/api/zones/?team={team.pk}").status_code == 401
    assert client_for(stranger).get("/equipe/api/zones/?team=abc").status_code == 400
    assert client_for(stranger).get("/equipe/api/zones/?team=999999").status_code == 404


# --- Open shifts and the summary ------------------------------------------------------------


def test_it_lists_the_teams_open_shifts(client_for, member, team):
    mine = ShiftFactory(team=team, started_at=timezone.now(), started_by=member)
    ShiftFactory(team=team, started_at=timezone.now(), ended_at=timezone.now())

    body = client_for(member).get(f"/equipe/api/maraudes/en-cours/?team={team.pk}").json()

    assert body["shifts"] == [
        {"id": mine.pk, "started_at": mine.started_at.isoformat(), "started_by_me": True}
    ]


def test_the_summary_counts_the_walk_the_encounters_and_the_zones(client_for, member, team, zones):
    shift = ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=1))
    walk(shift)  # 19 steps of about 7.3 m
    Encounter.objects.create(
        shift=shift,
        seen_at=timezone.now(),
        point=zones[0].geom.centroid,
        people_count=3,
    )

    body = client_for(member).get(f"/equipe/api/maraudes/{shift.pk}/bilan/").json()

    assert body["fix_count"] == 20
    assert 130 < body["distance_m"] < 145
    assert (body["encounters"], body["people"]) == (1, 3)
    assert [z["name"] for z in body["zones"]] == ["Notre-Dame"]
    assert body["duration_s"] >= 3600


def test_the_summary_is_for_the_team_only(client_for, team):
    shift = ShiftFactory(team=team, started_at=timezone.now())
    stranger = user_with_role(Role.FIELD, team=TeamFactory())

    assert client_for(stranger).get(f"/equipe/api/maraudes/{shift.pk}/bilan/").status_code == 403
    assert Client().get(f"/equipe/api/maraudes/{shift.pk}/bilan/").status_code == 401
