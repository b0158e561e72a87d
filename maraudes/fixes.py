"""Reading GPS fixes from the outside world: every rule a fix must pass before it is stored.

Shared by the positions API, the trackers (Traccar, OsmAnd) and GPX import, so that a fix is
judged the same way whatever door it came through. Each rejected fix gets a reason a person
can act on; a bad fix never spoils the good ones sent with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

# A phone's clock may run a little ahead; further than this is a wrong clock or a wrong field.
MAX_FUTURE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Fix:
    """A fix that passed validation: aware time, WGS84 lon/lat."""

    t: datetime
    lon: float
    lat: float
    accuracy: float
    speed: float | None = None
    heading: float | None = None
    # Position in the batch it came in, to name it in a rejection.
    index: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


class FixError(ValueError):
    pass


def in_territory(lon: float, lat: float) -> bool:
    x0, y0, x1, y1 = settings.TERRITORY_BBOX
    return x0 <= lon <= x1 and y0 <= lat <= y1


def _number(raw: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise FixError(f"{name} : champ obligatoire manquant.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FixError(f"{name} : un nombre est attendu, reçu {type(value).__name__}.")
    try:
        number = float(value)
    except ValueError:
        raise FixError(f"{name} : « {value} » n'est pas un nombre.") from None
    if not math.isfinite(number):
        raise FixError(f"{name} : valeur non finie ({value}).")
    return number


def parse_time(value: Any, *, now: datetime | None = None) -> datetime:
    """ISO-8601 with an offset (or Z). Naive times are refused: their zone is a guess."""
    if not isinstance(value, str):
        raise FixError("t : une date ISO-8601 avec fuseau est attendue.")
    try:
        t = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise FixError(f"t : « {value} » n'est pas une date ISO-8601.") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise FixError(
            f"t : « {value} » n'a pas de fuseau horaire ; ajoutez un décalage (+01:00) ou Z."
        )
    return check_time(t, now=now)


def check_time(t: datetime, *, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    if t > now + MAX_FUTURE:
        raise FixError(
            f"t : {t.isoformat()} est dans le futur (plus de 5 minutes) ; "
            "l'horloge du téléphone est-elle juste ?"
        )
    return t


def check_position(lon: float, lat: float) -> None:
    if not (-180 <= lon <= 180) or not (-90 <= lat <= 90):
        raise FixError(f"lon/lat hors des bornes (lon {lon}, lat {lat}).")
    if not in_territory(lon, lat):
        if in_territory(lat, lon):
            raise FixError(
                f"lat {lat}, lon {lon} : latitude et longitude semblent inversées "
                "(à Paris, lon ≈ 2.35 et lat ≈ 48.85)."
            )
        raise FixError(f"lon {lon}, lat {lat} : hors du territoire couvert.")


def parse_fix(raw: Any, *, index: int = 0, now: datetime | None = None) -> Fix:
    """One fix of `POST /api/v1/shifts/{id}/positions/`: {t, lon, lat, accuracy, speed?, heading?}."""
    if not isinstance(raw, dict):
        raise FixError("chaque point doit être un objet {t, lon, lat, accuracy}.")
    unknown = set(raw) - {"t", "lon", "lat", "accuracy", "speed", "heading"}
    if unknown:
        raise FixError(f"champs inconnus : {', '.join(sorted(unknown))}.")
    t = parse_time(raw.get("t"), now=now)
    lon = _number(raw, "lon", required=True)
    lat = _number(raw, "lat", required=True)
    accuracy = _number(raw, "accuracy", required=True)
    assert lon is not None and lat is not None and accuracy is not None
    if accuracy < 0:
        raise FixError(f"accuracy : {accuracy} est négatif ; une précision en mètres est attendue.")
    speed = _number(raw, "speed", required=False)
    if speed is not None and speed < 0:
        speed = None  # Android reports -1 for "unknown"
    heading = _number(raw, "heading", required=False)
    if heading is not None and not (0 <= heading <= 360):
        heading = None
    check_position(lon, lat)
    return Fix(t=t, lon=lon, lat=lat, accuracy=accuracy, speed=speed, heading=heading, index=index)


def parse_fixes(
    items: list[Any], *, now: datetime | None = None
) -> tuple[list[Fix], list[Rejected]]:
    """Parse a batch; returns the good fixes and, for each bad one, its index and reason."""
    now = now or timezone.now()
    good: list[Fix] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(items):
        try:
            good.append(parse_fix(raw, index=index, now=now))
        except FixError as exc:
            rejected.append(Rejected(index=index, reason=str(exc)))
    return good, rejected
