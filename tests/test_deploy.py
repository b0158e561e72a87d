"""The production-like stack: docker-compose.yml and the Dockerfile.

Docker cannot run on these machines, so the compose file is checked against the Compose
Specification's JSON schema (vendored in check-jsonschema: no network) and then read for what
a person reviewing it would look for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dj_database_url
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation, enough for this file."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise LookupError(f"{name}: {arg}")
            return current
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def resolved(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    return node


# What an operator's .env would hold at the least: only the two required values.
MINIMAL_ENV = {"SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "s3cret-pw"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return resolved(raw, MINIMAL_ENV)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


# --- The schema ----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification():
    result = schema_check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize(
    ("why", "service", "where"),
    [
        (
            "a misspelt healthcheck key",
            'healthcheck:\n      test: ["CMD", "redis-cli", "ping"]\n      intervall: 5s',
            "$.services.app.healthcheck",
        ),
        (
            "a depends_on condition that does not exist",
            "depends_on:\n      db:\n        condition: service_ready",
            "$.services.app.depends_on",
        ),
        ("ports that are not a list", "ports: 8000", "$.services.app.ports"),
    ],
    ids=["misspelt-healthcheck-key", "unknown-condition", "ports-not-a-list"],
)
def test_the_schema_check_rejects_a_broken_compose_file(tmp_path, why, service, where):
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n"
        "  db:\n    image: postgres:16\n"
        f"  app:\n    image: redis:7-alpine\n    {service}\n"
    )
    assert yaml.safe_load(path.read_text())  # broken for the schema, not for YAML
    result = schema_check(path)
    assert result.returncode != 0, f"{why} passed the schema check:\n{result.stdout}"
    assert "Schema validation errors were encountered" in result.stdout
    assert where in result.stdout, result.stdout


def test_the_stack_refuses_to_start_without_its_secrets(raw):
    for missing in MINIMAL_ENV:
        env = {k: v for k, v in MINIMAL_ENV.items() if k != missing}
        with pytest.raises(LookupError, match=missing):
            resolved(raw, env)
        # An empty value in .env (as .env.example ships them) is refused too.
        with pytest.raises(LookupError, match=missing):
            resolved(raw, {**env, missing: ""})


# --- Services ------------------------------------------------------------------------------


def test_the_stack_has_a_database_a_redis_a_migrate_job_and_web(services):
    assert set(services) == {"db", "redis", "migrate", "web"}
    assert services["db"]["image"] == "postgis/postgis:16-3.4"
    assert services["redis"]["image"] == "redis:7-alpine"


def test_web_waits_for_a_healthy_db_and_redis_and_a_finished_migrate(services):
    assert services["web"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_every_server_has_a_healthcheck_and_the_one_shot_job_disables_it(services):
    for name in ("db", "redis", "web"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD", name
        assert not check.get("disable"), name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["restart"] == "no"


def test_the_health_checks_probe_the_right_things(services):
    assert services["db"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    web = services["web"]["healthcheck"]["test"]
    # No curl in python:*-slim: the check must use the image's own Python.
    assert web[1] == "python"
    assert "urllib.request" in web[-1]
    assert "http://127.0.0.1:8000/healthz/" in web[-1]


def test_web_and_migrate_run_the_image_built_from_this_repo_with_one_environment(raw, services):
    assert services["web"]["image"] == services["migrate"]["image"]
    assert services["web"]["build"] == services["migrate"]["build"] == {"context": "."}
    # One anchor, so the job that migrates and the workers can never disagree on a setting.
    assert raw["services"]["web"]["environment"] is raw["services"]["migrate"]["environment"]


def test_web_database_url_points_at_the_db_service(services):
    url = dj_database_url.parse(services["web"]["environment"]["DATABASE_URL"])
    db_env = services["db"]["environment"]
    assert url["ENGINE"] == "django.contrib.gis.db.backends.postgis"
    assert (url["HOST"], url["PORT"]) == ("db", 5432)
    assert url["NAME"] == db_env["POSTGRES_DB"]
    assert url["USER"] == db_env["POSTGRES_USER"]
    assert url["PASSWORD"] == db_env["POSTGRES_PASSWORD"] == MINIMAL_ENV["POSTGRES_PASSWORD"]


def test_web_redis_url_points_at_the_redis_service(services):
    assert services["web"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_stack_runs_without_debug_and_with_the_operators_secret_key(services):
    env = services["web"]["environment"]
    assert env["DEBUG"] == "false"
    assert env["SECRET_KEY"] == MINIMAL_ENV["SECRET_KEY"]
    # The healthcheck calls 127.0.0.1 from inside the container: it must stay an allowed host.
    assert {"127.0.0.1", "localhost"} <= set(filter(None, env["ALLOWED_HOSTS"].split(",")))


def test_the_published_port_is_bound_to_loopback_by_default(services):
    (port,) = services["web"]["ports"]
    assert port["host_ip"] == "127.0.0.1"
    assert (str(port["published"]), str(port["target"])) == ("8000", "8000")
    # Nothing else reaches the host: PostGIS and Redis stay on the stack's network.
    for name in ("db", "redis", "migrate"):
        assert "ports" not in services[name], name


def test_web_runs_several_uvicorn_workers_without_lifespan(services):
    command = services["web"]["command"]
    assert command[:2] == ["uvicorn", "maraudes.asgi:application"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    # All interfaces of the container; the host side is bound by `host_ip` (next test up).
    assert options["--host"] == "0.0.0.0"  # noqa: S104
    assert options["--port"] == "8000"
    assert int(options["--workers"]) > 1
    assert options["--lifespan"] == "off"


def test_migrate_migrates_then_collects_static_files(services):
    command = services["migrate"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[2] == (
        "python manage.py migrate --noinput && python manage.py collectstatic --noinput"
    )
    # What the job collects is what the workers serve.
    assert "static:/app/staticfiles" in services["migrate"]["volumes"]
    assert "static:/app/staticfiles" in services["web"]["volumes"]


def test_the_app_starts_with_the_stacks_environment(services):
    """The settings accept what compose hands the containers, and `check --deploy` finds no
    error (warnings, such as HSTS left to the TLS proxy, are allowed)."""
    env = {"PATH": os.environ.get("PATH", ""), **services["web"]["environment"]}
    env["STATIC_ROOT"] = str(ROOT / "staticfiles")  # /app does not exist here
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_the_healthcheck_url_answers_ok_without_logging_in(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_the_healthcheck_url_fails_when_the_database_is_unreachable(client, monkeypatch):
    from django.db import OperationalError, connection

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", unreachable)
    response = client.get("/healthz/")
    assert response.status_code == 503  # urlopen raises on it: the container turns unhealthy


# --- The image -----------------------------------------------------------------------------


def test_the_image_is_python_311_slim_on_bookworm():
    assert dockerfile_instructions()[0] == ("FROM", "python:3.11-slim-bookworm")


def test_the_dockerfile_installs_gdal():
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    assert any(
        re.search(r"apt-get install\b.*\bgdal-bin\b", run) and "apt-get update" in run
        for run in runs
    ), runs


def test_the_dockerfile_installs_the_dependencies_of_pyproject():
    instructions = dockerfile_instructions()
    copied = " ".join(args for word, args in instructions if word == "COPY")
    assert "pyproject.toml" in copied
    assert any(word == "RUN" and "pip install" in args for word, args in instructions)


def test_the_image_runs_as_a_non_root_user_and_serves_on_8000():
    instructions = dockerfile_instructions()
    users = [args for word, args in instructions if word == "USER"]
    assert users, "no USER: the app would run as root"
    assert users[-1] not in {"root", "0"}
    assert ("EXPOSE", "8000") in instructions
    (cmd,) = [args for word, args in instructions if word == "CMD"]
    assert cmd.startswith('["uvicorn", "maraudes.asgi:application"')
    assert '"--lifespan", "off"' in cmd


def test_the_image_collects_static_files_at_build_time():
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    assert any("manage.py collectstatic --noinput" in run for run in runs)


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", ".data", ".git"} <= ignored
