"""maraudes/env.py reads deploy-time values loudly, and .env.example documents every one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from maraudes.env import (
    ImproperlyConfiguredEnv,
    env_bbox,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_optional,
    env_path,
    env_str,
    env_time,
)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "maraudes" / "settings.py"
ENV_SH = ROOT / "scripts" / "env.sh"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

VAR = "MARAUDES_TEST_VALUE"


@pytest.fixture
def setenv(monkeypatch):
    def set_(value: str) -> None:
        monkeypatch.setenv(VAR, value)

    monkeypatch.delenv(VAR, raising=False)
    return set_


# --- The helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "bad"),
    [
        (lambda: env_int(VAR, 1), "abc"),
        (lambda: env_int(VAR, 1), "1.5"),
        (lambda: env_bool(VAR, True), "maybe"),
        (lambda: env_float(VAR, 1.0), "nan"),
        (lambda: env_float(VAR, 1.0), "inf"),
        (lambda: env_float(VAR, 1.0), "abc"),
        (lambda: env_time(VAR, time(6)), "25:00"),
        (lambda: env_time(VAR, time(6)), "6h"),
    ],
    ids=["int-abc", "int-1.5", "bool-maybe", "float-nan", "float-inf", "float-abc",
         "time-25:00", "time-6h"],
)  # fmt: skip
def test_it_rejects_a_bad_value_naming_the_variable(setenv, read, bad):
    setenv(bad)
    with pytest.raises(ImproperlyConfiguredEnv, match=rf"^{VAR}="):
        read()


def test_it_is_a_value_error_so_a_plain_except_catches_it():
    assert issubclass(ImproperlyConfiguredEnv, ValueError)


@pytest.mark.parametrize(
    ("read", "low"),
    [(lambda: env_int(VAR, 5, minimum=1), "0"), (lambda: env_float(VAR, 5.0, minimum=1), "0.5")],
    ids=["int", "float"],
)
def test_it_rejects_a_value_below_the_minimum(setenv, read, low):
    setenv(low)
    with pytest.raises(ImproperlyConfiguredEnv, match=rf"^{VAR}=.*must be at least 1"):
        read()


@pytest.mark.parametrize("blank", [None, "", "   "], ids=["unset", "empty", "spaces"])
def test_an_unset_or_blank_variable_gives_the_default(setenv, blank):
    if blank is not None:
        setenv(blank)
    assert env_str(VAR, "d") == "d"
    assert env_optional(VAR) is None
    assert env_bool(VAR, True) is True
    assert env_int(VAR, 7, minimum=100) == 7  # a default is trusted, not checked
    assert env_float(VAR, 2.5) == 2.5
    assert env_list(VAR, ["a", "b"]) == ["a", "b"]
    assert env_time(VAR, time(6)) == time(6)
    assert env_path(VAR, Path("/x")) == Path("/x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("On", True),
     ("0", False), ("false", False), ("NO", False), ("off", False)],
)  # fmt: skip
def test_it_reads_the_usual_spellings_of_a_boolean(setenv, raw, expected):
    setenv(raw)
    assert env_bool(VAR, not expected) is expected


def test_it_reads_typed_values_and_strips_spaces(setenv):
    setenv(" 42 ")
    assert env_int(VAR, 0, minimum=1) == 42
    assert env_float(VAR, 0.0) == 42.0
    assert env_str(VAR, "") == "42"
    setenv("05:30")
    assert env_time(VAR, time(6)) == time(5, 30)
    setenv(" a.example, ,b.example ,")
    assert env_list(VAR, []) == ["a.example", "b.example"]
    setenv("/srv/static")
    assert env_path(VAR, Path("/x")) == Path("/srv/static")


# --- .env.example never drifts from what the code reads ------------------------------------

# env_str("NAME", ...), env_int(\n    "NAME", ...): every helper of maraudes/env.py.
_SETTINGS_READ = re.compile(r"\benv_\w+\(\s*\"(\w+)\"")
# "${NAME:-default}" and friends: a shell variable taken from the environment with a fallback.
# Names starting with "_" are the script's own state (e.g. _APT_UPDATED), not settings.
_SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-=?+])")
# "${NAME}", "${NAME:-default}", "${NAME:?message}" in docker-compose.yml.
_COMPOSE_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
# "NAME=value" or "# NAME=value" (a documented default, commented out).
_DOCUMENTED = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def read_by_settings() -> set[str]:
    return set(_SETTINGS_READ.findall(SETTINGS.read_text()))


def read_by_env_sh() -> set[str]:
    return set(_SHELL_READ.findall(ENV_SH.read_text()))


def read_by_compose() -> set[str]:
    return set(_COMPOSE_READ.findall(COMPOSE.read_text()))


def documented() -> dict[str, str]:
    """NAME -> example value, for each variable line of .env.example."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _DOCUMENTED.match(line)
        if match:
            found.setdefault(match.group(1), match.group(2))
    return found


