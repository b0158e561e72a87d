"""`make bench`: the coverage engine on a week of Paris nights, against the targets of issue 3.

    python -m bench.run                     # 60 teams, 19 + 7 nights: about half an hour
    python -m bench.run --teams 5 --nights 2 --fixes 200 --history-nights 0   # seconds

It uses a database of its own, `maraudes_bench`, dropped and created again at each run on
the project-local cluster (never the dev database), loads the 80 real quartiers and the
scenario of bench/scenario.py: the week under test, preceded by nights of history so that
the white-zone query is timed on 20 different seven-day windows that each hold a full week
of coverage (see `windows`). It measures, in this order:

1. ingestion through the service (`track_ingest`, batches of 1,000): history and week;
2. ingestion through HTTP (`POST /api/v1/shifts/{id}/positions/`, batches of 500) against a
   real uvicorn started on a free port, two client threads: shifts of the week's last night;
3. `track_ingest` of 30-fix batches, in time order, on top of all that: more shifts of the
   week's last night;
4. the white zones of the 80 quartiers over 20 seven-day windows;
5. the naive baseline: one query buffering and unioning the raw tracks of the week (several
   minutes on this scenario; `--naive-runs 0` skips it);
6. the rebuild of the week from the raw fixes, then whether it agrees with what the
   incremental path had built (per zone, within 0.1 % of its area); the white zones again.

It prints a table with each target and writes `bench/results/latest.json`, with the commit
measured and the machine's load average (other work on the machine skews every figure).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from bench.scenario import (
    DEFAULT_FIXES,
    DEFAULT_NIGHTS,
    DEFAULT_SEED,
    DEFAULT_TEAMS,
    Scenario,
    ShiftPlan,
    generate,
)
from bench.server import django_env, uvicorn_start

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
DB_NAME = "maraudes_bench"

SERVICE_BATCH = 1000
HTTP_BATCH = 500
INCREMENTAL_BATCH = 30
WINDOW_RUNS = 20
WINDOW_DAYS = 7
BENCH_SECRET_KEY = "bench-only-not-secret-" + "0123456789" * 5
# Rebuild and incremental path agree per zone within this share of the zone's area.
AGREEMENT = 0.001


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    unit: str
    limit: float
    higher_is_better: bool

    def passes(self, value: float) -> bool:
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.limit:g} {self.unit}"


TARGETS = [
    Target("white_zones_week_p50_ms", "white zones, week, 80 quartiers, p50", "ms", 100, False),
    Target("white_zones_week_p95_ms", "white zones, week, 80 quartiers, p95", "ms", math.inf, False),
    Target("naive_baseline_ms", "naive baseline (buffer + union raw tracks)", "ms", math.inf, False),
    Target("speedup_vs_naive", "speed-up vs naive (naive / p50)", "×", 300, True),
    Target("incremental_30_fixes_p50_ms", "coverage update for a 30-fix batch, p50", "ms", 10, False),
    Target("incremental_30_fixes_ingest_p50_ms", "whole track_ingest of a 30-fix batch, p50", "ms", math.inf, False),
    Target("ingest_service_fixes_per_s", "ingestion via service (1,000-fix batches, {callers} callers)", "fixes/s", 20_000, True),
    Target("ingest_http_fixes_per_s", "ingestion via HTTP (batches of 500, 2 clients)", "fixes/s", 5_000, True),
    Target("rebuild_week_s", "coverage_rebuild of the week", "s", 30, False),
]  # fmt: skip


# --- The database ---------------------------------------------------------------------------


def local_host(port: int) -> str:
    """The project-local cluster's socket directory when it is up, else 127.0.0.1
    (maraudes.env.local_cluster_host: what the app itself uses without DATABASE_URL)."""
    from maraudes.env import local_cluster_host

    return local_cluster_host(ROOT, port)


def database_url(*, host: str, port: int, name: str) -> str:
    return f"postgis://postgres@{quote(host, safe='')}:{port}/{name}"


def database_create(*, host: str, port: int, name: str) -> str:
    """Drop and create the bench database with PostGIS; return its URL."""
    import psycopg

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres") as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=name) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return database_url(host=host, port=port, name=name)


def django_setup(database_url: str) -> None:
    # Before django.setup(): the settings read the environment once.
    os.environ["DATABASE_URL"] = database_url
    os.environ["DB_POOL"] = "false"
    # As in production: DEBUG off (no query log kept in memory), hence a key of its own.
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maraudes.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


# --- Helpers --------------------------------------------------------------------------------


def git_state() -> dict:
    """The commit measured, and whether the working tree differed from it."""

    def git(*command: str) -> str:
        try:
            return subprocess.run(
                ["git", *command], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


_STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f} s] {message}", flush=True)


def batches(shift: ShiftPlan, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, len(shift), size):
        yield start, min(start + size, len(shift))


def round_robin(groups: list[list]) -> Iterator:
    """Items of each group in order, the groups taking turns (teams send at the same time)."""
    for i in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if i < len(group):
                yield group[i]


def windows(first: date, nights: int, runs: int = WINDOW_RUNS) -> list[tuple[date, date]]:
    """`runs` different seven-day windows over `nights` nights from `first`, fullest first.

    A window costs more the more nights of coverage it holds (measured on the full week:
    1.8 s for a window holding all 7 nights, 0.9 s at the p50 of windows sliding over one
    week, which hold 1 to 7), so a p50 over windows that half-miss the data would flatter the
    weekly query. The scenario therefore has 19 nights of history before the week (option
    `--history-nights`): 26 nights hold 20 different full seven-day windows. With fewer
    nights (quick runs), the windows holding the most nights come first, and if fewer than
    `runs` windows touch the data at all, they are cycled.
    """
    candidates = []
    for k in range(-(WINDOW_DAYS - 1), nights):
        overlap = min(k + WINDOW_DAYS, nights) - max(k, 0)
        candidates.append((-overlap, -k))
    ordered = [first + timedelta(days=-minus_k) for _, minus_k in sorted(candidates)]
    picked = [ordered[i % len(ordered)] for i in range(runs)]
    return [(start, start + timedelta(days=WINDOW_DAYS - 1)) for start in picked]


@dataclass(frozen=True)
class Week:
    """The last nights of the scenario: the week the naive baseline, the rebuild and the
    agreement check are about (the nights before it are history)."""

    first: date
    last: date


@dataclass
class World:
    """What the bench created in the database for the scenario."""

    shift_ids: dict[tuple[int, date], int] = field(default_factory=dict)
    token: str = ""


def world_create(scenario: Scenario) -> World:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from maraudes.models import Membership, Role, TeamMode
    from maraudes.services import organization_create, shift_end, shift_start, team_create

    world = World()
    with transaction.atomic():
        org = organization_create(name="Banc d'essai")
        user = get_user_model().objects.create_user(username="bench", password=None)
        Membership.objects.create(user=user, organization=org, role=Role.COORDINATOR)
        world.token = Token.objects.create(user=user).key
        teams = {
            plan.index: team_create(
                organization=org,
                name=plan.name,
                mode=TeamMode.VEHICLE if plan.mode == "vehicle" else TeamMode.FOOT,
            )
            for plan in scenario.teams
        }
        for plan in scenario.shifts:
            shift = shift_start(team=teams[plan.team], by=user, started_at=plan.started_at).shift
            shift_end(shift=shift, ended_at=plan.ended_at)
            world.shift_ids[(plan.team, plan.night)] = shift.pk
    return world


def fixes_of(plan: ShiftPlan, start: int, stop: int) -> list:
    from maraudes.fixes import Fix

    return [
        Fix(t=f.t, lon=f.lon, lat=f.lat, accuracy=f.accuracy, speed=f.speed, index=i)
        for i, f in enumerate(plan.fixes(start, stop))
    ]


def split(scenario: Scenario, *, http_fixes: int, incremental_batches: int) -> dict:
    """Shifts of the last night set aside for HTTP and for the 30-fix batches; the service
    loads the rest. Every shift ends up in the week, whichever door it came through."""
    last = [s for s in scenario.shifts if s.night == scenario.nights[-1]]
    per_shift = max(scenario.fixes_per_shift, 1)
    n_incr = min(math.ceil(incremental_batches * INCREMENTAL_BATCH / per_shift), len(last) // 4)
    n_http = min(math.ceil(http_fixes / per_shift), len(last) // 2)
    incremental = last[: max(n_incr, 1)]
    http_ = last[len(incremental) : len(incremental) + max(n_http, 1)]
    held = {id(s) for s in incremental + http_}
    service = [s for s in scenario.shifts if id(s) not in held]
    return {"service": service, "http": http_, "incremental": incremental}


# --- 1. Service ingestion -------------------------------------------------------------------


def bench_service(world: World, shifts: list[ShiftPlan], *, callers: int = 1) -> dict:
    """`track_ingest` of batches of 1,000, night by night, the teams of a night taking turns.

    With `callers` > 1, that many processes (forked, each with its own database connection)
    call the service at once, as the web workers (processes) of a deployment do: threads of one
    process would share its interpreter lock, which no deployment does. They take the night's
    batches as workers take requests: a free caller takes the next batch waiting; a team sends
    its next batch once the previous one was answered (so a shift's batches go in order, never
    two at once), and it joins the end of the queue. Shifts dealt out to the callers
    beforehand left one caller working alone at the end of each night while the other idled
    (up to a tenth of the night, measured). The fixes are built before the processes start;
    the clock runs from a barrier until the last batch is answered."""
    import multiprocessing

    from django.db import connection

    from maraudes.models import Shift
    from zones.services import track_ingest

    by_id = Shift.objects.select_related("team").in_bulk(world.shift_ids.values())
    elapsed = 0.0
    count = 0

    def batches_of(plans: list[ShiftPlan]) -> list[list[tuple[Shift, list]]]:
        return [
            [
                (by_id[world.shift_ids[(plan.team, plan.night)]], fixes_of(plan, a, b))
                for a, b in batches(plan, SERVICE_BATCH)
            ]
            for plan in plans
        ]

    def ingest(shift: Shift, fixes: list) -> int:
        return len(track_ingest(shift=shift, fixes=fixes).accepted)

    def caller(teams: list[list[tuple[Shift, list]]], queue, left, start, results) -> None:
        """Take (team, batch) from `queue` until told to stop (None); put the team's next
        batch back; the last batch of the last team tells every caller to stop."""
        done = 0
        try:
            start.wait()
            while (item := queue.get()) is not None:
                team, k = item
                done += ingest(*teams[team][k])
                if k + 1 < len(teams[team]):
                    queue.put((team, k + 1))
                    continue
                with left.get_lock():
                    left.value -= 1
                    if left.value == 0:
                        for _ in range(callers):
                            queue.put(None)
            results.put(("ok", done))
        except BaseException as exc:
            results.put(("error", repr(exc)))
            for _ in range(callers):
                queue.put(None)
        finally:
            connection.close()

    fork = multiprocessing.get_context("fork")
    for night in sorted({s.night for s in shifts}):
        teams = [team for team in batches_of([p for p in shifts if p.night == night]) if team]
        if callers == 1:
            jobs = list(round_robin(teams))
            t0 = time.perf_counter()
            count += sum(ingest(shift, fixes) for shift, fixes in jobs)
            elapsed += time.perf_counter() - t0
        else:
            # Each process opens its own connection: none may inherit a socket of this one,
            # from its pool either (the bench runs without one; the tests' settings have one).
            connection.close()
            connection.close_pool()
            queue = fork.SimpleQueue()  # no feeder thread: safe to fill before the fork
            for team in range(len(teams)):
                queue.put((team, 0))
            left = fork.Value("i", len(teams))
            start = fork.Barrier(callers + 1)
            results = fork.Queue()
            processes = [
                fork.Process(target=caller, args=(teams, queue, left, start, results))
                for _ in range(callers)
            ]
            for process in processes:
                process.start()
            start.wait()
            t0 = time.perf_counter()
            outcomes = [results.get() for _ in processes]
            elapsed += time.perf_counter() - t0
            for process in processes:
                process.join()
            errors = [detail for status, detail in outcomes if status == "error"]
            if errors:
                raise RuntimeError(f"service ingestion failed: {errors[0]}")
            count += sum(detail for _status, detail in outcomes)
        say(f"  service: night {night} loaded, {count:,} fixes in {elapsed:.1f} s")
    return {
        "ingest_service_fixes_per_s": round(count / elapsed) if elapsed else 0,
        "ingest_service_fixes": count,
        "ingest_service_s": round(elapsed, 2),
        "ingest_service_callers": callers,
    }


# --- 2. HTTP ingestion ----------------------------------------------------------------------


def bench_http(
    world: World, shifts: list[ShiftPlan], *, database_url: str, workers: int, clients: int
) -> dict:
    # The bodies are encoded before the clock starts: it is the server being measured.
    jobs: list[list[tuple[int, bytes, int]]] = [[] for _ in range(clients)]
    for n, plan in enumerate(shifts):
        shift_id = world.shift_ids[(plan.team, plan.night)]
        for a, b in batches(plan, HTTP_BATCH):
            body = {
                "fixes": [
                    {
                        "t": f.t.isoformat(),
                        "lon": f.lon,
                        "lat": f.lat,
                        "accuracy": f.accuracy,
                        "speed": f.speed,
                    }
                    for f in plan.fixes(a, b)
                ]
            }
            jobs[n % clients].append((shift_id, json.dumps(body).encode(), b - a))
    headers = {"Authorization": f"Token {world.token}", "Content-Type": "application/json"}
    # As in production: DEBUG off, psycopg's pool under ASGI.
    env = django_env(database_url, DEBUG="false", SECRET_KEY=BENCH_SECRET_KEY)
    env.pop("DB_POOL", None)
    log = Path(tempfile.mkstemp(prefix="maraudes-bench-uvicorn-", suffix=".log")[1])
    server = uvicorn_start(env=env, log=log, workers=workers)
    port = server.port
    accepted = [0] * clients
    errors: list[str] = []
    latencies: list[float] = []

    def client(i: int, start: threading.Barrier) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        # Warm up the worker (imports, pool) outside the clock.
        for _ in range(2):
            conn.request("GET", f"/api/v1/shifts/{jobs[i][0][0]}/", headers=headers)
            conn.getresponse().read()
        start.wait()
        for shift_id, body, _n in jobs[i]:
            t0 = time.perf_counter()
            conn.request("POST", f"/api/v1/shifts/{shift_id}/positions/", body, headers)
            response = conn.getresponse()
            data = response.read()
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                errors.append(f"{response.status}: {data[:300]!r}")
                continue
            accepted[i] += json.loads(data)["accepted"]
        conn.close()

    try:
        active = [i for i in range(clients) if jobs[i]]
        barrier = threading.Barrier(len(active) + 1)
        threads = [threading.Thread(target=client, args=(i, barrier)) for i in active]
        for thread in threads:
            thread.start()
        barrier.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.stop()
    if errors:
        raise RuntimeError(f"{len(errors)} HTTP errors, first: {errors[0]}")
    sent = sum(n for job in jobs for _, _, n in job)
    total = sum(accepted)
    if total != sent:
        raise RuntimeError(f"HTTP: {sent} fixes sent, {total} accepted")
    return {
        "ingest_http_fixes_per_s": round(total / elapsed),
        "ingest_http_fixes": total,
        "ingest_http_request_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "ingest_http_workers": workers,
        "ingest_http_clients": len(active),
    }


# --- 3. Incremental 30-fix batches ----------------------------------------------------------


def bench_incremental(world: World, shifts: list[ShiftPlan]) -> dict:
    """`track_ingest` of 30-fix batches in time order, timed whole; its two steps (storing
    the fixes, updating coverage) timed too, through wrappers set here for this phase."""
    import zones.services as zone_services
    from maraudes.models import Shift

    by_id = Shift.objects.select_related("team").in_bulk(world.shift_ids.values())
    steps: dict[str, list[float]] = {"positions_record": [], "coverage_update": []}

    def timed(name: str, function: Callable) -> Callable:
        def wrapper(**kwargs):
            t0 = time.perf_counter()
            try:
                return function(**kwargs)
            finally:
                steps[name].append(time.perf_counter() - t0)

        return wrapper

    originals = {name: getattr(zone_services, name) for name in steps}
    whole: list[float] = []
    try:
        for name, function in originals.items():
            setattr(zone_services, name, timed(name, function))
        groups = [[(plan, a, b) for a, b in batches(plan, INCREMENTAL_BATCH)] for plan in shifts]
        for plan, a, b in round_robin(groups):
            shift = by_id[world.shift_ids[(plan.team, plan.night)]]
            fixes = fixes_of(plan, a, b)
            t0 = time.perf_counter()
            zone_services.track_ingest(shift=shift, fixes=fixes)
            whole.append(time.perf_counter() - t0)
    finally:
        for name, function in originals.items():
            setattr(zone_services, name, function)

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 2) if values else 0.0

    return {
        # The figure: the coverage update once the batch is stored (zones.services.
        # coverage_update: neighbours, buffers, presence, pieces, zone-days, weekly whites).
        "incremental_30_fixes_p50_ms": ms(steps["coverage_update"], 50),
        "incremental_30_fixes_p95_ms": ms(steps["coverage_update"], 95),
        # What a client waits for in all: storing the fixes, the update, the live events.
        "incremental_30_fixes_ingest_p50_ms": ms(whole, 50),
        "incremental_30_fixes_ingest_p95_ms": ms(whole, 95),
        "incremental_30_fixes_positions_record_p50_ms": ms(steps["positions_record"], 50),
        "incremental_30_fixes_batches": len(whole),
    }


# --- 4. White zones -------------------------------------------------------------------------


def bench_white_zones(scenario: Scenario, week: Week, *, suffix: str = "") -> dict:
    from zones.selectors import white_zones

    white_zones(day_from=week.first, day_to=week.last, kind="quartier")  # warm the caches
    runs = []
    full_week = []
    nights = set(scenario.nights)
    for day_from, day_to in windows(scenario.nights[0], len(scenario.nights)):
        t0 = time.perf_counter()
        result = white_zones(day_from=day_from, day_to=day_to, kind="quartier")
        elapsed = time.perf_counter() - t0
        runs.append(elapsed)
        held = sum(day_from + timedelta(days=n) in nights for n in range(WINDOW_DAYS))
        if held == WINDOW_DAYS:
            full_week.append(elapsed)
        assert all(w.coverage.kind == "quartier" for w in result)
    return {
        f"white_zones_week_p50_ms{suffix}": round(percentile(runs, 50) * 1000, 1),
        f"white_zones_week_p95_ms{suffix}": round(percentile(runs, 95) * 1000, 1),
        f"white_zones_full_week_p50_ms{suffix}": (
            round(percentile(full_week, 50) * 1000, 1) if full_week else None
        ),
        f"white_zones_full_week_windows{suffix}": len(full_week),
    }


# --- 5. Naive baseline ----------------------------------------------------------------------

NAIVE_SQL = """
WITH tracks AS (
  SELECT ST_MakeLine(p.point ORDER BY p.recorded_at) AS g
  FROM maraudes_position p
  WHERE p.recorded_at >= %s AND p.recorded_at < %s
  GROUP BY p.shift_id
), covered AS (
  SELECT ST_Union(ST_Buffer(g, 100)) AS u FROM tracks
)
SELECT count(*), sum(ST_Area(ST_Difference(z.geom, covered.u)))
FROM zones_zone z CROSS JOIN covered
WHERE z.kind = 'quartier'
"""


def bench_naive(week: Week, runs: int) -> dict:
    """One PostGIS query: buffer every raw track of the week by 100 m, union them, and take
    each quartier minus that union. No filter, no segment rule: the simplest honest answer."""
    from django.db import connection

    from maraudes.days import service_day_bounds

    start = service_day_bounds(week.first)[0]
    end = service_day_bounds(week.last)[1]
    times = []
    white = 0.0
    for _ in range(runs):
        with connection.cursor() as cursor:
            t0 = time.perf_counter()
            cursor.execute(NAIVE_SQL, [start, end])
            zones, white = cursor.fetchone()
            times.append(time.perf_counter() - t0)
        say(f"  naive: {times[-1]:.1f} s, {zones} quartiers, white {white / 1e6:.2f} km²")
    return {
        "naive_baseline_ms": round(min(times) * 1000),
        "naive_white_km2": round(white / 1e6, 3),
    }


# --- 6. Rebuild and agreement ---------------------------------------------------------------


def coverage_snapshot(week: Week) -> dict:
    """White area per quartier over the week, and covered area per (zone, day)."""
    from django.db import connection

    from zones.selectors import zones_coverage

    white = {
        row.code: (row.white_m2, row.area_m2)
        for row in zones_coverage(day_from=week.first, day_to=week.last, kind="quartier")
    }
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT z.code, c.day, c.covered_m2, z.area_m2 FROM zones_zonedaycoverage c
               JOIN zones_zone z ON z.id = c.zone_id WHERE c.day BETWEEN %s AND %s""",
            [week.first, week.last],
        )
        days = {(code, day): (covered, area) for code, day, covered, area in cursor.fetchall()}
    return {"week": white, "days": days}


