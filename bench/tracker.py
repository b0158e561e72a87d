"""Tracker rate: one-point-per-request Traccar Client posts from concurrent clients.

    python -m bench.tracker                      # 100 teams, 50 connections, 20 s
    python -m bench.tracker --teams 20 --seconds 5
    python -m bench.tracker --rate 150 --output /tmp/paced.json   # coverage lag at 150/s

The issue's aim: ≥ 500 requests/s on a 2-core machine (100 teams sending every second, five
times over), uvicorn with 2 workers. Like bench/run.py, `main` uses a database of its own
(`maraudes_bench_tracker`, dropped and created again on the project-local cluster), loads
the 80 real quartiers, opens one shift per team, serves the app with uvicorn on a free port
(TRACKER_COVERAGE=background, as in production: a request stores its point, coverage
follows in batches, zones.catchup), and merges `tracker_requests_per_s` and `tracker_p99_ms`
into `bench/results/latest.json` (or `--output`).

Coverage must keep up: while the load runs, the queue of points waiting for coverage is
sampled (`tracker_backlog_mean`, `tracker_backlog_max`; by Little's law the mean wait of a
point is the mean queue over the rate, `tracker_coverage_lag_s`); when the load stops, the
queue must be empty within CATCH_UP_TIMEOUT_S (`tracker_catch_up_s`) and every shift must
have coverage, or the run fails. The server CPU per request counts the catch-up too.

`bench_tracker(base_url, tokens, ...)` is the measurement alone, against any running server:
each client keeps one HTTP/1.1 connection open (as the apps do) and posts Traccar Client 9
JSON bodies, one point each, for the tokens it was dealt, their times one second apart and
their positions walking through Paris. Every answer must be a 200 that stored the point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from bench.run import BENCH_SECRET_KEY, RESULTS, database_create, django_setup, percentile, say
from bench.server import django_env, uvicorn_start

DB_NAME = "maraudes_bench_tracker"
TARGET_REQUESTS_PER_S = 500
# After the load stops, the queue of points waiting for coverage must be empty within this.
CATCH_UP_TIMEOUT_S = 60.0
BACKLOG_SAMPLE_EVERY_S = 0.25
# Team starting points: around the Paris quartiers' centre, spread over a few km.
PARIS = (2.3470, 48.8590)
WALK_SPEED_MS = 1.3
METRES_PER_DEGREE_LAT = 111_320.0


@dataclass
class Walker:
    """One team's Traccar Client: a token, and a walk sent one point a second."""

    token: str
    lon: float
    lat: float
    t: datetime
    heading: float
    rng: random.Random

    def next_body(self) -> bytes:
        self.heading = (self.heading + self.rng.uniform(-25, 25)) % 360
        step = WALK_SPEED_MS
        rad = math.radians(self.heading)
        self.lat += step * math.cos(rad) / METRES_PER_DEGREE_LAT
        self.lon += (
            step * math.sin(rad) / (METRES_PER_DEGREE_LAT * math.cos(math.radians(self.lat)))
        )
        self.t += timedelta(seconds=1)
        stamp = self.t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        body = {
            "location": {
                "timestamp": stamp,
                "coords": {
                    "latitude": round(self.lat, 7),
                    "longitude": round(self.lon, 7),
                    "accuracy": round(self.rng.uniform(4, 15), 1),
                    "speed": WALK_SPEED_MS,
                    "heading": round(self.heading, 1),
                    "altitude": 35.0,
                },
                "is_moving": True,
                "odometer": 0,
                "event": "",
                "battery": {"level": 0.8, "is_charging": False},
                "activity": {"type": "walking"},
                "extras": {},
            },
            "device_id": self.token,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def walkers_for(tokens: Sequence[str], *, start: datetime, seed: int = 5) -> list[Walker]:
    rng = random.Random(seed)
    walkers = []
    for token in tokens:
        walkers.append(
            Walker(
                token=token,
                lon=PARIS[0] + rng.uniform(-0.03, 0.03),
                lat=PARIS[1] + rng.uniform(-0.015, 0.015),
                t=start,
                heading=rng.uniform(0, 360),
                rng=random.Random(rng.random()),
            )
        )
    return walkers


async def _client(
    host: str,
    port: int,
    walkers: list[Walker],
    deadline: float,
    latencies: list[float],
    errors: list[str],
    interval: float = 0.0,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /api/v1/track/ HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    head += b"Content-Type: application/json; charset=utf-8\r\nUser-Agent: okhttp/4.12.0\r\n"
    turn = 0
    due = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            if interval:  # paced: one request every `interval` seconds
                due += interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            walker = walkers[turn % len(walkers)]
            turn += 1
            body = walker.next_body()
            t0 = time.perf_counter()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not status_line.startswith(b"HTTP/1.1 200") or b'"accepted":1' not in answer:
                errors.append(f"{status_line.decode().strip()} {answer[:200]!r}")
    finally:
        writer.close()


def bench_tracker(
    base_url: str,
    tokens: Sequence[str],
    *,
    clients: int = 50,
    seconds: float = 20.0,
    start: datetime | None = None,
    seed: int = 5,
    rate: float | None = None,
) -> dict:
    """Post one Traccar point per request from `clients` concurrent connections for
    `seconds`; the tokens are dealt round-robin to the clients. Point times start at `start`
    (default: an hour ago) and go one second apart per token, so they must fit the shifts'
    windows. With `rate`, requests are paced to that many a second in all (each client at
    its share) instead of as fast as the server answers. Returns the rate and the latency
    percentiles."""
    url = urlparse(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    start = start or datetime.now(UTC) - timedelta(hours=1)
    walkers = walkers_for(tokens, start=start, seed=seed)
    clients = max(1, min(clients, len(walkers)))
    dealt = [walkers[i::clients] for i in range(clients)]
    interval = clients / rate if rate else 0.0
    latencies: list[float] = []
    errors: list[str] = []

    async def run() -> float:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(
            *(_client(host, port, group, deadline, latencies, errors, interval) for group in dealt)
        )
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    if errors:
        raise RuntimeError(f"{len(errors)} tracker requests failed, first: {errors[0]}")
    return {
        "tracker_requests_per_s": round(len(latencies) / elapsed),
        "tracker_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "tracker_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "tracker_requests": len(latencies),
        "tracker_clients": clients,
        "tracker_teams": len(walkers),
        "tracker_seconds": round(elapsed, 1),
    }


# --- CPU accounting -------------------------------------------------------------------------
# This machine is shared: requests per second fall when others run benchmarks. The CPU time
# the server's workers and its database backends spend per request does not, or much less:
# it says what 2 idle cores would serve.

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _server_pids(parent: int, database: str) -> list[int]:
    """uvicorn's workers (children of `parent`) and PostgreSQL backends of `database`."""
    pids = [parent]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent or (cmdline.startswith("postgres: ") and f" {database} " in cmdline):
            pids.append(int(entry.name))
    return pids


def cpu_snapshot(parent: int, database: str) -> dict[int, float]:
    return {pid: _proc_cpu(pid) for pid in _server_pids(parent, database)}


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


# --- Coverage catch-up -----------------------------------------------------------------------


class BacklogSampler:
    """Samples the queue of points waiting for coverage from a thread while the load runs."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-sampler", daemon=True)

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(BACKLOG_SAMPLE_EVERY_S):
                self.samples.append(_count_queue())
        finally:
            connection.close()


def _count_queue() -> int:
    from zones.catchup import backlog_size as size

    return size()


def catch_up_wait(timeout: float = CATCH_UP_TIMEOUT_S) -> float:
    """Seconds until the queue of points waiting for coverage is empty; raises past timeout."""
    from django.db import connection

    t0 = time.perf_counter()
    try:
        while (left := _count_queue()) > 0:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"coverage did not catch up: {left} points still queued")
            time.sleep(0.05)
    finally:
        connection.close()
    return time.perf_counter() - t0


def coverage_check(teams: int) -> int:
    """Every shift has coverage pieces (their walks stay in the quartiers); returns the
    number of zone-days covered."""
    from django.db import connection

    from zones.models import CoveragePiece, ZoneDayCoverage

    try:
        covered_shifts = CoveragePiece.objects.values("shift_id").distinct().count()
        zone_days = ZoneDayCoverage.objects.count()
    finally:
        connection.close()
    if covered_shifts < teams or not zone_days:
        raise RuntimeError(f"coverage missing: {covered_shifts} of {teams} shifts covered")
    return zone_days


def world_create(teams: int, *, started_at: datetime) -> list[str]:
    """An organization, `teams` foot teams and one open shift each; returns their tokens."""
    from django.db import transaction

    from maraudes.services import organization_create, shift_start, team_create

    tokens = []
    with transaction.atomic():
        org = organization_create(name="Banc d'essai des traceurs")
        for n in range(teams):
            team = team_create(organization=org, name=f"Équipe {n + 1:03d}")
            tokens.append(shift_start(team=team, by=None, started_at=started_at).tracker_token)
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark of /api/v1/track/.")
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--db-host", default="127.0.0.1")
    parser.add_argument(
        "--db-port", type=int, default=int(os.environ.get("MARAUDES_PG_PORT", "54329"))
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="requests a second in all, paced (default: as fast as the server answers)",
    )
    args = parser.parse_args(argv)

    say(f"Database {DB_NAME} on {args.db_host}:{args.db_port} (dropped and created)")
    database_url = database_create(host=args.db_host, port=args.db_port, name=DB_NAME)
    django_setup(database_url)

    from django.core.management import call_command

    from tests.support.paris import load_zones

    call_command("migrate", verbosity=0, interactive=False)
    say(f"{len(load_zones())} quartiers loaded")
    started_at = datetime.now(UTC) - timedelta(hours=3)
    tokens = world_create(args.teams, started_at=started_at)
    say(f"{len(tokens)} teams with an open shift")

    log = Path(tempfile.gettempdir()) / f"maraudes-bench-tracker-{os.getpid()}.log"
    # As in production: DEBUG off, psycopg's pool, coverage following in the background.
    env = django_env(
        database_url, DEBUG="false", SECRET_KEY=BENCH_SECRET_KEY, TRACKER_COVERAGE="background"
    )
    env.pop("DB_POOL", None)
    server = uvicorn_start(env=env, log=log, workers=args.workers)
    process, base_url = server.process, server.base_url
    try:
        # Warm the workers up (imports, pools, caches) on points of their own, an hour
        # before the measured ones so that both stay in time order.
        if args.warmup > 0:
            bench_tracker(
                base_url, tokens, clients=args.clients, seconds=args.warmup, start=started_at
            )
            catch_up_wait()
        load_start = round(os.getloadavg()[0], 2)
        say(f"Posting for {args.seconds:g} s from {args.clients} connections")
        cpu_before = cpu_snapshot(process.pid, DB_NAME)
        with BacklogSampler() as sampler:
            results = bench_tracker(
                base_url,
                tokens,
                clients=args.clients,
                seconds=args.seconds,
                start=started_at + timedelta(hours=1),
                rate=args.rate,
            )
        catch_up_s = catch_up_wait()
        # Counted until coverage caught up: the batches are part of each point's cost.
        cpu = cpu_spent(cpu_before, cpu_snapshot(process.pid, DB_NAME))
        zone_days = coverage_check(len(tokens))
    finally:
        server.stop()
    say(f"Coverage caught up {catch_up_s:.2f} s after the load stopped ({zone_days} zone-days)")
    per_request_ms = cpu * 1000 / max(results["tracker_requests"], 1)
    backlog = sampler.samples or [0]
    backlog_mean = sum(backlog) / len(backlog)
    results |= {
        # Points waiting for coverage while the load ran, the mean wait of a point by
        # Little's law (mean queue / rate), and the time to empty the queue after the load.
        "tracker_backlog_mean": round(backlog_mean, 1),
        "tracker_backlog_max": max(backlog),
        "tracker_coverage_lag_s": round(
            backlog_mean / max(results["tracker_requests_per_s"], 1), 2
        ),
        "tracker_catch_up_s": round(catch_up_s, 2),
        "tracker_paced_rate": args.rate,
        # Server CPU (uvicorn workers + their PostgreSQL backends) per request, and the rate
        # that would fill the machine's cores with it (the load generator left out).
        "tracker_server_cpu_ms_per_request": round(per_request_ms, 2),
        "tracker_requests_per_s_idle_estimate": round((os.cpu_count() or 1) * 1000 / per_request_ms)
        if per_request_ms
        else None,
        "tracker_workers": args.workers,
        "tracker_load_average_start": load_start,
        "tracker_load_average_end": round(os.getloadavg()[0], 2),
    }
    verdict = "PASS" if results["tracker_requests_per_s"] >= TARGET_REQUESTS_PER_S else "MISS"
    print()
    print(
        f"tracker: {results['tracker_requests_per_s']} requests/s (target ≥ "
        f"{TARGET_REQUESTS_PER_S}: {verdict}), p50 {results['tracker_p50_ms']} ms, "
        f"p99 {results['tracker_p99_ms']} ms, {results['tracker_requests']} requests from "
        f"{results['tracker_clients']} connections for {results['tracker_teams']} teams, "
        f"{args.workers} workers, {os.cpu_count()} cores; server CPU "
        f"{results['tracker_server_cpu_ms_per_request']} ms a request (idle-machine estimate "
        f"{results['tracker_requests_per_s_idle_estimate']} requests/s); load average "
        f"{load_start} at start; coverage: {results['tracker_backlog_mean']} points queued on "
        f"average (max {results['tracker_backlog_max']}), a lag of about "
        f"{results['tracker_coverage_lag_s']} s, caught up {results['tracker_catch_up_s']} s "
        "after the load"
    )
    existing = json.loads(args.output.read_text()) if args.output.is_file() else {}
    existing.setdefault("cores", os.cpu_count())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(existing | results, indent=2) + "\n")
    say(f"Merged into {args.output}")
    return 0


if __name__ == "__main__":
    # DEBUG off and a key of its own, as bench/run.py does (django_setup sets them).
    os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)
    sys.exit(main())
