"""Browser tests: the real ASGI app served by uvicorn, driven by Debian's Chromium.

`live_app` serves `maraudes.asgi:application` from a thread of the test process, against the
test database; `page` is a fresh French-speaking browser tab that leaves a screenshot in
`test-artifacts/<test name>.png` when the test ends, to look at what a person saw.

The fixtures are function-scoped on purpose: Playwright's sync API marks its event loop as
running in this thread for as long as it is started (see `playwright` below), which would
break every async test collected after a session-scoped browser.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 15


def artifact_path(node: pytest.Item, suffix: str = "") -> Path:
    """test-artifacts/<test name><suffix>.png, the name made safe for a file system."""
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", node.name).strip("_")
    return ARTIFACTS / f"{name}{suffix}.png"


class _UvicornThread(threading.Thread):
    def __init__(self, server, sock: socket.socket) -> None:
        super().__init__(name="live-app-uvicorn", daemon=True)
        self.server = server
        self.sock = sock
        self.error: BaseException | None = None

    def run(self) -> None:
        # Server.run() makes its own event loop (asyncio.run) in this thread: it never meets
        # pytest-asyncio's loops nor Playwright's, which live in the main thread.
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            self.error = exc


def log_in_by_cookie(context, base_url: str, user) -> None:
    """Log `user` in to a browser context without the login form, whose labels change with the
    language: a session made by the test client, handed over as its cookie."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])


@pytest.fixture
def live_app(transactional_db) -> Iterator[str]:
    """Base URL (http://127.0.0.1:<port>) of the real ASGI app, served while the test runs.

    `transactional_db`: the server's threads have their own database connections, so the
    test's rows must be committed for them to be seen (and are flushed afterwards).
    """
    import uvicorn

    from maraudes.asgi import application

    # Bind the socket here and hand it over: the port cannot be taken between the choice
    # of a free port and uvicorn's bind.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = _UvicornThread(server, sock)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start on port {port}") from thread.error
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop")  # pragma: no cover


@pytest.fixture
def playwright(monkeypatch):
    from playwright.sync_api import sync_playwright

    if asyncio._get_running_loop() is not None:
        pytest.fail("Playwright's sync API cannot start inside a running event loop")
    # Between two sync calls Playwright leaves its event loop marked as running in this
    # thread, so Django takes the test body for async code and refuses the ORM
    # (SynchronousOnlyOperation). Nothing runs concurrently with the test code here: the loop
    # only turns inside Playwright's own calls, so the ORM is safe and we say so.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        yield pw
    # The next (maybe async) test must find no loop marked as running in this thread.
    if asyncio._get_running_loop() is not None:  # pragma: no cover - depends on Playwright
        asyncio._set_running_loop(None)


@pytest.fixture
def browser(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: `scripts/env.sh browser` installs Debian's "
            "chromium (Playwright cannot download its own browsers here)."
        )
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def browser_context_args() -> dict:
    """Options of the browser context; override in a test module to change them."""
    # A Paris outreach worker's browser: French first, a laptop-sized window.
    return {
        "locale": "fr-FR",
        "timezone_id": "Europe/Paris",
        "viewport": {"width": 1280, "height": 800},
    }


@pytest.fixture
def page(request, live_app, browser, browser_context_args):
    """A fresh tab whose relative URLs point at `live_app`; screenshot at the end."""
    context = browser.new_context(base_url=live_app, **browser_context_args)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            if not page.is_closed():
                page.screenshot(path=artifact_path(request.node), full_page=True)
        finally:
            context.close()
