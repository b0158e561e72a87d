from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

# Browser fixtures (live_app, page…) for every test folder that drives Chromium.
pytest_plugins = ["tests.browser.harness"]

# ../shared/data beside the checkout: real Paris data, read in place, never copied.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(db):
    """api_as(user) -> an APIClient authenticated with the user's token, like a phone."""
    from rest_framework.authtoken.models import Token

    def make(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing a password the production way costs most of a second; tests need none of it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def team(db):
    from tests.factories import TeamFactory

    return TeamFactory()


@pytest.fixture
def member(team):
    """A field member of `team`."""
    from maraudes.models import Role
    from tests.factories import user_with_role

    return user_with_role(Role.FIELD, team=team)


@pytest.fixture
def sent(monkeypatch) -> list:
    """Events handed to the channel layer (maraudes.realtime.send_all), in order."""
    from maraudes import realtime

    out: list = []
    monkeypatch.setattr(realtime, "send_all", out.extend)
    return out


@pytest.fixture
def week47(db):
    """The weekly report's test week, 2026-W47 (tests.support.reports.make_week47)."""
    from tests.support.reports import make_week47

    make_week47()


@pytest.fixture(autouse=True)
def language_reset():
    """A request with Accept-Language activates its language in the thread that served it (as
    LocaleMiddleware does), and the test client serves in this thread: each test starts and
    ends in the default language, whatever the previous one asked for."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()
