"""Reading what background trackers send: Traccar Client 9.x JSON, and the legacy Traccar
Client / OsmAnd query format. Pure: bytes and query parameters in, the tracker token and
validated fixes out; no database, no HTTP objects.

Two wire formats reach `/api/v1/track/` (DESIGN.md, "Phones"):

- Traccar Client 9.x posts JSON (`Content-Type: application/json`)::

      {"location": {"timestamp": "2026-11-20T20:31:05.123Z",
                    "coords": {"latitude", "longitude", "accuracy", "speed", "heading",
                               "altitude"},
                    "is_moving", "odometer", "event", "battery": {"level", "is_charging"},
                    "activity": {"type"}, "extras": {}, "_": "&id=…&lat=…"},
       "device_id": "<token>"}

  `speed` is in m/s; -1 means unknown (as does a negative heading). Everything but the
  position, time, accuracy, speed and heading is ignored.
- Legacy Traccar Client (Android 8 and before, iOS) and OsmAnd send query parameters, in the
  URL (any method) or a form body: `id` (or `deviceid`), `timestamp` (unix seconds, unix
  milliseconds, or ISO-8601 with an offset), `lat`, `lon` (or `location=lat,lon`), `speed`
  in **knots**, `bearing` (or `heading`), `altitude`, `accuracy` (OsmAnd names it `hdop`: it
  is the same Android accuracy in metres), `batt`, `charge`, `mock`, `alarm`…

Seconds or milliseconds: like Traccar's server, a number below 2**31 is seconds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maraudes.fixes import Fix, FixError, Rejected, check_position, check_time

KNOT_MS = 1852 / 3600  # one knot in m/s
SOURCE_JSON = "traccar"  # PositionSource.TRACCAR
SOURCE_QUERY = "osmand"  # PositionSource.OSMAND: Traccar calls this format "osmand" too
# A token is 43 URL-safe characters; anything much longer is not one (and is not looked up).
MAX_TOKEN_LENGTH = 200
# Points per Traccar JSON request: the app sends one; a batch (`location` as a list) is
# accepted, within reason.
MAX_LOCATIONS = 500
_INT32_MAX = 2**31 - 1


class TrackerError(ValueError):
    """The request as a whole cannot be read (no token, not JSON…): nothing can be stored."""


@dataclass
class TrackerPoints:
    """What a tracker request carried: its token, the fixes that passed validation and, for
    each bad point, its index and the reason."""

    token: str
    source: str
    fixes: list[Fix] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# --- Traccar Client 9.x JSON ----------------------------------------------------------------


def is_json(content_type: str | None, body: bytes) -> bool:
    """Traccar's server picks the JSON decoder on the content type; a JSON body sent with
    another type (some HTTP tools do) is recognised by its first character."""
    if content_type and content_type.split(";")[0].strip().lower() == "application/json":
        return True
    return body.lstrip()[:1] == b"{"


def parse_traccar_json(body: bytes, *, now: datetime | None = None) -> TrackerPoints:
    try:
        # Lenient like api.parsers: a NaN is refused point by point, with its field named.
        root = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrackerError(f"JSON invalide : {exc}") from None
    if not isinstance(root, dict):
        raise TrackerError('Attendu : un objet JSON {"location": {…}, "device_id": "…"}.')
    token = _token(root.get("device_id"), "device_id")
    locations = root.get("location")
    if isinstance(locations, dict):
        locations = [locations]
    if not isinstance(locations, list) or not locations:
        raise TrackerError(
            'location : objet attendu, {"timestamp", "coords": {"latitude", "longitude", '
            '"accuracy"}}.'
        )
    if len(locations) > MAX_LOCATIONS:
        raise TrackerError(f"location : {len(locations)} points, {MAX_LOCATIONS} au plus.")
    points = TrackerPoints(token=token, source=SOURCE_JSON)
    for index, location in enumerate(locations):
        try:
            points.fixes.append(_json_fix(location, index=index, now=now))
        except FixError as exc:
            points.rejected.append(Rejected(index=index, reason=str(exc)))
    return points


def _json_fix(location: Any, *, index: int, now: datetime | None) -> Fix:
    if not isinstance(location, dict):
        raise FixError("location : un objet est attendu.")
    t = _time_iso(location.get("timestamp"), "location.timestamp", now=now)
    coords = location.get("coords")
    if not isinstance(coords, dict):
        raise FixError("location.coords : objet manquant (latitude, longitude, accuracy).")
    lat = _json_number(coords, "latitude", required=True)
    lon = _json_number(coords, "longitude", required=True)
    accuracy = _json_number(coords, "accuracy", required=True)
    assert lat is not None and lon is not None and accuracy is not None
    speed = _json_number(coords, "speed", required=False)
    heading = _json_number(coords, "heading", required=False)
    return _fix(t, lon=lon, lat=lat, accuracy=accuracy, speed=speed, heading=heading, index=index)


def _json_number(coords: dict, name: str, *, required: bool) -> float | None:
    value = coords.get(name)
    label = f"coords.{name}"
    if value is None:
        if required:
            raise FixError(f"{label} : champ obligatoire manquant.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FixError(f"{label} : un nombre est attendu, reçu {json.dumps(value)[:40]}.")
    return _finite(float(value), label)


# --- Legacy Traccar Client and OsmAnd query parameters --------------------------------------


def parse_query(
    params: Mapping[str, str] | Iterable[tuple[str, str]], *, now: datetime | None = None
) -> TrackerPoints:
    """One point from query parameters (URL or form body). When a name comes twice, the last
    value wins."""
    values = dict(params.items() if isinstance(params, Mapping) else params)
    token = _token(values.get("id") or values.get("deviceid"), "id")
    points = TrackerPoints(token=token, source=SOURCE_QUERY)
    try:
        points.fixes.append(_query_fix(values, now=now))
    except FixError as exc:
        points.rejected.append(Rejected(index=0, reason=str(exc)))
    return points


def _query_fix(values: dict[str, str], *, now: datetime | None) -> Fix:
    if values.get("valid", "").strip().lower() in {"false", "0"}:
        raise FixError("valid : le traceur signale ce point comme invalide.")
    t = _query_time(values.get("timestamp"), now=now)
    location = values.get("location")
    if location and not (values.get("lat") or values.get("lon")):
        parts = location.split(",")
        if len(parts) != 2:
            raise FixError(f"location : « {location[:40]} », attendu « lat,lon ».")
        lat = _query_number("location (lat)", parts[0], required=True)
        lon = _query_number("location (lon)", parts[1], required=True)
    else:
        lat = _query_number("lat", values.get("lat"), required=True)
        lon = _query_number("lon", values.get("lon"), required=True)
    if values.get("accuracy") not in (None, ""):
        accuracy = _query_number("accuracy", values.get("accuracy"), required=True)
    else:
        # OsmAnd's {3} placeholder, documented by Traccar as `hdop`, is Android's accuracy.
        accuracy = _query_number("accuracy", values.get("hdop"), required=True)
    knots = _query_number("speed", values.get("speed"), required=False)
    speed = knots * KNOT_MS if knots is not None else None
    heading = _query_number(
        "bearing", values.get("bearing") or values.get("heading"), required=False
    )
    assert lat is not None and lon is not None and accuracy is not None
    return _fix(t, lon=lon, lat=lat, accuracy=accuracy, speed=speed, heading=heading, index=0)


def _query_number(label: str, raw: str | None, *, required: bool) -> float | None:
    if raw is None or raw.strip() == "":
        if required:
            raise FixError(f"{label} : champ obligatoire manquant.")
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise FixError(f"{label} : « {raw[:40]} » n'est pas un nombre.") from None
    return _finite(value, label)


# A "+" left unencoded in a query string arrives as a space: "…T21:00:00 01:00".
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def _query_time(raw: str | None, *, now: datetime | None) -> datetime:
    if raw is None or raw.strip() == "":
        raise FixError(
            "timestamp : champ obligatoire manquant (secondes ou millisecondes unix, ou "
            "ISO-8601 avec fuseau)."
        )
    raw = raw.strip()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        number = float(raw)
        seconds = number if number < _INT32_MAX else number / 1000
        try:
            t = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise FixError(f"timestamp : « {raw[:40]} » hors des dates possibles.") from None
        return _checked(t, "timestamp", now=now)
    return _time_iso(_SPACED_OFFSET.sub(r"\1+\2", raw), "timestamp", now=now)


# --- Shared ---------------------------------------------------------------------------------


def _token(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TrackerError(
            f"{name} : identifiant de l'appareil manquant ; saisissez dans le traceur "
            "l'identifiant donné par l'application au début de la maraude."
        )
    token = value.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise TrackerError(f"{name} : identifiant trop long ({len(token)} caractères).")
    return token


def _time_iso(value: Any, label: str, *, now: datetime | None) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise FixError(f"{label} : une date ISO-8601 avec fuseau est attendue.")
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FixError(f"{label} : « {value[:40]} » n'est pas une date ISO-8601.") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise FixError(
            f"{label} : « {value[:40]} » n'a pas de fuseau horaire ; "
            "ajoutez un décalage (+01:00) ou Z."
        )
    return _checked(t, label, now=now)


def _checked(t: datetime, label: str, *, now: datetime | None) -> datetime:
    try:
        return check_time(t, now=now)
    except FixError as exc:
        raise FixError(_relabel(exc, label)) from None


def _finite(value: float, label: str) -> float:
    if not math.isfinite(value):
        raise FixError(f"{label} : valeur non finie ({value}).")
    return value


def _relabel(exc: FixError, label: str) -> str:
    """maraudes.fixes names the positions API's fields (`t`); name the tracker's."""
    message = str(exc)
    return f"{label} : {message[4:]}" if message.startswith("t : ") else message


def _fix(
    t: datetime,
    *,
    lon: float,
    lat: float,
    accuracy: float,
    speed: float | None,
    heading: float | None,
    index: int,
) -> Fix:
    if accuracy < 0:
        raise FixError(
            f"accuracy : {accuracy:g} est négatif ; une précision en mètres est attendue."
        )
    if speed is not None and speed < 0:
        speed = None  # -1: unknown
    if heading is not None and not (0 <= heading <= 360):
        heading = None  # -1: unknown
    check_position(lon, lat)
    return Fix(t=t, lon=lon, lat=lat, accuracy=accuracy, speed=speed, heading=heading, index=index)
