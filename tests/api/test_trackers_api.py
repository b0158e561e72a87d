"""/api/v1/track/: Traccar Client and OsmAnd requests, byte for byte as those apps send them."""

from __future__ import annotations

import json
import logging
import socket
from datetime import timedelta
from urllib.parse import urlencode, urlparse

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maraudes.fixes import Fix
from maraudes.models import CoverageBacklog, Event, Position, Role
from maraudes.services import TRACKER_GRACE
from maraudes.trackers import KNOT_MS
from tests.factories import TeamFactory, ZoneFactory, tracked_shift, user_with_role
from zones.models import CoveragePiece, ZoneDayCoverage

pytestmark = pytest.mark.django_db

NOTRE_DAME = (2.3499, 48.853)


@pytest.fixture(autouse=True)
def coverage_inline(settings):
    """Coverage follows in the request (TRACKER_COVERAGE=inline): these tests run inside a
    transaction that a background drainer's own connection could not see.
    tests/zones/test_catchup.py covers the background drainer."""
    settings.TRACKER_COVERAGE = "inline"


@pytest.fixture
def token_and_shift(db):
    return tracked_shift()


@pytest.fixture
def token(token_and_shift):
    return token_and_shift[0]


@pytest.fixture
def shift(token_and_shift):
    return token_and_shift[1]


@pytest.fixture
def notre_dame_zone(db):
    square = Polygon.from_bbox((2.34, 48.848, 2.36, 48.858))
    square.srid = 4326
    square.transform(2154)
    return ZoneFactory(code="ND", name="Notre-Dame", geom=MultiPolygon(square, srid=2154))


@pytest.fixture
def client() -> Client:
    # No session, no CSRF token: like the apps. Checks enforced, as in production.
    return Client(enforce_csrf_checks=True)


def iso_z(seconds_ago: float) -> str:
    t = timezone.now() - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def unix(seconds_ago: float) -> int:
    return int((timezone.now() - timedelta(seconds=seconds_ago)).timestamp())


def traccar9_body(
    token: str, *, seconds_ago: float = 60, lon=NOTRE_DAME[0], lat=NOTRE_DAME[1], **coords
) -> bytes:
    """What Traccar Client 9 posts: its location template rendered by the background
    geolocation plugin, the `device_id` param at the root, compact JSON."""
    stamp = iso_z(seconds_ago)
    values = {
        "latitude": lat,
        "longitude": lon,
        "accuracy": 8.5,
        "speed": 1.25,
        "heading": 84.5,
        "altitude": 35.2,
        **coords,
    }
    coords_json = ",".join(f'"{k}":{json.dumps(v)}' for k, v in values.items() if v is not ...)
    return (
        f'{{"location":{{"timestamp":"{stamp}","coords":{{{coords_json}}},'
        '"is_moving":true,"odometer":1520.4,"event":"motionchange",'
        '"battery":{"level":0.62,"is_charging":false},"activity":{"type":"walking"},'
        f'"extras":{{}},"_":"&id={token}&lat={lat}&lon={lon}&timestamp={stamp}&"}},'
        f'"device_id":"{token}"}}'
    ).encode()


def legacy_query(token: str, *, seconds_ago: float = 60, **overrides) -> str:
    """The legacy Traccar Client's URL (ProtocolFormatter: Java's Double.toString values)."""
    params = {
        "id": token,
        "timestamp": str(unix(seconds_ago)),
        "lat": "48.853",
        "lon": "2.3499",
        "speed": "2.0",
        "bearing": "91.5",
        "altitude": "35.0",
        "accuracy": "0.0",
        "batt": "87.0",
        **overrides,
    }
    return urlencode({k: v for k, v in params.items() if v is not None})


def post_traccar9(client, body: bytes):
    return client.generic(
        "POST", "/api/v1/track/", body, content_type="application/json; charset=utf-8"
    )


def post_legacy(client, query: str):
    # HttpURLConnection's POST without a body: a form content type and no content.
    return client.generic(
        "POST", f"/api/v1/track/?{query}", b"", content_type="application/x-www-form-urlencoded"
    )