def agreement(before: dict, after: dict) -> dict:
    """Compare the incremental path (before) with the rebuild (after), as shares of areas."""
    worst_week, worst_day = 0.0, 0.0
    bad: list[str] = []
    for code, (white, area) in before["week"].items():
        diff = abs(white - after["week"][code][0]) / area
        worst_week = max(worst_week, diff)
        if diff > AGREEMENT:
            bad.append(f"quartier {code}: white {white:.0f} vs {after['week'][code][0]:.0f} m²")
    for key in before["days"].keys() | after["days"].keys():
        # A zone-day present on one side only was covered by nothing on the other.
        covered_before, area = before["days"].get(key, (0.0, 0.0))
        covered_after, area_after = after["days"].get(key, (0.0, 0.0))
        diff = abs(covered_before - covered_after) / max(area, area_after)
        worst_day = max(worst_day, diff)
        if diff > AGREEMENT:
            bad.append(
                f"zone-day {key[0]} {key[1]}: {covered_before:.0f} vs {covered_after:.0f} m²"
            )
    return {
        "rebuild_vs_incremental_max_diff_pct": round(worst_week * 100, 4),
        "rebuild_vs_incremental_zone_day_max_diff_pct": round(worst_day * 100, 4),
        "rebuild_vs_incremental_ok": not bad,
        "_disagreements": bad,
    }


