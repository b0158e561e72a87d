"""A deterministic week of Paris outreach nights, for the benchmark.

Teams walk (or drive) street-grid routes over the 80 real quartiers of Paris, one fix every
10 seconds for about four hours a night, with the faults phones produce: poor accuracy, rare
GPS jumps, a few gaps of several minutes. Everything is drawn from `random.Random` seeded by
strings (`"{seed}:{team}:{night}"`), so the same seed gives the same fixes on any machine, and
a small scenario is a prefix of a bigger one: team 3's second night is the same whatever the
number of teams or nights.

Routes are generated in Lambert-93 (metres) and transformed to WGS84 with pyproj, as a phone
would send them. No Django here: the generator runs (and is tested) without a database.

    python -m bench.scenario --teams 5 --nights 2 --fixes 200   # prints a summary
"""

from __future__ import annotations

import argparse
import json
import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

# ../shared/data beside the checkout: real Paris data, read in place, never copied.
QUARTIERS = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "boundaries"
    / "paris_quartiers_administratifs.geojson"
)
PARIS_TZ = ZoneInfo("Europe/Paris")
L93 = 2154

DEFAULT_SEED = 2026
DEFAULT_TEAMS = 60
DEFAULT_NIGHTS = 7
DEFAULT_FIXES = 1400
# A Monday in the past: shifts and fixes must not be in the future, and a fixed date keeps
# the scenario identical from one run to the next. No clock change in that week.
DEFAULT_FIRST_NIGHT = date(2025, 11, 17)
FIX_INTERVAL_S = 10

# One team in ten is a vehicle team (a "maraude véhiculée"): teams 4, 14, 24…
VEHICLE_EVERY, VEHICLE_OFFSET = 10, 4

# Fault rates, per fix unless said otherwise.
POOR_ACCURACY_RATE = 0.03  # accuracy > 50 m: stored, then left out of coverage
JUMP_RATE = 0.002  # a fix hundreds of metres off, with a plausible accuracy
GAP_COUNTS = (0, 1, 2)  # gaps of several minutes per shift (phone in a pocket, metro...)
GAP_WEIGHTS = (0.5, 0.35, 0.15)
GAP_MINUTES = (3.0, 15.0)
PAUSE_RATE_FOOT = 1 / 90  # an encounter about every 15 minutes of walking
PAUSE_RATE_VEHICLE = 1 / 120
PAUSE_MINUTES = (2.0, 12.0)