# --- The three wire formats -----------------------------------------------------------------


def test_it_stores_a_traccar_client_9_point(client, token, shift, notre_dame_zone):
    response = post_traccar9(client, traccar9_body(token))

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0}
    position = Position.objects.get(shift=shift)
    assert position.source == "traccar"
    assert (position.accuracy, position.speed, position.heading) == (8.5, 1.25, 84.5)
    assert ZoneDayCoverage.objects.filter(zone=notre_dame_zone).exists()


def test_it_stores_a_legacy_traccar_client_point(client, token, shift):
    response = post_legacy(client, legacy_query(token))

    assert response.status_code == 200, response.content
    position = Position.objects.get(shift=shift)
    assert position.source == "osmand"
    assert position.speed == pytest.approx(2.0 * KNOT_MS)
    assert position.accuracy == 0.0


def test_it_stores_an_osmand_get(client, token, shift):
    millis = int((timezone.now() - timedelta(seconds=30)).timestamp() * 1000)
    query = f"id={token}&lat=48.853&lon=2.3499&timestamp={millis}&hdop=6.0&altitude=35.0&speed=1.2"

    response = client.get(f"/api/v1/track/?{query}")

    assert response.status_code == 200, response.content
    assert Position.objects.get(shift=shift).accuracy == 6.0


def test_it_answers_without_the_final_slash_too(client, token, shift):
    millis = int((timezone.now() - timedelta(seconds=30)).timestamp() * 1000)
    query = f"id={token}&lat=48.853&lon=2.3499&timestamp={millis}&hdop=6.0"

    response = client.post(f"/api/v1/track?{query}")

    assert response.status_code == 200, response.content
    assert Position.objects.filter(shift=shift).count() == 1


