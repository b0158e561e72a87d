"""api.trackers.TrackerFastPath: /api/v1/track/ answered ahead of Django's handler, the same
answers as the Django view (tests/api/test_trackers_api.py), everything else passed on."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.asgi import get_asgi_application
from django.test import Client
from django.utils import timezone

from api.trackers import MAX_TRACKER_BODY, TrackerFastPath
from maraudes.models import CoverageBacklog, Position
from maraudes.services import TRACKER_GRACE
from tests.api.test_trackers_api import NOTRE_DAME, legacy_query, traccar9_body
from tests.factories import ZoneFactory, tracked_shift
from zones.models import ZoneDayCoverage

# The answer is computed on a pooled thread with its own database connection: the test's
# rows must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def coverage_inline(settings):
    settings.TRACKER_COVERAGE = "inline"


@pytest.fixture
def token_and_shift():
    return tracked_shift()


@pytest.fixture
def fast_path():
    return TrackerFastPath(get_asgi_application())


def call(app, **request):
    """One request through the ASGI app: (status, headers, JSON or raw body)."""
    return asyncio.run(asgi_call(app, **request))


def call_together(app, requests: list[dict]) -> list[tuple]:
    """Requests that reach the ASGI app at the same time, as call() answers them."""

    async def together():
        return await asyncio.gather(*(asgi_call(app, **request) for request in requests))

    return asyncio.run(together())


async def asgi_call(app, *, method="POST", path="/api/v1/track/", query="", body=b"", headers=()):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    chunks = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(3600)  # pragma: no cover - never asked

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    raw = b"".join(m.get("body", b"") for m in sent[1:])
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    try:
        content = json.loads(raw)
    except ValueError:
        content = raw
    return start["status"], head, content


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]


def test_it_stores_a_traccar_point_and_coverage_follows(fast_path, token_and_shift):
    token, shift = token_and_shift
    square = Polygon.from_bbox((2.34, 48.848, 2.36, 48.858))  # around Notre-Dame
    square.srid = 4326
    square.transform(2154)
    zone = ZoneFactory(geom=MultiPolygon(square, srid=2154))
    body = traccar9_body(token)

    status, headers, content = call(fast_path, body=body, headers=json_headers(body))

    assert status == 200
    assert content == {"accepted": 1, "duplicates": 0}
    assert Position.objects.get(shift=shift).source == "traccar"
    assert ZoneDayCoverage.objects.filter(zone=zone).exists()  # inline here
    assert not CoverageBacklog.objects.exists()
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-language"] == "fr"


def test_a_point_sent_twice_is_stored_once(fast_path, token_and_shift):
    token, shift = token_and_shift
    body = traccar9_body(token, seconds_ago=45)

    first = call(fast_path, body=body, headers=json_headers(body))
    again = call(fast_path, body=body, headers=json_headers(body))

    assert (first[0], first[2]) == (200, {"accepted": 1, "duplicates": 0})
    assert (again[0], again[2]) == (200, {"accepted": 0, "duplicates": 1})
    assert Position.objects.filter(shift=shift).count() == 1


def test_legacy_and_osmand_requests_are_stored(fast_path, token_and_shift):
    token, shift = token_and_shift
    form = [(b"content-type", b"application/x-www-form-urlencoded")]

    in_url = call(fast_path, query=legacy_query(token, seconds_ago=60), headers=form)
    osmand = call(
        fast_path, method="GET", query=legacy_query(token, seconds_ago=50, accuracy=None, hdop="6")
    )
    in_body = call(fast_path, body=legacy_query(token, seconds_ago=40).encode(), headers=form)

    assert [in_url[0], osmand[0], in_body[0]] == [200, 200, 200]
    assert Position.objects.filter(shift=shift).count() == 3
    assert Position.objects.filter(shift=shift, accuracy=6.0).exists()


def test_the_answer_is_a_json_request_to_the_same_path_without_the_slash(
    fast_path, token_and_shift
):
    token, shift = token_and_shift

    status, _headers, _content = call(
        fast_path, path="/api/v1/track", method="GET", query=legacy_query(token)
    )

    assert status == 200
    assert Position.objects.filter(shift=shift).count() == 1


def the_same_through_django(*, method="POST", query="", body=b"", content_type=None, **extra):
    client = Client(enforce_csrf_checks=True)
    path = f"/api/v1/track/?{query}" if query else "/api/v1/track/"
    response = client.generic(
        method, path, body, content_type=content_type or "application/octet-stream", **extra
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "case",
    ["unknown token", "bad point", "bad legacy point", "malformed json", "no id", "ended shift"],
)
def test_it_answers_what_the_django_view_answers(fast_path, token_and_shift, case):
    token, shift = token_and_shift
    if case == "ended shift":
        shift.ended_at = timezone.now() - TRACKER_GRACE - timedelta(minutes=1)
        shift.save(update_fields=["ended_at"])
    body, query, content_type = {
        "unknown token": (traccar9_body("pas-le-bon-jeton"), "", "application/json"),
        "bad point": (traccar9_body(token, lat=NOTRE_DAME[0], lon=NOTRE_DAME[1]), "", None),
        "bad legacy point": (b"", legacy_query(token, lat="NaN"), None),
        "malformed json": (b'{"location": {"timestamp": ', "", "application/json"),
        "no id": (b"", legacy_query(None), None),
        "ended shift": (traccar9_body(token, seconds_ago=4000), "", "application/json"),
    }[case]
    headers = [(b"content-type", content_type.encode())] if content_type else []

    fast = call(fast_path, query=query, body=body, headers=headers)
    django = the_same_through_django(query=query, body=body, content_type=content_type)

    assert (fast[0], fast[2]) == django
    assert fast[0] in (400, 404, 410)
    assert not Position.objects.exists()


def test_the_language_follows_accept_language_as_in_django(fast_path, token_and_shift):
    body = traccar9_body("pas-le-bon-jeton")
    english = [(b"accept-language", b"en-GB,en;q=0.9,fr;q=0.5"), *json_headers(body)]

    status, headers, content = call(fast_path, body=body, headers=english)
    django = the_same_through_django(
        body=body, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9"
    )

    assert status == 404 and headers["content-language"] == "en"
    assert (status, content) == django
    assert content["detail"] != call(fast_path, body=body, headers=json_headers(body))[2]["detail"]


def test_a_body_over_the_limit_is_a_413(fast_path, token_and_shift):
    token, _shift = token_and_shift
    body = traccar9_body(token) + b" " * MAX_TRACKER_BODY

    announced = call(fast_path, body=body, headers=json_headers(body))
    unannounced = call(fast_path, body=body, headers=[(b"content-type", b"application/json")])

    assert announced[0] == unannounced[0] == 413
    assert "octets au plus" in announced[2]["detail"]
    assert not Position.objects.exists()


def json_request(body: bytes, *, language: bytes | None = None) -> dict:
    headers = json_headers(body)
    if language:
        headers.append((b"accept-language", language))
    return {"body": body, "headers": headers}


def test_requests_that_arrive_together_are_answered_together_each_its_own_answer(
    fast_path, monkeypatch
):
    import api.trackers

    rounds = []
    answers_of = api.trackers.tracker_answers

    def counted(requests):
        rounds.append(len(requests))
        return answers_of(requests)

    monkeypatch.setattr(api.trackers, "tracker_answers", counted)
    token, shift = tracked_shift()
    other_token, other_shift = tracked_shift()
    ended_token, ended = tracked_shift()
    ended.ended_at = timezone.now() - TRACKER_GRACE - timedelta(minutes=1)
    ended.save(update_fields=["ended_at"])
    point = traccar9_body(token, seconds_ago=30)
    requests = [
        json_request(point),
        json_request(point),  # the same point again, in the same round
        json_request(traccar9_body(token, seconds_ago=20)),
        json_request(traccar9_body(other_token, seconds_ago=30)),
        json_request(traccar9_body("pas-le-bon-jeton"), language=b"en"),
        json_request(traccar9_body("pas-le-bon-jeton")),
        json_request(traccar9_body(ended_token, seconds_ago=4000)),
        json_request(traccar9_body(token, lat=NOTRE_DAME[0], lon=NOTRE_DAME[1])),
        json_request(b'{"location": '),
        {"method": "GET", "query": legacy_query(other_token, seconds_ago=10)},
    ]

    answers = call_together(fast_path, requests)

    assert [(status, content.get("accepted")) for status, _h, content in answers] == [
        (200, 1),
        (200, 0),
        (200, 1),
        (200, 1),
        (404, None),
        (404, None),
        (410, None),
        (400, 0),
        (400, None),
        (200, 1),
    ]
    assert answers[1][2] == {"accepted": 0, "duplicates": 1}
    assert answers[4][1]["content-language"] == "en" and answers[5][1]["content-language"] == "fr"
    assert answers[4][2]["detail"] != answers[5][2]["detail"]
    assert [r["index"] for r in answers[7][2]["rejected"]] == [0]  # swapped coordinates
    assert Position.objects.filter(shift=shift).count() == 2
    assert Position.objects.filter(shift=other_shift).count() == 2
    assert not Position.objects.filter(shift=ended).exists()
    assert sorted(rounds) == [1, 9]  # one round per language, not one per request


def test_a_request_that_fails_a_round_fails_alone(fast_path, monkeypatch, caplog):
    import api.trackers

    good_token, good = tracked_shift()
    bad_token, bad = tracked_shift()
    store = api.trackers.track_store_many

    def failing_for_bad(batches):
        if any(shift.pk == bad.pk for shift, _fixes, _source in batches):
            raise RuntimeError("boom")
        return store(batches)

    monkeypatch.setattr(api.trackers, "track_store_many", failing_for_bad)
    requests = [
        json_request(traccar9_body(good_token, seconds_ago=30)),
        json_request(traccar9_body(bad_token, seconds_ago=30)),
        json_request(traccar9_body(good_token, seconds_ago=20)),
    ]

    with caplog.at_level(logging.ERROR, logger="api.trackers"):
        answers = call_together(fast_path, requests)

    assert [status for status, _h, _c in answers] == [200, 500, 200]
    assert Position.objects.filter(shift=good).count() == 2
    assert not Position.objects.filter(shift=bad).exists()
    assert sum("boom" in (r.exc_text or str(r.exc_info)) for r in caplog.records) == 1


def test_an_unexpected_error_is_a_logged_json_500(fast_path, token_and_shift, monkeypatch, caplog):
    import maraudes.services

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(maraudes.services, "shifts_for_tracker_tokens", broken)
    body = traccar9_body(token_and_shift[0])

    with caplog.at_level(logging.ERROR, logger="api.trackers"):
        status, _headers, content = call(fast_path, body=body, headers=json_headers(body))

    assert status == 500 and content["detail"]
    assert any("boom" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/v1/track/"), ("POST", "/api/v1/track/setup/"), ("GET", "/api/v1/zones/")],
)
def test_everything_else_goes_on_to_the_app(method, path):
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    status, _headers, _content = call(TrackerFastPath(app), method=method, path=path)

    assert status == 204
    assert seen == [(method, path)]


def test_websockets_go_on_to_the_app():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(TrackerFastPath(app)({"type": "websocket", "path": "/api/v1/track/"}, None, None))

    assert seen == ["websocket"]


def test_the_point_is_placed_where_it_was(fast_path, token_and_shift):
    token, shift = token_and_shift
    body = traccar9_body(token)

    call(fast_path, body=body, headers=json_headers(body))

    stored = Position.objects.get(shift=shift).point.transform(4326, clone=True)
    assert (round(stored.x, 6), round(stored.y, 6)) == NOTRE_DAME


def test_a_tracker_that_leaves_mid_body_gets_nothing_and_stores_nothing(fast_path, token_and_shift):
    body = traccar9_body(token_and_shift[0])
    messages = [
        {"type": "http.request", "body": body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/track/", "headers": []}
    asyncio.run(fast_path(scope, receive, send))

    assert sent == []
    assert not Position.objects.exists()
