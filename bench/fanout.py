"""Live fan-out: how long a fix takes to reach every coordinator's map.

    python -m bench.fanout                       # 100 teams, 50 clients, 60 s per layer
    python -m bench.fanout --duration 20 --layers inmemory

100 simulated teams each send one fix every 5 s (`POST /api/v1/shifts/{id}/positions/`, token
auth, as a phone does) while 50 coordinator clients watch `/ws/live/`. For each fix, the
latency is from the end of its positions request (the team got its answer) to the moment
the last of the 50 clients received the `position` event: p50 and p99 over the run, after a
warm-up. Measured twice, each time against real uvicorn processes on the loopback:

- `inmemory`: one worker, Channels' in-memory layer (the default, one process);
- `redis`: two workers behind one Redis (channels-redis), teams and clients spread over both,
  so most events cross from one worker to the other through Redis.

The workers run as the app is served (`make run`, docker-compose): uvicorn with
`--ws-per-message-deflate false`. Compressing each small event for each client cost about a
fifth of a worker's fan-out CPU (measured: ~300 µs per client message with it, ~215 µs
without) for a few kB/s saved on a desk's link; `--ws-deflate` measures it on.

The 80 real quartiers of Paris are loaded, so each fix also updates the coverage and sends a
`coverage_changed` event, as in production: clients receive about two events per fix.

It uses a database of its own, `maraudes_fanout`, dropped and created again on the
project-local cluster at each run. Teams run in a child process (threads on http.client) and
clients in this one (asyncio, the `websockets` client), so neither side's CPU delays the
other's clock readings; both read the same system-wide monotonic clock.

`run_fanout(...)` returns one flat dict (fanout_p50_ms_inmemory, fanout_p99_ms_inmemory,
fanout_p50_ms_redis, fanout_p99_ms_redis, and the counts behind them); `bench.run` merges it
into bench/results/latest.json. Django is never set up in the calling process: the
database is prepared by `manage.py` subprocesses, so `bench.run` may call this after its own
`django.setup()` on another database.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Shared with the coverage benchmark (which imports no Django at module level either).
from bench.run import database_create, local_host, percentile
from bench.server import Server, django_env, uvicorn_start

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "maraudes_fanout"
PG_PORT = int(os.environ.get("MARAUDES_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("MARAUDES_REDIS_PORT", "56379"))
# A Redis database of its own, flushed before the run.
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/3"
SECRET_KEY = "fanout-bench-only-not-secret-" + "0123456789" * 5
QUARTIERS = (
    ROOT.parent / "shared" / "data" / "boundaries" / "paris_quartiers_administratifs.geojson"
)

TEAMS = 100
CLIENTS = 50
INTERVAL_S = 5.0
DURATION_S = 60.0
WARMUP_S = 5.0
# After the last fix, how long stragglers may take before an event counts as missed.
DRAIN_S = 3.0
TARGET_P99_MS = 200.0
LAYERS = ("inmemory", "redis")
# Where teams walk: around Notre-Dame, inside Paris.
CENTRE = (2.3488, 48.8534)
SPREAD_DEG = (0.045, 0.025)
WALK_M = 6.0  # metres per fix: 1.2 m/s on foot, every 5 s


def say(message: str) -> None:
    print(f"[fanout {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- The database, prepared in subprocesses -------------------------------------------------


def _django_env(database_url: str, **extra: str) -> dict[str, str]:
    env = django_env(database_url, DEBUG="false", SECRET_KEY=SECRET_KEY)
    env.pop("REDIS_URL", None)  # the in-memory layer unless the caller says otherwise
    env.update(extra)
    return env


@dataclass(frozen=True)
class World:
    token: str
    shift_ids: list[int]


def world_prepare(database_url: str, *, teams: int) -> World:
    """Migrate, load the quartiers, create a coordinator and `teams` open shifts."""
    env = _django_env(database_url, DB_POOL="false")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", f"from bench.fanout import _world_main; _world_main({teams})"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return World(token=data["token"], shift_ids=data["shift_ids"])


def _world_main(teams: int) -> None:
    """In a subprocess with DATABASE_URL set: create the world, print it as JSON."""
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from maraudes.models import Membership, Role
    from maraudes.services import organization_create, shift_start, team_create

    if QUARTIERS.exists():
        from zones.importing import zones_import

        zones_import(path=QUARTIERS, kind="quartier", code_field="c_quinsee", name_field="l_qu")
    with transaction.atomic():
        org = organization_create(name="Banc d'essai, diffusion")
        user = get_user_model().objects.create_user(username="fanout", password=None)
        Membership.objects.create(user=user, organization=org, role=Role.COORDINATOR)
        token = Token.objects.create(user=user).key
        started_at = timezone.now() - timedelta(minutes=1)
        shift_ids = [
            shift_start(
                team=team_create(organization=org, name=f"Équipe {i + 1:03d}"),
                by=user,
                started_at=started_at,
            ).shift.pk
            for i in range(teams)
        ]
    print(json.dumps({"token": token, "shift_ids": shift_ids}))


# --- Servers --------------------------------------------------------------------------------


def redis_ready(url: str) -> None:
    """Start the project-local Redis when it does not answer; flush the bench's database."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        subprocess.run([str(ROOT / "scripts" / "env.sh"), "redis"], check=True)
    client.flushdb()
    client.close()


