"""Typed readers for settings that come from the environment.

Each helper fails loudly, naming the variable, when a value cannot be read: a typo in a
deploy-time value must stop the process, not silently fall back to a default.
"""

from __future__ import annotations

import math
import os
from datetime import time
from pathlib import Path


class ImproperlyConfiguredEnv(ValueError):
    pass


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str) -> str:
    return _raw(name) or default


def env_optional(name: str) -> str | None:
    return _raw(name)


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfiguredEnv(f"{name}={value!r}: expected true/false, yes/no, on/off or 1/0")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={value!r}: expected a whole number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name}={number}: must be at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={value!r}: expected a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfiguredEnv(f"{name}={value!r}: expected a finite number")
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name}={number}: must be at least {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_time(name: str, default: time) -> time:
    value = _raw(name)
    if value is None:
        return default
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={value!r}: expected a time such as 06:00") from None


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value) if value else default


def env_bbox(name: str, default: tuple[float, float, float, float]) -> tuple[float, ...]:
    """min_lon,min_lat,max_lon,max_lat in WGS84."""
    value = _raw(name)
    if value is None:
        return default
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if (
        len(numbers) != 4
        or not all(math.isfinite(n) for n in numbers)
        or not (-180 <= numbers[0] < numbers[2] <= 180 and -90 <= numbers[1] < numbers[3] <= 90)
    ):
        raise ImproperlyConfiguredEnv(
            f"{name}={value!r}: expected min_lon,min_lat,max_lon,max_lat in WGS84"
        )
    return numbers


def local_cluster_host(base_dir: Path, port: int) -> str:
    """Where to reach the project-local cluster of scripts/env.sh: its socket directory when
    the cluster is up (a round trip over a Unix socket costs a quarter of one over TCP, and a
    batch of fixes makes a dozen), else 127.0.0.1. The socket directory sits next to the
    cluster's data, which .data/pg links to when it lives in /var/lib/maraudes."""
    pg = base_dir / ".data" / "pg"
    run = pg.resolve().parent / "run" if pg.is_symlink() else base_dir / ".data" / "run"
    if (run / f".s.PGSQL.{port}").exists():
        return str(run)
    return "127.0.0.1"
