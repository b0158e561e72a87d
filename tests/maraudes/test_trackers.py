"""maraudes.trackers: what Traccar Client and OsmAnd send, read into a token and fixes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from maraudes.trackers import (
    KNOT_MS,
    TrackerError,
    is_json,
    parse_query,
    parse_traccar_json,
)

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
TOKEN = "k3Jx0d9mQvZ-cW2sUe7yHn4T_bA1pLr8fGiO5tNwXsE"
T = NOW - timedelta(minutes=2)


def traccar_body(**coords) -> dict:
    """A Traccar Client 9.x body: the app's location template, with its extra fields."""
    return {
        "location": {
            "timestamp": T.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "coords": {
                "latitude": 48.853,
                "longitude": 2.3499,
                "accuracy": 8.5,
                "speed": 1.25,
                "heading": 84.5,
                "altitude": 35.2,
                **coords,
            },
            "is_moving": True,
            "odometer": 1520.4,
            "event": "motionchange",
            "battery": {"level": 0.62, "is_charging": False},
            "activity": {"type": "walking"},
            "extras": {},
            "_": f"&id={TOKEN}&lat=48.853&lon=2.3499&timestamp=2026-11-20T20:58:00.000Z&",
        },
        "device_id": TOKEN,
    }


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def legacy(**overrides) -> list[tuple[str, str]]:
    """The legacy Traccar Client's parameters, in its order (ProtocolFormatter)."""
    params = {
        "id": TOKEN,
        "timestamp": str(int(T.timestamp())),
        "lat": "48.853",
        "lon": "2.3499",
        "speed": "2.0",
        "bearing": "91.5",
        "altitude": "35.0",
        "accuracy": "0.0",
        "batt": "87.0",
        **overrides,
    }
    return [(k, v) for k, v in params.items() if v is not None]


# --- Traccar Client 9.x JSON ----------------------------------------------------------------


def test_it_reads_a_traccar_client_9_point_and_ignores_the_other_fields():
    points = parse_traccar_json(encode(traccar_body()), now=NOW)

    assert points.token == TOKEN
    assert points.source == "traccar"
    assert points.rejected == []
    (fix,) = points.fixes
    assert fix.t == T.replace(microsecond=0) + timedelta(microseconds=T.microsecond // 1000 * 1000)
    assert (fix.lon, fix.lat, fix.accuracy) == (2.3499, 48.853, 8.5)
    assert fix.speed == 1.25  # m/s, as sent
    assert fix.heading == 84.5


def test_minus_one_speed_and_heading_mean_unknown():
    points = parse_traccar_json(encode(traccar_body(speed=-1, heading=-1)), now=NOW)

    (fix,) = points.fixes
    assert fix.speed is None and fix.heading is None


def test_it_takes_a_batch_of_locations():
    body = traccar_body()
    first = body["location"]
    second = {**first, "timestamp": (T + timedelta(seconds=30)).isoformat()}
    body["location"] = [first, second]

    points = parse_traccar_json(encode(body), now=NOW)

    assert [f.index for f in points.fixes] == [0, 1]


@pytest.mark.parametrize(
    ("coords", "expected"),
    [
        ({"latitude": 2.3499, "longitude": 48.853}, "inversées"),
        ({"latitude": 43.29, "longitude": 5.37}, "hors du territoire"),
        ({"accuracy": None}, "coords.accuracy : champ obligatoire manquant"),
        ({"latitude": "48.853"}, "coords.latitude : un nombre est attendu"),
        ({"longitude": float("nan")}, "coords.longitude : valeur non finie"),
        ({"accuracy": float("inf")}, "coords.accuracy : valeur non finie"),
        ({"accuracy": -4}, "négatif"),
        ({"latitude": True}, "un nombre est attendu"),
    ],
)
def test_a_bad_traccar_point_is_refused_with_its_reason(coords, expected):
    body = traccar_body(**coords)
    if coords.get("accuracy", 0) is None:
        del body["location"]["coords"]["accuracy"]

    points = parse_traccar_json(encode(body), now=NOW)

    assert points.fixes == []
    (rejected,) = points.rejected
    assert expected in rejected.reason


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-20T21:30:00Z", "dans le futur"),
        ("2026-11-20T20:58:00", "n'a pas de fuseau"),
        ("hier soir", "n'est pas une date"),
        (1732135200, "une date ISO-8601 avec fuseau est attendue"),
    ],
)
def test_a_bad_traccar_time_is_named(timestamp, expected):
    body = traccar_body()
    body["location"]["timestamp"] = timestamp

    (rejected,) = parse_traccar_json(encode(body), now=NOW).rejected

    assert rejected.reason.startswith("location.timestamp : ")
    assert expected in rejected.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"location": {', "JSON invalide"),
        (b"[1, 2]", "objet JSON"),
        (b'{"location": {}}', "device_id : identifiant de l'appareil manquant"),
        (b'{"device_id": "  ", "location": {}}', "device_id"),
        (b'{"device_id": "x"}', "location : objet attendu"),
        (b'{"device_id": "x", "location": []}', "location : objet attendu"),
        (b"\xff\xfe{", "JSON invalide"),
    ],
)
def test_a_request_that_cannot_be_read_is_an_error_for_the_whole(raw, expected):
    with pytest.raises(TrackerError, match=expected):
        parse_traccar_json(raw, now=NOW)