def server_start(
    database_url: str, *, redis_url: str | None, log: Path, ws_deflate: bool = False
) -> Server:
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    env = _django_env(database_url, **extra)
    env.pop("DB_POOL", None)  # as in production: psycopg's pool under ASGI
    args = [] if ws_deflate else ["--ws-per-message-deflate", "false"]
    return uvicorn_start(env=env, log=log, args=args)


# --- Teams: a child process, one thread per team --------------------------------------------


def _fix_key(shift_id: int, t: datetime) -> tuple[int, int]:
    return shift_id, round(t.timestamp() * 1000)


def teams_main(spec: dict, conn) -> None:
    """Child process: each team posts one fix every interval on its own keep-alive
    connection; sends back [(shift, t_ms, request start, request end, ok)], times on the
    monotonic clock."""
    results: list[tuple[int, int, float, float, bool]] = []
    lock = threading.Lock()
    start = spec["start"]
    end = start + spec["duration"]

    def team(i: int, shift_id: int, port: int) -> None:
        rng = random.Random(i)
        lon = CENTRE[0] + rng.uniform(-SPREAD_DEG[0], SPREAD_DEG[0])
        lat = CENTRE[1] + rng.uniform(-SPREAD_DEG[1], SPREAD_DEG[1])
        heading = rng.uniform(0, 2 * math.pi)
        http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Token {spec['token']}"}
        path = f"/api/v1/shifts/{shift_id}/positions/"
        # Teams spread evenly over the interval, as phones do.
        next_at = start + spec["interval"] * i / len(spec["shifts"])
        while next_at < end:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += spec["interval"]
            heading += rng.uniform(-0.5, 0.5)
            lon += WALK_M * math.cos(heading) / (111_320 * math.cos(math.radians(lat)))
            lat += WALK_M * math.sin(heading) / 111_320
            now = datetime.now(UTC)
            t = now.replace(microsecond=now.microsecond // 1000 * 1000)  # ms: the match key
            body = json.dumps(
                {"fixes": [{"t": t.isoformat(), "lon": lon, "lat": lat, "accuracy": 8.0}]}
            )
            began = time.monotonic()
            done, ok = began, False
            # uvicorn closes a keep-alive connection idle for 5 s, the very interval of the
            # fixes: a request may meet a connection closing. Once more on a new one then.
            for _attempt in (1, 2):
                try:
                    http_conn.request("POST", path, body=body, headers=headers)
                    response = http_conn.getresponse()
                    payload = response.read()
                    done = time.monotonic()
                    ok = response.status == 200 and json.loads(payload).get("accepted") == 1
                    break
                except (OSError, http.client.HTTPException, ValueError):
                    done, ok = time.monotonic(), False
                    http_conn.close()
            with lock:
                results.append((*_fix_key(shift_id, t), began, done, ok))
        http_conn.close()

    threads = [
        threading.Thread(target=team, args=(i, shift_id, spec["ports"][i % len(spec["ports"])]))
        for i, shift_id in enumerate(spec["shifts"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conn.send(results)
    conn.close()


# --- Clients: asyncio websockets in this process --------------------------------------------


async def _watch(
    url: str,
    origin: str,
    receipts: dict,
    ready: asyncio.Event,
    stop: asyncio.Event,
    counter: list[int],
    errors: list[str],
) -> None:
    from websockets.asyncio.client import connect

    monotonic = time.monotonic
    loads = json.loads
    fromiso = datetime.fromisoformat
    try:
        async with connect(url, origin=origin, open_timeout=30, max_queue=None) as ws:
            hello = loads(await ws.recv())
            assert hello["type"] == "hello", hello
            counter[0] += 1
            if counter[0] == counter[1]:
                ready.set()
            async for raw in ws:
                now = monotonic()
                message = loads(raw)
                if message.get("type") != "position":
                    continue
                key = (message["shift"], round(fromiso(message["t"]).timestamp() * 1000))
                seen = receipts.get(key)
                if seen is None:
                    receipts[key] = [1, now]
                else:
                    seen[0] += 1
                    seen[1] = now
                if stop.is_set():
                    break
    except Exception as error:  # reported with the figures, never silently
        errors.append(f"{url}: {error!r}")
        ready.set()


async def _measure(
    *, ports: list[int], world: World, clients: int, interval: float, duration: float
) -> tuple[list[tuple], dict, list[str]]:
    receipts: dict[tuple[int, int], list] = {}
    errors: list[str] = []
    ready, stop = asyncio.Event(), asyncio.Event()
    counter = [0, clients]
    tasks = []
    for i in range(clients):
        port = ports[i % len(ports)]
        origin = f"http://127.0.0.1:{port}"
        url = f"ws://127.0.0.1:{port}/ws/live/?token={world.token}"
        tasks.append(
            asyncio.create_task(_watch(url, origin, receipts, ready, stop, counter, errors))
        )
    await asyncio.wait_for(ready.wait(), timeout=60)
    if errors:
        raise RuntimeError("websocket clients failed:\n" + "\n".join(errors[:5]))

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe(duplex=False)
    spec = {
        "token": world.token,
        "shifts": world.shift_ids,
        "ports": ports,
        "interval": interval,
        "duration": duration,
        "start": time.monotonic() + 2.0,  # time for the child to start its threads
    }
    child = context.Process(target=teams_main, args=(spec, child_end), daemon=True)
    child.start()
    child_end.close()
    loop = asyncio.get_running_loop()
    sent = await loop.run_in_executor(None, parent_end.recv)
    await loop.run_in_executor(None, child.join)
    await asyncio.sleep(DRAIN_S)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sent, receipts, errors


def measure_layer(
    layer: str,
    *,
    database_url: str,
    world: World,
    clients: int,
    interval: float,
    duration: float,
    warmup: float,
    log_dir: Path,
    ws_deflate: bool = False,
    redis_workers: int = 2,
) -> dict:
    workers = 1 if layer == "inmemory" else redis_workers
    redis_url = None
    if layer == "redis":
        redis_url = REDIS_URL
        redis_ready(redis_url)
    servers = []
    try:
        for n in range(workers):
            servers.append(
                server_start(
                    database_url,
                    redis_url=redis_url,
                    log=log_dir / f"{layer}-{n}.log",
                    ws_deflate=ws_deflate,
                )
            )
        ports = [server.port for server in servers]
        say(
            f"{layer}: {workers} worker(s) on port(s) {', '.join(map(str, ports))}; "
            f"{clients} clients, {len(world.shift_ids)} teams, a fix every {interval:g} s "
            f"for {duration:g} s"
        )
        load_before = os.getloadavg()[0]
        cpu_before, wall_before = time.process_time(), time.monotonic()
        sent, receipts, errors = asyncio.run(
            _measure(
                ports=ports, world=world, clients=clients, interval=interval, duration=duration
            )
        )
        client_cpu = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    finally:
        for server in servers:
            server.stop()
    started = min((began for _, _, began, _, _ in sent), default=0.0)
    latencies: list[float] = []
    from_start: list[float] = []
    missed = failed = 0
    for shift_id, t_ms, began, done, ok in sent:
        if done - started < warmup:
            continue
        if not ok:
            failed += 1
            continue
        seen = receipts.get((shift_id, t_ms))
        if seen is None or seen[0] < clients:
            missed += 1
            continue
        # An event may reach every client before its request has returned (it is sent on
        # commit, before the response): that counts as no delay at all.
        latencies.append(max(seen[1] - done, 0.0) * 1000)
        from_start.append((seen[1] - began) * 1000)
    if failed:
        for log in sorted(log_dir.glob(f"{layer}-*.log")):
            errors_logged = [line for line in log.read_text().splitlines() if "Error" in line]
            for line in errors_logged[-5:]:
                say(f"{layer}: {log.name}: {line[:300]}")
    if not latencies:
        raise RuntimeError(f"{layer}: no event reached every client ({errors[:3]})")
    figures = {
        f"fanout_p50_ms_{layer}": round(percentile(latencies, 50), 1),
        f"fanout_p99_ms_{layer}": round(percentile(latencies, 99), 1),
        f"fanout_max_ms_{layer}": round(max(latencies), 1),
        # The whole way, from the start of the positions request: ingestion included.
        f"fanout_from_request_start_p50_ms_{layer}": round(percentile(from_start, 50), 1),
        f"fanout_from_request_start_p99_ms_{layer}": round(percentile(from_start, 99), 1),
        f"fanout_before_response_share_{layer}": round(
            sum(1 for v in latencies if v == 0) / len(latencies), 3
        ),
        f"fanout_events_{layer}": len(latencies),
        f"fanout_missed_{layer}": missed,
        f"fanout_failed_requests_{layer}": failed,
        # Context: a busy machine (another benchmark, a browser test) inflates every figure.
        f"fanout_load_1min_before_{layer}": round(load_before, 2),
        f"fanout_clients_cpu_share_{layer}": round(client_cpu, 2),
    }
    say(
        f"{layer}: p50 {figures[f'fanout_p50_ms_{layer}']} ms, "
        f"p99 {figures[f'fanout_p99_ms_{layer}']} ms (from the request's start: p50 "
        f"{figures[f'fanout_from_request_start_p50_ms_{layer}']} ms, p99 "
        f"{figures[f'fanout_from_request_start_p99_ms_{layer}']} ms) over {len(latencies)} fixes "
        f"× {clients} clients ({missed} missed, {failed} failed requests)"
    )
    return figures


def run_fanout(
    *,
    teams: int = TEAMS,
    clients: int = CLIENTS,
    interval: float = INTERVAL_S,
    duration: float = DURATION_S,
    warmup: float = WARMUP_S,
    layers: Sequence[str] = LAYERS,
    pg_host: str | None = None,
    pg_port: int = PG_PORT,
    db_name: str = DB_NAME,
    ws_deflate: bool = False,
    redis_workers: int = 2,
) -> dict:
    """The fan-out figures for each layer, as one flat dict (see the module's docstring)."""
    unknown = set(layers) - set(LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}: choose among {LAYERS}")
    pg_host = pg_host or local_host(pg_port)
    say(f"database {db_name} on {pg_host}:{pg_port}")
    database_url = database_create(host=pg_host, port=pg_port, name=db_name)
    world = world_prepare(database_url, teams=teams)
    results: dict = {
        "fanout_teams": teams,
        "fanout_clients": clients,
        "fanout_interval_s": interval,
        "fanout_duration_s": duration,
        "fanout_ws_deflate": ws_deflate,
    }
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        for layer in layers:
            results.update(
                measure_layer(
                    layer,
                    database_url=database_url,
                    world=world,
                    clients=clients,
                    interval=interval,
                    duration=duration,
                    warmup=warmup,
                    log_dir=Path(tmp),
                    ws_deflate=ws_deflate,
                    redis_workers=redis_workers,
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=TEAMS)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds between fixes")
    parser.add_argument("--duration", type=float, default=DURATION_S, help="seconds per layer")
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    parser.add_argument("--layers", default=",".join(LAYERS), help="inmemory,redis")
    parser.add_argument(
        "--ws-deflate",
        action="store_true",
        help="workers with permessage-deflate (uvicorn's default; off as the app is served)",
    )
    parser.add_argument("--redis-workers", type=int, default=2)
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    results = run_fanout(
        teams=args.teams,
        clients=args.clients,
        interval=args.interval,
        duration=args.duration,
        warmup=args.warmup,
        layers=[layer.strip() for layer in args.layers.split(",") if layer.strip()],
        ws_deflate=args.ws_deflate,
        redis_workers=args.redis_workers,
    )
    print()
    print(f"{'layer':<10} {'p50 ms':>8} {'p99 ms':>8} {'events':>8} {'missed':>8}   target")
    for layer in LAYERS:
        if f"fanout_p50_ms_{layer}" not in results:
            continue
        p99 = results[f"fanout_p99_ms_{layer}"]
        verdict = "ok" if p99 <= TARGET_P99_MS else "MISSED"
        print(
            f"{layer:<10} {results[f'fanout_p50_ms_{layer}']:>8} {p99:>8} "
            f"{results[f'fanout_events_{layer}']:>8} {results[f'fanout_missed_{layer}']:>8}   "
            f"p99 ≤ {TARGET_P99_MS:g} ms {verdict}"
        )
    print(json.dumps(results, indent=2))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