def test_it_reads_a_form_body(client, token, shift):
    response = client.post(
        "/api/v1/track/",
        legacy_query(token),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200, response.content
    assert Position.objects.filter(shift=shift).count() == 1


def test_a_point_sent_twice_is_stored_once(client, token, shift):
    body = traccar9_body(token, seconds_ago=45)

    first = post_traccar9(client, body)
    again = post_traccar9(client, body)

    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert again.status_code == 200  # a resend after a lost answer is a success
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert Position.objects.filter(shift=shift).count() == 1


def test_late_points_are_placed_in_time_order(client, token, shift, notre_dame_zone):
    # A dead zone: the tracker sends 60 s and 20 s ago, then its queue of 50, 40, 30 s ago.
    for seconds_ago, lon in [(60, 2.3490), (20, 2.3530), (50, 2.3498), (40, 2.3506), (30, 2.3518)]:
        response = post_legacy(client, legacy_query(token, seconds_ago=seconds_ago, lon=str(lon)))
        assert response.status_code == 200

    lons = [round(p.point.transform(4326, clone=True).x, 4) for p in
            Position.objects.filter(shift=shift).order_by("recorded_at")]  # fmt: skip
    assert lons == [2.349, 2.3498, 2.3506, 2.3518, 2.353]
    # The out-of-order arrivals rebuilt the shift-day from its raw fixes: one piece.
    assert CoveragePiece.objects.filter(shift=shift).count() == 1


# --- Tokens ---------------------------------------------------------------------------------


def test_an_unknown_token_is_a_404_that_says_what_to_check(client, shift):
    response = post_traccar9(client, traccar9_body("pas-le-bon-jeton"))

    assert response.status_code == 404
    assert "Identifiant de suivi inconnu" in response.json()["detail"]
    assert not Position.objects.exists()


def test_an_unknown_token_in_the_query_is_a_404_too(client, shift):
    assert post_legacy(client, legacy_query("inconnu")).status_code == 404


def test_a_missing_id_is_a_400(client, shift):
    response = post_legacy(client, legacy_query(None))

    assert response.status_code == 400
    assert "id : identifiant de l'appareil manquant" in response.json()["detail"]


def test_late_points_of_an_ended_shift_are_taken_within_the_grace(client, token, shift):
    shift.ended_at = timezone.now() - timedelta(minutes=5)
    shift.save(update_fields=["ended_at"])

    before_end = post_legacy(client, legacy_query(token, seconds_ago=600))
    after_end = post_legacy(client, legacy_query(token, seconds_ago=60))

    assert before_end.status_code == 200
    assert after_end.status_code == 400
    assert "après la fin de la maraude" in after_end.json()["detail"]
    assert Position.objects.filter(shift=shift).count() == 1


def test_the_token_of_a_shift_ended_past_the_grace_is_refused(client, token, shift):
    shift.ended_at = timezone.now() - TRACKER_GRACE - timedelta(minutes=1)
    shift.save(update_fields=["ended_at"])

    response = post_traccar9(client, traccar9_body(token, seconds_ago=3000))

    assert response.status_code == 410
    assert "arrêtez le suivi" in response.json()["detail"]
    assert not Position.objects.exists()


# --- Bad points -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coords", "expected"),
    [
        ({"latitude": 2.3499, "longitude": 48.853}, "inversées"),
        ({"latitude": 43.2965, "longitude": 5.3698}, "hors du territoire"),
        ({"accuracy": ...}, "coords.accuracy : champ obligatoire manquant"),
        ({"latitude": float("nan")}, "valeur non finie"),
    ],
)
def test_a_bad_traccar_point_is_a_400_with_its_reason(client, token, shift, coords, expected):
    coords = dict(coords)
    lat = coords.pop("latitude", NOTRE_DAME[1])
    lon = coords.pop("longitude", NOTRE_DAME[0])
    body = traccar9_body(token, lon=lon, lat=lat, **coords)

    response = post_traccar9(client, body)

    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert response.json()["rejected"][0]["reason"] == response.json()["detail"]
    assert not Position.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"lat": "2.3499", "lon": "48.853"}, "inversées"),
        ({"lat": "45.764", "lon": "4.8357"}, "hors du territoire"),
        ({"accuracy": None}, "accuracy : champ obligatoire manquant"),
        ({"timestamp": str(unix(-3600))}, "dans le futur"),
        ({"timestamp": "2026-11-20 21:00:00"}, "pas de fuseau"),
        ({"lat": "NaN"}, "valeur non finie"),
        ({"timestamp": str(unix(3 * 3600))}, "avant le début de la maraude"),
    ],
)
def test_a_bad_legacy_point_is_a_400_with_its_reason(client, token, shift, overrides, expected):
    response = post_legacy(client, legacy_query(token, **overrides))

    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert not Position.objects.exists()


def test_a_future_traccar_point_is_refused(client, token, shift):
    response = post_traccar9(client, traccar9_body(token, seconds_ago=-3600))

    assert response.status_code == 400
    assert "location.timestamp" in response.json()["detail"]


def test_in_a_batch_the_good_points_are_kept_and_the_bad_named(client, token, shift):
    body = json.loads(traccar9_body(token, seconds_ago=50))
    good = body["location"]
    bad = json.loads(json.dumps(good))
    bad["coords"]["latitude"], bad["coords"]["longitude"] = 2.3499, 48.853
    late = {**good, "timestamp": iso_z(40)}
    body["location"] = [good, bad, late]

    response = post_traccar9(client, json.dumps(body).encode())

    assert response.status_code == 400
    assert response.json()["accepted"] == 2
    assert [r["index"] for r in response.json()["rejected"]] == [1]
    assert Position.objects.filter(shift=shift).count() == 2


@pytest.mark.parametrize(
    "raw",
    [b'{"location": {"timestamp": ', b"[]", b'{"device_id": 42, "location": {}}'],
)
def test_malformed_json_is_a_400(client, shift, raw):
    response = post_traccar9(client, raw)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_20_mb_body_is_a_413(client, token, shift):
    body = traccar9_body(token) + b" " * (20 * 1024 * 1024)

    response = post_traccar9(client, body)

    assert response.status_code == 413
    assert not Position.objects.exists()


def test_other_methods_are_refused(client, token):
    assert client.put(f"/api/v1/track/?{legacy_query(token)}").status_code == 405


