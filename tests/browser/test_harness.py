"""The harness itself: the real ASGI app in a thread, Chromium, and pytest-asyncio side by side.

The tests run in file order: the async test comes after a browser test on purpose.
"""

import asyncio
import json
from urllib.request import Request, urlopen

import pytest

from maraudes.models import Organization


@pytest.mark.browser
def test_it_serves_the_real_app_to_chromium(live_app, page):
    response = page.goto("/healthz/")

    assert response.status == 200
    assert page.inner_text("body") == "ok"


@pytest.mark.browser
def test_it_lets_the_test_use_the_orm_while_the_browser_runs(live_app, page):
    page.goto("/healthz/")

    Organization.objects.create(name="Aurore")

    assert Organization.objects.count() == 1


def test_it_shows_the_server_the_rows_the_test_committed(live_app):
    from tests.factories import UserFactory

    UserFactory(username="nadia")

    # Our own http://127.0.0.1 server: no file: or custom scheme can reach urlopen here.
    request = Request(  # noqa: S310
        f"{live_app}/api/v1/auth/token/",
        data=json.dumps({"username": "nadia", "password": "secret-pass-123"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert json.load(response)["token"]


async def test_it_leaves_no_event_loop_behind_for_async_tests():
    # Playwright's sync API marks its loop as running in the main thread while it is
    # started; the `playwright` fixture must leave the thread clean for pytest-asyncio.
    await asyncio.sleep(0)
    assert asyncio.get_running_loop().is_running()
