import pytest
from rest_framework.authtoken.models import Token

from tests.factories import TeamFactory, UserFactory, user_with_role

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/token/"


def test_it_returns_a_token_for_the_right_password(api):
    user = UserFactory(username="nadia")

    response = api.post(URL, {"username": "nadia", "password": "secret-pass-123"})

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_it_returns_the_same_token_each_time(api):
    UserFactory(username="nadia")
    first = api.post(URL, {"username": "nadia", "password": "secret-pass-123"}).json()
    second = api.post(URL, {"username": "nadia", "password": "secret-pass-123"}).json()
    assert first == second


def test_it_does_not_say_whether_the_user_or_the_password_was_wrong(api):
    UserFactory(username="nadia")

    wrong_password = api.post(URL, {"username": "nadia", "password": "not-it"})
    wrong_user = api.post(URL, {"username": "nobody", "password": "secret-pass-123"})

    assert wrong_password.status_code == wrong_user.status_code == 400
    assert wrong_password.json() == wrong_user.json()
    (message,) = wrong_password.json()["non_field_errors"]
    assert message == "Impossible de se connecter avec les informations d'identification fournies."
    assert not Token.objects.exists()


def test_it_refuses_an_inactive_user_with_the_same_message(api):
    UserFactory(username="nadia", is_active=False)

    inactive = api.post(URL, {"username": "nadia", "password": "secret-pass-123"})
    wrong_user = api.post(URL, {"username": "nobody", "password": "secret-pass-123"})

    assert inactive.status_code == 400
    assert inactive.json() == wrong_user.json()


def test_it_names_the_missing_field(api):
    response = api.post(URL, {"username": "nadia"})

    assert response.status_code == 400
    assert "password" in response.json()


def test_it_authenticates_api_calls_with_the_token(api):
    team = TeamFactory()
    user_with_role("field", team=team, username="karim")
    token = api.post(URL, {"username": "karim", "password": "secret-pass-123"}).json()["token"]

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.get("/api/v1/teams/")

    assert response.status_code == 200
    assert [t["id"] for t in response.json()] == [team.id]


def test_it_rejects_a_bad_token(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api.get("/api/v1/teams/").status_code == 401


def test_it_rejects_anonymous_calls(api):
    response = api.get("/api/v1/teams/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
