"""Drive demo teams through the real HTTP API, so that a demo map moves and load is made.

    manage.py simulate --teams 3 --interval 5 --duration 30
    manage.py simulate --base-url http://127.0.0.1:8000 --username demo-coordinateur

Each team checks in (`POST /api/v1/shifts/`), walks inside a zone of its own (tonight's
assignment when the API has one, else a zone drawn for it from `GET /api/v1/zones/`) and sends
a fix every `--interval` seconds (`POST /api/v1/shifts/{id}/positions/`), logs an encounter
now and then (`POST /api/v1/encounters/`, with a fresh UUID), and checks out at the end or
on Ctrl-C. Everything goes over HTTP with a token, as a phone would: nothing is written to
the database from here, so the live map, the coverage and the benchmarks see real traffic.
Only the standard library speaks HTTP (http.client): no dependency for a demo tool.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from maraudes.days import service_day
from maraudes.models import Need

METRES_PER_DEGREE = 111_320.0
SPEED_M_S = {"foot": 1.2, "vehicle": 6.0}
NEEDS = [Need.FOOD, Need.SHELTER, Need.HYGIENE, Need.HEALTH, Need.CLOTHING, Need.SOCIAL_CONTACT]
HTTP_TIMEOUT_S = 30


class ApiError(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"HTTP {status} : {body}")
        self.status = status
        self.body = body


class Api:
    """A JSON client on one keep-alive connection (one per thread: http.client is not
    thread-safe)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandError(f"Adresse invalide : {base_url} (attendu http://hôte:port).")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            kind = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            self.conn = kind(self.host, self.port, timeout=HTTP_TIMEOUT_S)
        return self.conn

    def request(self, method: str, path: str, body: dict | None = None) -> object:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: once more on a new one.
                self.close()
                if attempt == 2:
                    raise
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw[:200].decode("utf-8", "replace")
        if not 200 <= response.status < 300:
            raise ApiError(response.status, payload)
        return payload

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _fr(value: float) -> str:
    """A number as French readers write it: 0,5 not 0.5."""
    return f"{value:g}".replace(".", ",")


# --- Walking inside a zone (WGS84 in, WGS84 out; metres in a local plane) ---------------------


def _in_ring(x: float, y: float, ring: list[list[float]]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def in_multipolygon(lon: float, lat: float, polygons: list) -> bool:
    """Even-odd rule over every ring: holes count out."""
    return any(sum(_in_ring(lon, lat, ring) for ring in polygon) % 2 == 1 for polygon in polygons)


def polygons_of(geometry: dict) -> list:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    raise ValueError(f"géométrie {geometry['type']} : un polygone était attendu")


@dataclass
class Zone:
    id: int
    code: str
    name: str
    polygons: list

    @classmethod
    def from_feature(cls, feature: dict) -> Zone:
        props = feature.get("properties") or {}
        return cls(
            id=feature.get("id") or props.get("id"),
            code=props.get("code", "?"),
            name=props.get("name", "?"),
            polygons=polygons_of(feature["geometry"]),
        )

    def bbox(self) -> tuple[float, float, float, float]:
        points = [p for polygon in self.polygons for p in polygon[0]]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), min(ys), max(xs), max(ys)

    def contains(self, lon: float, lat: float) -> bool:
        return in_multipolygon(lon, lat, self.polygons)

    def random_point(self, rng: random.Random) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox()
        for _ in range(10_000):
            lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if self.contains(lon, lat):
                return lon, lat
        ring = self.polygons[0][0]
        return ring[0][0], ring[0][1]  # a sliver: its first vertex, on the boundary