# Where teams are based: outreach concentrates in the centre, around the big stations and in
# the north-east; the west sees few teams, so white zones remain there, as in real life.
ARRONDISSEMENT_WEIGHT = {
    1: 3, 2: 2, 3: 2, 4: 3, 5: 1.5, 6: 1, 7: 0.5, 8: 1, 9: 1.5, 10: 4,
    11: 3, 12: 2, 13: 2, 14: 1.5, 15: 1, 16: 0.3, 17: 1, 18: 4, 19: 4, 20: 3,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TeamPlan:
    index: int
    name: str
    mode: str  # "foot" or "vehicle", as maraudes.models.TeamMode
    home: str  # code of the quartier the team is based in
    speed: float  # m/s while moving


@dataclass(frozen=True, slots=True)
class ScenarioFix:
    t: datetime
    lon: float
    lat: float
    accuracy: float
    speed: float


@dataclass(frozen=True, slots=True)
class ShiftPlan:
    """One team's night: check-in, check-out and its fixes, columns in time order."""

    team: int
    night: date
    started_at: datetime
    ended_at: datetime
    times: tuple[datetime, ...]
    lon: array
    lat: array
    accuracy: array
    speed: array

    def __len__(self) -> int:
        return len(self.times)

    def fixes(self, start: int = 0, stop: int | None = None) -> Iterator[ScenarioFix]:
        for i in range(start, len(self.times) if stop is None else stop):
            yield ScenarioFix(
                self.times[i], self.lon[i], self.lat[i], self.accuracy[i], self.speed[i]
            )


@dataclass(frozen=True)
class Scenario:
    seed: int
    teams: tuple[TeamPlan, ...]
    nights: tuple[date, ...]
    fixes_per_shift: int
    shifts: tuple[ShiftPlan, ...]

    @property
    def fix_count(self) -> int:
        return sum(len(s) for s in self.shifts)

    def summary(self) -> dict:
        accuracy = [a for s in self.shifts for a in s.accuracy]
        return {
            "seed": self.seed,
            "teams": len(self.teams),
            "vehicle_teams": sum(t.mode == "vehicle" for t in self.teams),
            "nights": [n.isoformat() for n in self.nights],
            "shifts": len(self.shifts),
            "fixes": self.fix_count,
            "poor_accuracy_share": round(sum(a > 50 for a in accuracy) / max(len(accuracy), 1), 4),
        }


# --- The territory --------------------------------------------------------------------------


@dataclass(frozen=True)
class Quartier:
    code: str
    name: str
    arrondissement: int
    geom: BaseGeometry  # Lambert-93


@cache
def _to_wgs84() -> Transformer:
    return Transformer.from_crs(L93, 4326, always_xy=True)


@cache
def quartiers(path: Path = QUARTIERS) -> tuple[Quartier, ...]:
    """The 80 quartiers in Lambert-93, sorted by code."""
    to_l93 = Transformer.from_crs(4326, L93, always_xy=True)
    data = json.loads(path.read_text())
    result = []
    for feature in data["features"]:
        geom = shapely.transform(
            shape(feature["geometry"]),
            lambda xy: _stack(*to_l93.transform(xy[:, 0], xy[:, 1])),
        )
        props = feature["properties"]
        result.append(Quartier(str(props["c_qu"]), props["l_qu"], int(props["c_ar"]), geom))
    return tuple(sorted(result, key=lambda q: int(q.code)))


def _stack(x, y) -> np.ndarray:
    return np.column_stack([x, y])


@dataclass(frozen=True)
class _Area:
    """Where a team walks: its home quartier and the ones touching it (all Paris by car)."""

    geom: BaseGeometry
    home: BaseGeometry

    def contains(self, x: float, y: float) -> bool:
        return bool(shapely.contains_xy(self.geom, x, y))


@cache
def _paris() -> BaseGeometry:
    paris = shapely.union_all([q.geom for q in quartiers()])
    shapely.prepare(paris)
    return paris


@cache
def _team_area(home: str, mode: str) -> _Area:
    by_code = {q.code: q for q in quartiers()}
    home_geom = by_code[home].geom
    if mode == "vehicle":
        return _Area(_paris(), home_geom)
    near = home_geom.buffer(10)
    geom = shapely.union_all([q.geom for q in quartiers() if q.geom.intersects(near)])
    shapely.prepare(geom)
    return _Area(geom, home_geom)


# --- Teams and nights -----------------------------------------------------------------------


def team_plan(seed: int, index: int) -> TeamPlan:
    rng = random.Random(f"{seed}:team:{index}")
    vehicle = index % VEHICLE_EVERY == VEHICLE_OFFSET
    qs = quartiers()
    home = rng.choices(qs, weights=[ARRONDISSEMENT_WEIGHT[q.arrondissement] for q in qs])[0]
    speed = rng.uniform(5.0, 12.0) if vehicle else rng.uniform(1.0, 1.6)
    return TeamPlan(
        index=index,
        name=f"Équipe {index + 1:02d}",
        mode="vehicle" if vehicle else "foot",
        home=home.code,
        speed=round(speed, 3),
    )


def shift_plan(seed: int, team: TeamPlan, night: date, fixes: int) -> ShiftPlan:
    rng = random.Random(f"{seed}:{team.index}:{night.isoformat()}")
    vehicle = team.mode == "vehicle"
    area = _team_area(team.home, team.mode)

    # Check-in between 20:00 and 21:30, first fix within the minute, check-out a few
    # minutes after the last one: the night crosses midnight and stays one service day.
    started_at = datetime.combine(night, datetime.min.time(), PARIS_TZ) + timedelta(
        hours=20, seconds=rng.randrange(0, 90 * 60)
    )
    first = started_at + timedelta(seconds=rng.randrange(5, 60))
    ended_at = first + timedelta(seconds=(fixes - 1) * FIX_INTERVAL_S + rng.randrange(30, 300))

    # Gaps: slots with no fix while the team keeps moving.
    missing: set[int] = set()
    for _ in range(rng.choices(GAP_COUNTS, weights=GAP_WEIGHTS)[0]):
        # At most a tenth of the night each, so that a short scenario keeps its shape.
        length = min(round(rng.uniform(*GAP_MINUTES) * 60 / FIX_INTERVAL_S), fixes // 10)
        if length and fixes > length + 2:
            begin = rng.randrange(1, fixes - length)
            missing.update(range(begin, begin + length))

    walker = _Walker(rng, area, vehicle=vehicle, speed=team.speed)
    times: list[datetime] = []
    xs: list[float] = []
    ys: list[float] = []
    accuracy = array("d")
    speeds = array("d")
    for slot in range(fixes):
        x, y, moving = walker.step(FIX_INTERVAL_S)
        if slot in missing:
            continue
        roll = rng.random()
        if roll < POOR_ACCURACY_RATE:
            acc = rng.uniform(55.0, 300.0)
            dx, dy = rng.gauss(0, acc / 2), rng.gauss(0, acc / 2)
        elif roll < POOR_ACCURACY_RATE + JUMP_RATE:
            # A multipath jump: far off, yet the phone claims a fair accuracy.
            acc = rng.uniform(8.0, 30.0)
            distance, angle = rng.uniform(300.0, 2000.0), rng.uniform(0, 2 * math.pi)
            dx, dy = distance * math.cos(angle), distance * math.sin(angle)
        else:
            acc = rng.uniform(4.0, 25.0)
            dx, dy = rng.gauss(0, acc / 2), rng.gauss(0, acc / 2)
        times.append(first + timedelta(seconds=slot * FIX_INTERVAL_S))
        xs.append(x + dx)
        ys.append(y + dy)
        accuracy.append(round(acc, 1))
        speeds.append(round(moving, 2))

    lon, lat = _to_wgs84().transform(xs, ys)
    return ShiftPlan(
        team=team.index,
        night=night,
        started_at=started_at,
        ended_at=ended_at,
        times=tuple(times),
        lon=array("d", (round(v, 7) for v in lon)),
        lat=array("d", (round(v, 7) for v in lat)),
        accuracy=accuracy,
        speed=speeds,
    )


class _Walker:
    """A walk along a street grid: straight along a block, a choice at each crossing, a
    pause now and then (an encounter), never leaving the team's area at a crossing."""

    def __init__(self, rng: random.Random, area: _Area, *, vehicle: bool, speed: float) -> None:
        self.rng = rng
        self.area = area
        self.speed = speed
        self.vehicle = vehicle
        self.block = rng.uniform(150.0, 350.0) if vehicle else rng.uniform(70.0, 140.0)
        self.pause_rate = PAUSE_RATE_VEHICLE if vehicle else PAUSE_RATE_FOOT
        theta = rng.uniform(0, math.pi / 2)  # the grid's orientation
        self.directions = [
            (math.cos(theta + k * math.pi / 2), math.sin(theta + k * math.pi / 2)) for k in range(4)
        ]
        self.x, self.y = self._start()
        self.heading = rng.randrange(4)
        self.left = self._block_length()
        self.paused = 0.0

    def _start(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.area.home.bounds
        for _ in range(10_000):
            x, y = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if shapely.contains_xy(self.area.home, x, y):
                return x, y
        point = self.area.home.representative_point()
        return point.x, point.y

    def _block_length(self) -> float:
        return self.block * self.rng.uniform(0.6, 1.4)

    def step(self, seconds: float) -> tuple[float, float, float]:
        """Advance `seconds`; return the true position and the speed (m/s)."""
        if self.paused > 0:
            self.paused -= seconds
            return self.x, self.y, 0.0
        if self.rng.random() < self.pause_rate:
            self.paused = self.rng.uniform(*PAUSE_MINUTES) * 60
        speed = self.speed * self.rng.uniform(0.85, 1.15)
        distance = speed * seconds
        while distance > 0:
            dx, dy = self.directions[self.heading]
            run = min(distance, self.left)
            self.x += dx * run
            self.y += dy * run
            self.left -= run
            distance -= run
            if self.left <= 1e-9:
                self._turn()
        return self.x, self.y, speed

    def _turn(self) -> None:
        # Straight on, left, right, or back (rarely by car); the next block must end inside
        # the area, else another choice; a dead end turns back.
        back = 0.02 if self.vehicle else 0.1
        choices = [(0, 0.5), (1, 0.2), (3, 0.2), (2, back)]
        length = self._block_length()
        options = []
        for turn, weight in choices:
            heading = (self.heading + turn) % 4
            dx, dy = self.directions[heading]
            if self.area.contains(self.x + dx * length, self.y + dy * length):
                options.append((heading, weight))
        if options:
            headings, weights = zip(*options, strict=True)
            self.heading = self.rng.choices(headings, weights=weights)[0]
        else:
            self.heading = (self.heading + 2) % 4
        self.left = length


def generate(
    *,
    teams: int = DEFAULT_TEAMS,
    nights: int = DEFAULT_NIGHTS,
    fixes: int = DEFAULT_FIXES,
    seed: int = DEFAULT_SEED,
    first_night: date = DEFAULT_FIRST_NIGHT,
) -> Scenario:
    """`teams` teams out every night for `nights` consecutive nights, `fixes` fix slots each
    (a few fall in gaps), shifts ordered by night then team."""
    if teams < 1 or nights < 1 or fixes < 2:
        raise ValueError("teams and nights must be at least 1, fixes at least 2")
    plans = tuple(team_plan(seed, i) for i in range(teams))
    days = tuple(first_night + timedelta(days=n) for n in range(nights))
    shifts = tuple(shift_plan(seed, team, night, fixes) for night in days for team in plans)
    return Scenario(seed=seed, teams=plans, nights=days, fixes_per_shift=fixes, shifts=shifts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=DEFAULT_TEAMS)
    parser.add_argument("--nights", type=int, default=DEFAULT_NIGHTS)
    parser.add_argument("--fixes", type=int, default=DEFAULT_FIXES, help="fix slots per shift")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    scenario = generate(teams=args.teams, nights=args.nights, fixes=args.fixes, seed=args.seed)
    print(json.dumps(scenario.summary(), indent=2))


if __name__ == "__main__":
    main()
