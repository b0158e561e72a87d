"""/carte/: the coordinator's map page (its behaviour in a browser: test_map_browser.py)."""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from maraudes.days import service_day
from maraudes.models import Role
from tests.factories import TeamFactory, UserFactory, ZoneFactory, user_with_role
from zones.models import Assignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def config_of(html: str) -> dict:
    match = re.search(r'<script id="map-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no map configuration in the page"
    return json.loads(match.group(1))


def test_a_coordinator_gets_the_map_in_french(client):
    TeamFactory(name="Nord 1", color="#d62728")
    TeamFactory(name="Ancienne", is_active=False)
    client.force_login(user_with_role(Role.COORDINATOR))

    response = client.get("/carte/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    for text in ("Carte de coordination", "Équipes en maraude", "Zones blanches prioritaires",
                 "Affectations", "Nuit du", "Connexion au direct"):  # fmt: skip
        assert text in html
    config = config_of(html)
    today = service_day(timezone.now()).isoformat()
    assert config["today"] == today and config["window"]["to"] == today
    assert config["ws"] == "/ws/live/"
    assert config["api"]["assignments"] == "/api/v1/assignments/"
    assert [t["name"] for t in config["teams"]] == ["Nord 1"]  # active teams only


def test_leaflet_comes_from_the_app_and_tiles_from_the_settings(client):
    client.force_login(user_with_role(Role.COORDINATOR))

    html = client.get("/carte/").content.decode()

    # No CDN: every script and stylesheet is served by the app itself.
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert any(s.endswith("leaflet/leaflet.js") or s.endswith("leaflet-src.js") for s in sources)
    assert all(s.startswith("/") for s in sources), sources
    # The basemap: TILES_URL with its attribution, through django-leaflet's configuration.
    assert settings.TILES_URL in html
    assert settings.TILES_ATTRIBUTION in html


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_map_loads_the_scripts_catalog_of_its_language_before_its_script(client, lang):
    client.force_login(user_with_role(Role.COORDINATOR))

    html = client.get("/carte/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()

    assert html.index(f'<script src="/i18n/js/{lang}/"></script>') < html.index("frontend/map.js")


@pytest.mark.parametrize("role", [Role.PLANNER, Role.FIELD])
def test_the_map_is_refused_to_planners_and_team_members(client, role):
    team = TeamFactory() if role == Role.FIELD else None
    client.force_login(user_with_role(role, team=team))

    response = client.get("/carte/")

    assert response.status_code == 403
    html = response.content.decode()
    assert "Accès réservé à la coordination" in html
    assert "map-config" not in html


def test_a_person_without_role_is_refused_too(client):
    client.force_login(UserFactory())
    assert client.get("/carte/").status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/carte/")
    assert response.status_code == 302
    assert response["Location"] == "/connexion/?next=/carte/"


def test_a_superuser_gets_the_map(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    response = client.get("/carte/")
    assert response.status_code == 200
    assert 'href="/admin/"' in response.content.decode()


def test_coordinators_land_on_the_map(client):
    client.force_login(user_with_role(Role.COORDINATOR))
    assert client.get("/")["Location"] == "/carte/"


def test_the_map_opens_on_the_kind_of_zones_assigned_lately(client):
    ZoneFactory(kind="arrondissement")
    secteur = ZoneFactory(kind="secteur")
    Assignment.objects.create(zone=secteur, team=TeamFactory(), day=service_day(timezone.now()))
    client.force_login(user_with_role(Role.COORDINATOR))

    config = config_of(client.get("/carte/").content.decode())
    assert config["kinds"] == ["arrondissement", "secteur"] and config["kind"] == "secteur"

    chosen = config_of(client.get("/carte/?kind=arrondissement").content.decode())
    assert chosen["kind"] == "arrondissement"
    assert config_of(client.get("/carte/?kind=galaxie").content.decode())["kind"] == "secteur"