def test_the_source_parsers_find_what_the_code_reads():
    # Guards the regexes themselves: a parser that finds nothing would pass the drift test.
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "DAY_START", "TEST_DATABASE_NAME"} <= (
        read_by_settings()
    )
    assert {"MARAUDES_PG_PORT", "MARAUDES_PG_DB", "MARAUDES_REDIS_PORT", "PYTHON"} <= (
        read_by_env_sh()
    )
    assert {"SECRET_KEY", "POSTGRES_PASSWORD"} <= read_by_compose()


def test_settings_read_the_environment_only_through_the_typed_helpers():
    source = SETTINGS.read_text()
    assert "os.environ" not in source
    assert "getenv" not in source


@pytest.mark.parametrize(
    ("source", "reader"),
    [
        ("maraudes/settings.py", read_by_settings),
        ("scripts/env.sh", read_by_env_sh),
        ("docker-compose.yml", read_by_compose),
    ],
    ids=["settings", "env.sh", "compose"],
)
def test_every_variable_read_is_documented_in_env_example(source, reader):
    missing = sorted(reader() - set(documented()))
    assert not missing, f"read by {source} but missing from .env.example: {missing}"


def test_env_example_documents_nothing_that_is_no_longer_read():
    stale = sorted(set(documented()) - read_by_settings() - read_by_env_sh() - read_by_compose())
    assert not stale, f"in .env.example but read nowhere: {stale}"


def test_each_variable_in_env_example_is_explained_by_the_comment_above_it():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        match = _DOCUMENTED.match(line)
        if not match:
            continue
        above = lines[number - 1] if number else ""
        is_comment = above.startswith("# ") and not _DOCUMENTED.match(above)
        assert is_comment, f".env.example:{number + 1}: {match.group(1)} has no comment above it"


def test_env_example_ships_no_secret():
    values = documented()
    assert values["SECRET_KEY"] == ""
    assert values["POSTGRES_PASSWORD"] == ""


def test_the_settings_accept_every_example_value_in_env_example():
    """Uncommenting every line of .env.example gives settings that load."""
    env = {name: value.strip().strip("\"'") for name, value in documented().items()}
    env.update(
        PATH=os.environ.get("PATH", ""),
        SECRET_KEY="x" * 50,
        DEBUG="false",
        DJANGO_SETTINGS_MODULE="maraudes.settings",
    )
    probe = (
        "import maraudes.settings as s; "
        "assert s.DEBUG is False; "
        "assert len(s.TERRITORY_BBOX) == 4; "
        "print(s.DAY_START, s.SRID)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["06:00:00", "2154"]


@pytest.mark.parametrize("value", ["2,48,3", "a,b,c,d", "3,48,2,49", "nan,48,3,49", "2,48,3,95"])
def test_env_bbox_rejects_what_is_not_a_wgs84_box(monkeypatch, value):
    monkeypatch.setenv(VAR, value)
    with pytest.raises(ImproperlyConfiguredEnv, match=VAR):
        env_bbox(VAR, (0, 0, 1, 1))
