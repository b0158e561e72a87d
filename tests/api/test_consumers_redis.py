"""Two ASGI workers behind one Redis, as in production (DESIGN.md, "Scale").

Two real `uvicorn maraudes.asgi:application` processes share the test database (committed
rows: transactional_db) and a Redis channel layer; an event written through worker A reaches a
websocket connected to worker B, and a client that moves from B to A catches up from the
stored events. Redis is the one `make test` starts (`scripts/env.sh redis`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from bench.server import Server, django_env, uvicorn_start
from maraudes.models import Role
from tests.factories import ORIGIN_X, ORIGIN_Y, TeamFactory, ZoneFactory, tile, user_with_role
from tests.support.paris import to_wgs84
from tests.support.redis import redis_required, redis_url

pytestmark = pytest.mark.django_db(transaction=True)

# A database number of its own: the workers' layer has the default prefix.
REDIS_URL = redis_url(2)
TIMEOUT = 10
STARTUP_S = 30
# Longer than channels-redis's blocking pop (5 s).
QUIET_S = 7


def worker_database_url() -> str:
    """The test database (not the dev one) as a URL for the worker processes."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # a socket directory is a path
    return f"postgis://{credentials}@{host}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def workers(transactional_db, tmp_path) -> Iterator[list[str]]:
    """Base URLs of two uvicorn processes sharing the test database and Redis."""
    redis_required()
    env = django_env(worker_database_url(), REDIS_URL=REDIS_URL, DB_POOL="false")
    servers: list[Server] = []
    try:
        for name in ("a", "b"):  # both start at once
            servers.append(uvicorn_start(env=env, log=tmp_path / f"worker-{name}.log", wait=False))
        for server in servers:
            try:
                server.wait_ready(timeout=STARTUP_S)
            except RuntimeError as exc:
                pytest.fail(str(exc))
        yield [server.base_url for server in servers]
    finally:
        # Before transactional_db flushes the tables: the workers hold connections to them.
        for server in servers:
            server.stop()


def _post(base: str, path: str, body: dict, token: str | None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    request = Request(  # noqa: S310 - our own loopback workers
        f"{base}{path}", data=json.dumps(body).encode(), headers=headers
    )
    with urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        return json.load(response)


def _next(ws, event_type: str, **match) -> dict:
    """The next message of that type and data (the feed may carry other events too)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if message["type"] == event_type and all(message.get(k) == v for k, v in match.items()):
            return message


def test_an_event_written_through_one_worker_reaches_a_client_of_the_other(workers):
    from websockets.sync.client import connect

    worker_a, worker_b = workers
    team = TeamFactory()
    phone = Token.objects.create(user=user_with_role(Role.FIELD, team=team)).key
    desk = Token.objects.create(user=user_with_role(Role.COORDINATOR)).key
    url_b = worker_b.replace("http://", "ws://") + f"/ws/live/?token={desk}"

    with connect(url_b, origin=worker_b, open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"

        shift = _post(worker_a, "/api/v1/shifts/", {"team": team.pk}, phone)

        started = _next(ws, "shift_started", shift=shift["id"])
        assert started["team"] == team.pk
        last_seen = started["seq"]

    # Away from B; the end of the shift is written through A meanwhile; the client comes
    # back through A and catches up from the stored events.
    _post(worker_a, f"/api/v1/shifts/{shift['id']}/end/", {}, phone)
    url_a = worker_a.replace("http://", "ws://") + f"/ws/live/?token={desk}&since={last_seen}"
    with connect(url_a, origin=worker_a, open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
        ended = json.loads(ws.recv(timeout=TIMEOUT))
        assert ended["type"] == "shift_ended" and ended["shift"] == shift["id"]
        assert ended["seq"] > last_seen


def test_a_tracker_point_reaches_a_client_of_the_other_worker_once_coverage_followed(workers):
    # Production's path for trackers: worker A stores the point and answers; its drainer
    # thread updates coverage and publishes from that thread, through Redis, to a coordinator
    # watching worker B.
    from websockets.sync.client import connect

    worker_a, worker_b = workers
    team = TeamFactory()
    zone = ZoneFactory(geom=tile(0, 0))
    phone = Token.objects.create(user=user_with_role(Role.FIELD, team=team)).key
    desk = Token.objects.create(user=user_with_role(Role.COORDINATOR)).key
    shift = _post(worker_a, "/api/v1/shifts/", {"team": team.pk}, phone)
    lon, lat = to_wgs84().transform(ORIGIN_X + 500, ORIGIN_Y + 500)
    point = {
        "location": {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "coords": {"latitude": lat, "longitude": lon, "accuracy": 5.0, "speed": 1.0},
            "battery": {"level": 0.8},
        },
        "device_id": shift["tracker_token"],
    }
    url_b = worker_b.replace("http://", "ws://") + f"/ws/live/?token={desk}"

    with connect(url_b, origin=worker_b, open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
        stored = _post(worker_a, "/api/v1/track/", point, token=None)

        received = {}
        while len(received) < 2:  # in either order
            message = json.loads(ws.recv(timeout=TIMEOUT))
            if message["type"] in ("position", "coverage_changed"):
                received[message["type"]] = message
        position, changed = received["position"], received["coverage_changed"]

    assert stored["accepted"] == 1
    assert position["shift"] == shift["id"]
    assert position["lon"] == pytest.approx(lon, abs=1e-6)
    assert [z["zone"] for z in changed["zones"]] == [zone.pk]
    assert changed["zones"][0]["covered_m2"] > 30_000  # a lone fix covers a 100 m disc


def test_a_quiet_coordinator_socket_stays_open_longer_than_the_layers_blocking_read(workers):
    # The layer waits for messages with a blocking pop of 5 s; a client-side socket timeout
    # as short (redis-py 8's default) killed every websocket after 5 quiet seconds.
    from websockets.sync.client import connect

    worker = workers[0]
    desk = Token.objects.create(user=user_with_role(Role.COORDINATOR)).key
    url = worker.replace("http://", "ws://") + f"/ws/live/?token={desk}"
    with connect(url, origin=worker, open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
        with pytest.raises(TimeoutError):  # nothing to say, and still open
            ws.recv(timeout=QUIET_S)
        ws.ping().wait(TIMEOUT)