# --- Byte for byte, over a socket, against the real ASGI server -----------------------------


def raw_http(base_url: str, request: bytes) -> tuple[int, bytes]:
    url = urlparse(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.fixture
def live_token_and_shift(transactional_db):
    return tracked_shift()


def test_traccar_client_9_bytes_on_the_wire(live_app, live_token_and_shift):
    token, shift = live_token_and_shift
    host = urlparse(live_app).netloc
    body = traccar9_body(token)
    request = (
        b"POST /api/v1/track/ HTTP/1.1\r\n"
        b"Content-Type: application/json; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\nHost: {host}\r\n".encode()
        + b"Connection: close\r\nAccept-Encoding: gzip\r\nUser-Agent: okhttp/4.12.0\r\n\r\n"
        + body
    )

    status, answer = raw_http(live_app, request)

    assert status == 200, answer
    assert json.loads(answer) == {"accepted": 1, "duplicates": 0}
    assert Position.objects.filter(shift=shift, source="traccar").count() == 1


def test_legacy_traccar_client_bytes_on_the_wire(live_app, live_token_and_shift):
    token, shift = live_token_and_shift
    host = urlparse(live_app).netloc
    request = (
        f"POST /api/v1/track/?{legacy_query(token)} HTTP/1.1\r\n"
        "User-Agent: Dalvik/2.1.0 (Linux; U; Android 8.1.0; SM-J530F Build/M1AJQ)\r\n"
        f"Host: {host}\r\nConnection: close\r\nAccept-Encoding: gzip\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"
    ).encode()

    status, answer = raw_http(live_app, request)

    assert status == 200, answer
    assert Position.objects.filter(shift=shift, source="osmand").count() == 1


def test_osmand_bytes_on_the_wire(live_app, live_token_and_shift):
    token, shift = live_token_and_shift
    host = urlparse(live_app).netloc
    query = legacy_query(token, timestamp=str(unix(30) * 1000), accuracy=None, hdop="5.0")
    request = (
        f"GET /api/v1/track/?{query} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: OsmAnd~ 4.8.6\r\nConnection: close\r\n\r\n"
    ).encode()

    status, answer = raw_http(live_app, request)

    assert status == 200, answer
    assert Position.objects.get(shift=shift).accuracy == 5.0


# --- Logs -----------------------------------------------------------------------------------


def test_access_logs_do_not_keep_the_token():
    import api.trackers  # noqa: F401 - installs the filter

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/api/v1/track/?id=SECRET-TOKEN&lat=48.8&deviceid=X2", "1.1", 200),
        None,
    )  # fmt: skip

    logging.getLogger("uvicorn.access").filter(record)

    assert "SECRET-TOKEN" not in record.getMessage()
    assert "X2" not in record.getMessage()
    assert "lat=48.8" in record.getMessage()


# --- The setup card -------------------------------------------------------------------------


@pytest.fixture
def member(shift):
    return user_with_role(Role.FIELD, team=shift.team)


