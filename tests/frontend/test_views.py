import pytest
from django.db import OperationalError
from django.test import Client

from tests.factories import TeamFactory, UserFactory, user_with_role

pytestmark = pytest.mark.django_db

WRONG = "Identifiant ou mot de passe incorrect."


@pytest.fixture
def client() -> Client:
    return Client()


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/connexion/?next=/"


def test_it_shows_the_login_page_in_french(client):
    html = client.get("/connexion/").content.decode()

    assert '<html lang="fr">' in html
    for text in ("Connexion", "Identifiant", "Mot de passe", "Se connecter"):
        assert text in html
    assert WRONG not in html


def test_it_says_only_that_the_login_failed(client):
    UserFactory(username="nadia")

    wrong_password = client.post("/connexion/", {"username": "nadia", "password": "non"})
    unknown_user = client.post("/connexion/", {"username": "nobody", "password": "non"})

    for response in (wrong_password, unknown_user):
        assert response.status_code == 200
        assert WRONG in response.content.decode()


def test_it_logs_in_and_goes_home(client):
    UserFactory(username="nadia")

    response = client.post(
        "/connexion/", {"username": "nadia", "password": "secret-pass-123", "next": "/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_it_sends_a_logged_in_person_away_from_the_login_page(client):
    client.force_login(UserFactory())

    response = client.get("/connexion/")

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_it_greets_the_person_by_name(client):
    client.force_login(UserFactory(username="nadia", first_name="Nadia", last_name="Benali"))

    html = client.get("/").content.decode()

    assert "Bonjour Nadia Benali" in html


def test_it_greets_by_username_when_there_is_no_name(client):
    client.force_login(UserFactory(username="karim"))

    assert "Bonjour karim" in client.get("/").content.decode()


@pytest.mark.urls("tests.frontend.urls_without_screens")
def test_it_shows_the_roles_in_french(client):
    client.force_login(user_with_role("planner"))

    html = client.get("/").content.decode()

    assert "Votre rôle :" in html
    assert "planificateur" in html


def test_it_tells_a_person_without_role_whom_to_ask(client):
    client.force_login(UserFactory())

    assert "demandez à un administrateur" in client.get("/").content.decode()


@pytest.mark.urls("tests.frontend.urls_without_screens")
def test_it_shows_a_field_member_their_team(client):
    team = TeamFactory(name="Maraude Nord", organization__name="Aurore")
    client.force_login(user_with_role("field", team=team))

    html = client.get("/").content.decode()

    assert "Maraude Nord" in html
    assert "Aurore" in html


@pytest.mark.urls("tests.frontend.urls_without_screens")
def test_it_links_to_the_api_docs_and_the_zones(client):
    client.force_login(user_with_role("coordinator"))

    html = client.get("/").content.decode()

    assert 'href="/api/docs/"' in html
    assert 'href="/api/v1/zones/"' in html
    assert 'href="/admin/"' not in html


@pytest.mark.urls("tests.frontend.urls_without_screens")
def test_it_links_administrators_to_the_admin(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    html = client.get("/").content.decode()

    assert 'href="/admin/"' in html


@pytest.mark.parametrize(
    ("role", "screen"),
    [("coordinator", "/carte/"), ("admin", "/carte/"), ("planner", "/rapports/")],
)
def test_it_sends_each_role_to_its_main_screen_once_it_exists(client, role, screen):
    client.force_login(user_with_role(role))

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == screen


def test_it_sends_a_field_member_to_the_team_screen_once_it_exists(client):
    client.force_login(user_with_role("field", team=TeamFactory()))

    assert client.get("/")["Location"] == "/equipe/"


@pytest.mark.urls("tests.frontend.urls_without_screens")
def test_it_keeps_everyone_on_the_home_page_until_the_screens_exist(client):
    client.force_login(user_with_role("coordinator"))

    assert client.get("/").status_code == 200


def test_it_answers_ok_to_health_checks_without_login(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/healthz/")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_the_database_is_unreachable(client, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("frontend.views.connection", Unreachable())

    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.content == b"database unavailable"