def test_nan_written_by_a_lenient_encoder_is_refused_point_by_point():
    raw = encode(traccar_body()).replace(b'"latitude":48.853', b'"latitude":NaN')

    (rejected,) = parse_traccar_json(raw, now=NOW).rejected

    assert "coords.latitude : valeur non finie" in rejected.reason


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json; charset=utf-8", b"{}", True),
        ("application/json", b"", True),
        ("text/plain", b'  {"device_id": 1}', True),
        ("application/x-www-form-urlencoded", b"id=1&lat=2", False),
        (None, b"", False),
    ],
)
def test_it_recognises_json(content_type, body, expected):
    assert is_json(content_type, body) is expected


# --- Legacy Traccar Client and OsmAnd query parameters --------------------------------------


def test_it_reads_the_legacy_traccar_client_parameters():
    points = parse_query(legacy(), now=NOW)

    assert points.token == TOKEN
    assert points.source == "osmand"
    (fix,) = points.fixes
    assert fix.t == T.replace(microsecond=0)
    assert (fix.lon, fix.lat) == (2.3499, 48.853)
    assert fix.accuracy == 0.0  # the legacy Android client sends 0 for satellite fixes
    assert fix.speed == pytest.approx(2.0 * KNOT_MS)  # knots in, m/s stored
    assert fix.heading == 91.5


def test_it_reads_osmand_with_milliseconds_and_hdop():
    millis = str(int(T.timestamp() * 1000))
    params = [("id", TOKEN), ("lat", "48.853"), ("lon", "2.3499"), ("timestamp", millis)]
    params += [("hdop", "6.0"), ("altitude", "35.0"), ("speed", "1.0")]

    (fix,) = parse_query(params, now=NOW).fixes

    assert fix.t == T.replace(microsecond=T.microsecond // 1000 * 1000)
    assert fix.accuracy == 6.0


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-20T20:58:00Z",
        "2026-11-20T21:58:00+01:00",
        "2026-11-20T21:58:00 01:00",  # a "+" left unencoded in the URL became a space
        "1795208280",  # seconds
        "1795208280000",  # milliseconds
        "1795208280.0",
    ],
)
def test_it_reads_every_timestamp_form(timestamp):
    (fix,) = parse_query(legacy(timestamp=timestamp), now=NOW).fixes

    assert fix.t == datetime(2026, 11, 20, 20, 58, tzinfo=UTC)


def test_it_takes_deviceid_and_location_aliases():
    params = [("deviceid", TOKEN), ("timestamp", str(int(T.timestamp())))]
    params += [("location", "48.853,2.3499"), ("accuracy", "5"), ("heading", "10")]

    points = parse_query(params, now=NOW)

    (fix,) = points.fixes
    assert points.token == TOKEN
    assert (fix.lat, fix.lon, fix.heading) == (48.853, 2.3499, 10.0)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"lat": "2.3499", "lon": "48.853"}, "inversées"),
        ({"lat": "45.76", "lon": "4.83"}, "hors du territoire"),
        ({"accuracy": None}, "accuracy : champ obligatoire manquant"),
        ({"accuracy": ""}, "accuracy : champ obligatoire manquant"),
        ({"lat": "NaN"}, "lat : valeur non finie"),
        ({"lon": "inf"}, "lon : valeur non finie"),
        ({"lat": "quarante-huit"}, "n'est pas un nombre"),
        ({"lat": None}, "lat : champ obligatoire manquant"),
        ({"timestamp": None}, "timestamp : champ obligatoire manquant"),
        ({"timestamp": "2026-11-20 21:58:00"}, "pas de fuseau"),
        ({"timestamp": "1795300000"}, "dans le futur"),
        ({"timestamp": "99999999999999999999"}, "hors des dates possibles"),
        ({"valid": "false"}, "invalide"),
        ({"accuracy": "-1"}, "négatif"),
    ],
)
def test_a_bad_legacy_point_is_refused_with_its_reason(overrides, expected):
    points = parse_query(legacy(**overrides), now=NOW)

    assert points.fixes == []
    (rejected,) = points.rejected
    assert expected in rejected.reason


def test_a_missing_id_is_an_error_for_the_whole_request():
    with pytest.raises(TrackerError, match="id : identifiant de l'appareil manquant"):
        parse_query(legacy(id=None), now=NOW)


def test_an_absurdly_long_id_is_not_a_token():
    with pytest.raises(TrackerError, match="trop long"):
        parse_query(legacy(id="x" * 500), now=NOW)


def test_when_a_name_comes_twice_the_last_value_wins():
    params = [*legacy(), ("lat", "48.86")]

    (fix,) = parse_query(params, now=NOW).fixes

    assert fix.lat == 48.86