def test_the_setup_card_gives_the_server_url_the_device_id_and_a_qr_code(
    api_as, member, token, shift
):
    response = api_as(member).post(
        "/api/v1/track/setup/", {"shift": shift.pk, "tracker_token": token}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["server_url"] == "http://testserver/api/v1/track/"
    assert body["device_id"] == token
    assert body["config_url"].startswith(f"http://testserver/api/v1/track/?id={token}&")
    assert "interval=30" in body["config_url"] and "accuracy=highest" in body["config_url"]
    assert body["qr_svg"].startswith("<svg") and "path" in body["qr_svg"]


def test_the_qr_code_decodes_to_the_config_url(api_as, member, token, shift):
    import segno

    body = (
        api_as(member)
        .post("/api/v1/track/setup/", {"shift": shift.pk, "tracker_token": token}, format="json")
        .json()
    )

    # segno renders what it is given: the same content makes the same picture.
    again = segno.make(body["config_url"], error="m").svg_inline(
        scale=4, border=2, dark="#000", light="#fff", omitsize=True
    )
    assert body["qr_svg"] == again


def test_the_setup_card_needs_the_shifts_own_token(api_as, member, shift):
    response = api_as(member).post(
        "/api/v1/track/setup/", {"shift": shift.pk, "tracker_token": "autre"}, format="json"
    )

    assert response.status_code == 400
    assert "tracker_token" in response.json()


@pytest.mark.parametrize("role", [Role.FIELD, Role.PLANNER])
def test_the_setup_card_is_for_the_team_only(api_as, token, shift, role):
    stranger = user_with_role(role, team=TeamFactory() if role == Role.FIELD else None)

    response = api_as(stranger).post(
        "/api/v1/track/setup/", {"shift": shift.pk, "tracker_token": token}, format="json"
    )

    assert response.status_code == 403


def test_the_setup_card_needs_a_login(api, token, shift):
    response = api.post(
        "/api/v1/track/setup/", {"shift": shift.pk, "tracker_token": token}, format="json"
    )

    assert response.status_code in (401, 403)


# --- Coverage follows the stored point (zones.catchup) --------------------------------------


def test_the_request_stores_queues_and_coverage_follows(client, token, shift, notre_dame_zone):
    response = post_traccar9(client, traccar9_body(token))

    assert response.status_code == 200
    assert ZoneDayCoverage.objects.filter(zone=notre_dame_zone).exists()
    assert not CoverageBacklog.objects.exists()  # drained (inline here)


def test_a_live_position_follows_the_point(
    client, token, shift, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        post_traccar9(client, traccar9_body(token, seconds_ago=30))

    event = Event.objects.get(type="position")
    assert (event.data["shift"], event.data["lon"], event.data["lat"]) == (shift.pk, *NOTRE_DAME)
    assert event.data["accuracy"] == 8.5


def test_a_failed_coverage_update_keeps_the_point_queued_and_still_answers_200(
    client, token, shift, monkeypatch
):
    import zones.catchup

    def deadlocked(batches):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr(zones.catchup, "coverage_update_many", deadlocked)

    response = post_traccar9(client, traccar9_body(token))

    assert response.status_code == 200  # the point is stored: the tracker must not resend
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert Position.objects.filter(shift=shift).count() == 1
    assert CoverageBacklog.objects.filter(shift=shift).count() == 1


def test_in_background_mode_the_request_wakes_the_drainer_after_commit(
    client, token, shift, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import zones.catchup

    settings.TRACKER_COVERAGE = "background"
    nudges = []
    monkeypatch.setattr(zones.catchup._runner, "nudge", lambda: nudges.append(1))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_traccar9(client, traccar9_body(token))

    assert response.status_code == 200
    assert CoverageBacklog.objects.filter(shift=shift).count() == 1
    assert not nudges  # not before the commit
    for callback in callbacks:
        callback()
    assert nudges == [1]


def test_a_duplicate_is_not_queued_again(client, token, shift):
    body = traccar9_body(token, seconds_ago=45)
    post_traccar9(client, body)

    with CaptureQueriesContext(connection) as queries:
        again = post_traccar9(client, body)

    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert not any("coveragebacklog" in q["sql"] for q in queries.captured_queries)


def test_a_tracker_request_costs_a_handful_of_queries(client, token, shift):
    post_traccar9(client, traccar9_body(token, seconds_ago=50))

    with (
        CaptureQueriesContext(connection) as queries,
        override_settings(TRACKER_COVERAGE="background"),
    ):
        response = post_traccar9(client, traccar9_body(token, seconds_ago=40))

    assert response.status_code == 200
    # The token's shift, the fix, its place in the queue: no coverage, no event.
    sql = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SAVEPOINT")]
    sql = [q for q in sql if not q.startswith("RELEASE SAVEPOINT")]
    assert len(sql) == 3, sql


def notre_dame_fix() -> Fix:
    t = timezone.now() - timedelta(seconds=30)
    return Fix(t=t, lon=NOTRE_DAME[0], lat=NOTRE_DAME[1], accuracy=8, speed=None, heading=None)