@dataclass
class Walker:
    """Walks straight to a random point of the zone, then to another, at a steady speed."""

    zone: Zone
    speed: float  # m/s
    rng: random.Random
    lon: float = 0.0
    lat: float = 0.0
    target: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.lon, self.lat = self.zone.random_point(self.rng)
        self.target = self.zone.random_point(self.rng)

    def step(self, seconds: float) -> tuple[float, float]:
        scale_x = METRES_PER_DEGREE * math.cos(math.radians(self.lat))
        dx = (self.target[0] - self.lon) * scale_x
        dy = (self.target[1] - self.lat) * METRES_PER_DEGREE
        distance = math.hypot(dx, dy)
        travel = self.speed * seconds
        if distance <= travel:
            self.lon, self.lat = self.target
            self.target = self.zone.random_point(self.rng)
            return self.lon, self.lat
        lon = self.lon + dx / distance * travel / scale_x
        lat = self.lat + dy / distance * travel / METRES_PER_DEGREE
        if not self.zone.contains(lon, lat):  # a concave zone: turn towards another point
            self.target = self.zone.random_point(self.rng)
            return self.lon, self.lat
        self.lon, self.lat = lon, lat
        return lon, lat


# --- The simulation -------------------------------------------------------------------------


@dataclass
class TeamRun:
    team: dict
    zone: Zone
    walker: Walker
    shift_id: int | None = None
    started_at: datetime | None = None
    started_clock: float = 0.0
    fixes: int = 0
    rejected: int = 0
    encounters: int = 0
    errors: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Simule des équipes de maraude à travers la vraie API HTTP : début de maraude, un "
        "point GPS toutes les quelques secondes dans une zone, des rencontres, fin de maraude."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--teams", type=int, default=3, help="nombre d'équipes (défaut 3)")
        parser.add_argument(
            "--interval", type=float, default=5.0, help="secondes entre deux points (défaut 5)"
        )
        parser.add_argument(
            "--duration", type=float, default=30.0, help="durée en minutes (défaut 30)"
        )
        parser.add_argument(
            "--base-url", default=settings.SITE_URL, help="serveur (défaut : SITE_URL, %(default)s)"
        )
        parser.add_argument("--username", default="demo-coordinateur")
        parser.add_argument(
            "--password", default=None, help="défaut : DEMO_PASSWORD (le mot de passe de la démo)"
        )
        parser.add_argument(
            "--encounter-every",
            type=float,
            default=180.0,
            help="secondes entre deux rencontres d'une équipe, en moyenne (défaut 180)",
        )
        parser.add_argument("--seed", type=int, default=None, help="graine du tirage")

    def handle(self, *args, **options) -> None:
        teams_wanted: int = options["teams"]
        interval: float = options["interval"]
        duration_s = options["duration"] * 60
        encounter_every: float = options["encounter_every"]
        if teams_wanted < 1:
            raise CommandError("--teams : au moins une équipe.")
        if interval <= 0 or duration_s <= 0 or encounter_every <= 0:
            raise CommandError("--interval, --duration et --encounter-every doivent être > 0.")
        self.verbosity = options["verbosity"]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        rng = random.Random(options["seed"])
        base = options["base_url"].rstrip("/")
        password = (
            options["password"] if options["password"] is not None else settings.DEMO_PASSWORD
        )

        token = self._login(base, options["username"], password)
        api = Api(base, token)
        teams = self._teams(api, teams_wanted)
        zones = self._zones(api)
        assigned = self._assignments(api, zones)
        runs = []
        for team in teams:
            own = assigned.get(team["id"]) or [rng.choice(zones)]
            zone = rng.choice(own)
            speed = SPEED_M_S.get(team.get("mode"), SPEED_M_S["foot"])
            walker = Walker(zone=zone, speed=speed, rng=random.Random(rng.random()))
            runs.append(TeamRun(team=team, zone=zone, walker=walker))
        api.close()

        self.say(
            f"{len(runs)} équipe(s) sur {base} : un point toutes les {_fr(interval)} s pendant "
            f"{_fr(options['duration'])} min. Ctrl-C pour arrêter (chaque équipe termine sa maraude)."
        )
        threads = [
            threading.Thread(
                target=self._drive,
                args=(run, base, token, interval, duration_s, encounter_every, i / len(runs)),
                name=f"simulate-{run.team['id']}",
                daemon=True,
            )
            for i, run in enumerate(runs)
        ]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.say("Arrêt demandé : fin des maraudes en cours…")
            self.stop.set()
            for thread in threads:
                thread.join(timeout=HTTP_TIMEOUT_S)
        fixes = sum(r.fixes for r in runs)
        encounters = sum(r.encounters for r in runs)
        rejected = sum(r.rejected for r in runs)
        errors = sum(len(r.errors) for r in runs)
        summary = f"Simulation terminée : {fixes} points envoyés, {encounters} rencontre(s)"
        if rejected:
            summary += f", {rejected} point(s) refusé(s)"
        if errors:
            summary += f", {errors} erreur(s)"
        self.stdout.write(self.style.SUCCESS(summary + "."))

    # --- Setting up -------------------------------------------------------------------------

    def _login(self, base: str, username: str, password: str) -> str:
        api = Api(base)
        try:
            body = api.request(
                "POST", "/api/v1/auth/token/", {"username": username, "password": password}
            )
        except ApiError as error:
            raise CommandError(
                f"Connexion refusée pour « {username} » (HTTP {error.status}) : vérifiez "
                "--username et --password (la démo est-elle chargée ? manage.py demo_load)."
            ) from None
        except OSError as error:
            raise CommandError(
                f"Impossible de joindre {base} ({error}) : le serveur tourne-t-il ? (make run)"
            ) from None
        finally:
            api.close()
        self.say(f"Connecté à {base} en tant que {username}.")
        return body["token"]

    def _teams(self, api: Api, wanted: int) -> list[dict]:
        teams = [t for t in api.request("GET", "/api/v1/teams/") if t.get("is_active", True)]
        if len(teams) < wanted:
            raise CommandError(
                f"{wanted} équipe(s) demandée(s), {len(teams)} visible(s) pour ce compte : "
                "baissez --teams ou créez des équipes."
            )
        return teams[:wanted]

    def _zones(self, api: Api) -> list[Zone]:
        collection = api.request("GET", "/api/v1/zones/")
        zones = [Zone.from_feature(f) for f in collection.get("features", []) if f.get("geometry")]
        if not zones:
            raise CommandError(
                "Aucune zone : chargez la démo (manage.py demo_load) ou importez des zones "
                "(manage.py import_zones)."
            )
        return zones

    def _assignments(self, api: Api, zones: list[Zone]) -> dict[int, list[Zone]]:
        """Tonight's assignments, team -> zones, when the API has them; else nothing."""
        day = service_day(timezone.now()).isoformat()
        try:
            body = api.request("GET", f"/api/v1/assignments/?day={day}")
        except (ApiError, OSError):
            return {}
        items = body.get("results", body.get("features", [])) if isinstance(body, dict) else body
        by_id = {z.id: z for z in zones}
        by_code = {z.code: z for z in zones}
        out: dict[int, list[Zone]] = {}
        for item in items if isinstance(items, list) else []:
            row = {**item.get("properties", {}), **item} if isinstance(item, dict) else {}
            zone = by_id.get(row.get("zone")) or by_code.get(
                row.get("zone_code") or row.get("code")
            )
            if zone is not None and row.get("team") is not None:
                out.setdefault(row["team"], []).append(zone)
        return out

    # --- One team ---------------------------------------------------------------------------

    def _drive(
        self,
        run: TeamRun,
        base: str,
        token: str,
        interval: float,
        duration_s: float,
        encounter_every: float,
        offset: float,
    ) -> None:
        api = Api(base, token)
        name = run.team["name"]
        rng = run.walker.rng
        try:
            started = api.request("POST", "/api/v1/shifts/", {"team": run.team["id"]})
            run.shift_id = started["id"]
            run.started_at = datetime.fromisoformat(started["started_at"])
            run.started_clock = time.monotonic()
            self.say(
                f"{name} : début de maraude n° {run.shift_id}, zone « {run.zone.name} » "
                f"({run.zone.code})"
            )
        except (ApiError, OSError) as error:
            self.fail(run, f"{name} : début de maraude impossible ({error})")
            api.close()
            return
        deadline = run.started_clock + duration_s
        # Teams spread over the interval rather than all sending at the same instant.
        next_fix = run.started_clock + offset * interval
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                if now < next_fix:
                    self.stop.wait(min(next_fix, deadline) - now)
                    continue
                next_fix += interval
                lon, lat = run.walker.step(interval)
                self._fix(api, run, lon, lat)
                if rng.random() < interval / encounter_every:
                    self._encounter(api, run, lon, lat)
        finally:
            try:
                api.request("POST", f"/api/v1/shifts/{run.shift_id}/end/", {})
                self.say(
                    f"{name} : fin de maraude n° {run.shift_id} ({run.fixes} points, "
                    f"{run.encounters} rencontre(s))"
                )
            except (ApiError, OSError) as error:
                self.fail(run, f"{name} : fin de maraude impossible ({error})")
            api.close()

    def _now(self, run: TeamRun) -> datetime:
        """The server's clock, as read at check-in, plus the time since: fixes never fall
        before the shift started, whatever this machine's clock says."""
        assert run.started_at is not None
        return run.started_at + timedelta(seconds=time.monotonic() - run.started_clock)

    def _fix(self, api: Api, run: TeamRun, lon: float, lat: float) -> None:
        accuracy = round(run.walker.rng.uniform(4, 15), 1)
        fix = {
            "t": self._now(run).isoformat(),
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "accuracy": accuracy,
            "speed": run.walker.speed,
        }
        try:
            result = api.request(
                "POST", f"/api/v1/shifts/{run.shift_id}/positions/", {"fixes": [fix]}
            )
        except (ApiError, OSError) as error:
            self.fail(run, f"{run.team['name']} : point non envoyé ({error})")
            return
        run.fixes += result.get("accepted", 0)
        if result.get("rejected"):
            run.rejected += len(result["rejected"])
            reasons = "; ".join(r["reason"] for r in result["rejected"])
            self.say(f"{run.team['name']} : point refusé ({reasons})", level=1)
        else:
            self.say(
                f"{run.team['name']} : point {lat:.5f}, {lon:.5f} (± {_fr(accuracy)} m)", level=2
            )

    def _encounter(self, api: Api, run: TeamRun, lon: float, lat: float) -> None:
        rng = run.walker.rng
        needs = rng.sample(NEEDS, k=rng.choice((1, 1, 2)))
        people = rng.choice((1, 1, 1, 2, 3))
        body = {
            "client_id": str(uuid.uuid4()),
            "shift": run.shift_id,
            "seen_at": self._now(run).isoformat(),
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "people_count": people,
            "needs": [str(n) for n in needs],
        }
        try:
            api.request("POST", "/api/v1/encounters/", body)
        except (ApiError, OSError) as error:
            self.fail(run, f"{run.team['name']} : rencontre non enregistrée ({error})")
            return
        run.encounters += 1
        labels = ", ".join(str(n.label) for n in needs)
        self.say(f"{run.team['name']} : rencontre, {people} personne(s) ({labels})")

    # --- Output -----------------------------------------------------------------------------

    def say(self, message: str, *, level: int = 1) -> None:
        if self.verbosity < level:
            return
        with self.lock:
            self.stdout.write(f"[{timezone.localtime():%H:%M:%S}] {message}")

    def fail(self, run: TeamRun, message: str) -> None:
        run.errors.append(message)
        with self.lock:
            self.stderr.write(f"[{timezone.localtime():%H:%M:%S}] {message}")