def bench_rebuild(week: Week) -> dict:
    from zones.services import coverage_rebuild

    t0 = time.perf_counter()
    result = coverage_rebuild(day_from=week.first, day_to=week.last)
    elapsed = time.perf_counter() - t0
    return {
        "rebuild_week_s": round(elapsed, 2),
        "rebuild_shift_days": result.shift_days,
        "rebuild_zone_days": result.zone_days,
    }


# --- Main -----------------------------------------------------------------------------------


def report(results: dict, disagreements: list[str]) -> None:
    print()
    print(f"{'figure':<52} {'measured':>14} {'target':>18}")
    print("-" * 92)
    misses = []
    for target in TARGETS:
        value = results.get(target.key)
        if value is None:
            continue
        bounded = math.isfinite(target.limit)
        verdict = ("PASS" if target.passes(value) else "MISS") if bounded else ""
        if verdict == "MISS":
            misses.append(target.key)
        target_text = target.text() if bounded else "—"
        label = target.label.format(callers=results.get("ingest_service_callers", "?"))
        print(f"{label:<52} {value:>14,.1f} {target_text:>18}  {verdict}")
    print("-" * 92)
    agree = results["rebuild_vs_incremental_ok"]
    print(
        f"{'rebuild = incremental (max diff, % of zone area)':<52} "
        f"{results['rebuild_vs_incremental_max_diff_pct']:>14.4f} "
        f"{'≤ 0.1 %':>18}  {'PASS' if agree else 'MISS'}"
    )
    for line in disagreements[:20]:
        print(f"  disagreement: {line}")
    print(
        f"{results['cores']} cores · {results['scenario_teams']} teams × "
        f"{results['scenario_nights']} nights (+ {results['scenario_history_nights']} of "
        f"history) × {results['scenario_fixes']} fix slots = "
        f"{results['scenario_fix_count']:,} fixes · load average "
        f"{results['load_average_start']} at start, {results['load_average_end']} at the end"
    )
    print(f"Targets missed: {', '.join(misses)}" if misses else "All targets reached.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark of the coverage engine.")
    parser.add_argument("--teams", type=int, default=DEFAULT_TEAMS)
    parser.add_argument("--nights", type=int, default=DEFAULT_NIGHTS, help="nights of the week")
    parser.add_argument(
        "--history-nights",
        type=int,
        default=WINDOW_RUNS - 1,
        help="nights before the week, so that the white-zone windows are full weeks",
    )
    parser.add_argument("--fixes", type=int, default=DEFAULT_FIXES, help="fix slots per shift")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--service-callers",
        type=int,
        default=2,
        help="concurrent callers of the service while loading (processes, each with its own "
        "connection); default 2, one per core, as the two web workers of the HTTP figure",
    )
    parser.add_argument("--http-fixes", type=int, default=40_000, help="fixes sent over HTTP")
    parser.add_argument("--http-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--http-clients", type=int, default=2, help="concurrent client threads")
    parser.add_argument("--incremental-batches", type=int, default=200)
    parser.add_argument(
        "--naive-runs", type=int, default=1, help="0 skips the naive baseline (minutes long)"
    )
    parser.add_argument("--db-host", help="default: the local cluster's socket, or 127.0.0.1")
    parser.add_argument(
        "--db-port", type=int, default=int(os.environ.get("MARAUDES_PG_PORT", "54329"))
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.db_host = args.db_host or local_host(args.db_port)

    say(f"Database {DB_NAME} on {args.db_host}:{args.db_port} (dropped and created)")
    database_url = database_create(host=args.db_host, port=args.db_port, name=DB_NAME)
    django_setup(database_url)

    from django.core.management import call_command
    from django.db import connection

    from tests.support.paris import load_zones

    call_command("migrate", verbosity=0, interactive=False)
    zones = load_zones()
    say(f"{len(zones)} quartiers loaded")

    t0 = time.perf_counter()
    scenario = generate(
        teams=args.teams,
        nights=args.history_nights + args.nights,
        fixes=args.fixes,
        seed=args.seed,
    )
    week = Week(first=scenario.nights[-args.nights], last=scenario.nights[-1])
    say(
        f"Scenario: {len(scenario.shifts)} shifts, {scenario.fix_count:,} fixes "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    world = world_create(scenario)
    parts = split(
        scenario, http_fixes=args.http_fixes, incremental_batches=args.incremental_batches
    )

    results: dict = {
        "cores": os.cpu_count(),
        "scenario_teams": args.teams,
        "scenario_nights": args.nights,
        "scenario_history_nights": args.history_nights,
        "scenario_fixes": args.fixes,
        "scenario_fix_count": scenario.fix_count,
        "scenario_week_fix_count": sum(len(s) for s in scenario.shifts if s.night >= week.first),
        "scenario_week": f"{week.first}/{week.last}",
        "scenario_seed": args.seed,
        **git_state(),
        # Other work on the machine skews every figure: say how busy it was.
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    say(f"1. Service ingestion: {sum(len(s) for s in parts['service']):,} fixes")
    results |= bench_service(world, parts["service"], callers=args.service_callers)
    say(f"2. HTTP ingestion: {sum(len(s) for s in parts['http']):,} fixes")
    results |= bench_http(
        world,
        parts["http"],
        database_url=database_url,
        workers=args.http_workers,
        clients=args.http_clients,
    )
    say(f"3. Incremental: {len(parts['incremental'])} shifts in 30-fix batches")
    results |= bench_incremental(world, parts["incremental"])

    with connection.cursor() as cursor:
        # What autovacuum would have done on a live database by now.
        cursor.execute("ANALYZE")
    say(f"4. White zones over {WINDOW_RUNS} windows")
    results |= bench_white_zones(scenario, week)
    incremental = coverage_snapshot(week)
    if args.naive_runs > 0:
        say("5. Naive baseline")
        results |= bench_naive(week, args.naive_runs)
        results["speedup_vs_naive"] = round(
            results["naive_baseline_ms"] / max(results["white_zones_week_p50_ms"], 1e-3), 1
        )
    say("6. Rebuild of the week")
    results |= bench_rebuild(week)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    results |= agreement(incremental, coverage_snapshot(week))
    disagreements = results.pop("_disagreements")
    say(f"7. White zones over {WINDOW_RUNS} windows, after the rebuild")
    results |= bench_white_zones(scenario, week, suffix="_after_rebuild")
    results["load_average_end"] = round(os.getloadavg()[0], 2)
    results["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    report(results, disagreements)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    say(f"Written {args.output}")
    # Missed speed targets are reported above; a wrong answer fails the command.
    return 0 if results["rebuild_vs_incremental_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
