"""The coverage engine against an independent computation (plain shapely, exact buffers).

Tracks are generated over the 80 real quartiers of Paris (../shared/data), with the faults
phones produce, and sent through the same service the API uses. The reference below
re-implements the contract of DESIGN.md ("Coverage model") from the fixes as they were sent,
without touching the project's geometry code; each zone's white area must agree within 1 % of
the zone's area.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from shapely.geometry import LineString, Point

from maraudes.fixes import Fix
from maraudes.models import Shift, TeamMode
from maraudes.services import shift_end
from tests.factories import TeamFactory
from tests.support.paris import load_zones, to_wgs84
from zones.models import Zone
from zones.selectors import white_zones, zones_coverage
from zones.services import coverage_rebuild, track_ingest

PARIS = ZoneInfo("Europe/Paris")
MAX_ACCURACY, MAX_GAP = 50.0, 120.0
SPEED = {TeamMode.FOOT: 4.0, TeamMode.VEHICLE: 30.0}
RADIUS = {TeamMode.FOOT: 100.0, TeamMode.VEHICLE: 50.0}


@dataclass
class Sent:
    """A fix as a phone sent it: Lambert-93 metres for the reference, WGS84 for the API."""

    t: datetime
    x: float
    y: float
    accuracy: float


# --- The reference: the contract, written out plainly -------------------------------------


def ref_service_day(t: datetime) -> date:
    return (t.astimezone(PARIS).replace(tzinfo=None) - timedelta(hours=6)).date()


def ref_covered(shifts: list[tuple[Shift, list[Sent]]], days: set[date]):
    """Union of exact buffers of every segment and lone fix, on the given service days."""
    shapes = []
    for shift, sent in shifts:
        mode = shift.team.mode
        end = shift.ended_at or datetime.max.replace(tzinfo=PARIS)
        first_wins: dict[datetime, Sent] = {}
        for fix in sent:
            if shift.started_at <= fix.t <= end and fix.t not in first_wins:
                first_wins[fix.t] = fix
        kept = sorted(
            (f for f in first_wins.values() if f.accuracy <= MAX_ACCURACY), key=lambda f: f.t
        )
        by_day: dict[date, list[Sent]] = defaultdict(list)
        for fix in kept:
            by_day[ref_service_day(fix.t)].append(fix)
        for day, fixes in by_day.items():
            if day not in days:
                continue
            touched = [False] * len(fixes)
            for i in range(1, len(fixes)):
                a, b = fixes[i - 1], fixes[i]
                dt = (b.t - a.t).total_seconds()
                dist = ((b.x - a.x) ** 2 + (b.y - a.y) ** 2) ** 0.5
                if 0 < dt <= MAX_GAP and dist / dt <= SPEED[mode]:
                    shapes.append(LineString([(a.x, a.y), (b.x, b.y)]).buffer(RADIUS[mode], 64))
                    touched[i - 1] = touched[i] = True
            for fix, hit in zip(fixes, touched, strict=True):
                if not hit:
                    shapes.append(Point(fix.x, fix.y).buffer(RADIUS[mode], 64))
    return shapely.union_all(shapes) if shapes else shapely.Polygon()


def assert_white_areas_agree(shifts, day_from: date, day_to: date) -> int:
    days = {day_from + timedelta(days=n) for n in range((day_to - day_from).days + 1)}
    covered = ref_covered(shifts, days)
    rows = {r.code: r for r in zones_coverage(day_from=day_from, day_to=day_to, kind="quartier")}
    assert len(rows) == 80
    compared = 0
    for zone in Zone.objects.filter(kind="quartier"):
        polygon = shapely.from_wkb(bytes(zone.geom.wkb))
        ref_white = polygon.difference(covered).area
        ours = rows[zone.code].white_m2
        assert abs(ours - ref_white) <= 0.01 * polygon.area, (
            f"quartier {zone.code} {zone.name}: white {ours:.0f} m² vs reference "
            f"{ref_white:.0f} m² (zone {polygon.area:.0f} m²)"
        )
        compared += ref_white < polygon.area  # zones the tracks actually reached
    return compared


# --- Tracks with the faults phones produce ---------------------------------------------------


def walk(
    rng: random.Random, *, start: datetime, n: int, origin: tuple[float, float], speed: float
) -> list[Sent]:
    """A street-like walk: straight legs with turns, a fix every 10 s, with faults."""
    x, y = origin
    heading = rng.uniform(0, 6.283)
    fixes: list[Sent] = []
    t = start
    for i in range(n):
        if rng.random() < 0.08:
            heading += rng.choice([-1.57, 1.57, 3.14])
        step = speed * 10 * rng.uniform(0.6, 1.2)
        x, y = _advance(x, y, heading, step)
        accuracy = rng.uniform(3, 25)
        if rng.random() < 0.04:
            accuracy = rng.uniform(60, 200)  # poor fix: not kept
        fx, fy = x, y
        if rng.random() < 0.01:
            fx, fy = x + rng.uniform(400, 900), y - rng.uniform(400, 900)  # GPS jump
        fixes.append(Sent(t, fx, fy, accuracy))
        t += timedelta(seconds=10)
        if i == n // 2:
            t += timedelta(minutes=rng.choice([3, 6, 11]))  # a gap of several minutes
    return fixes


def _advance(x: float, y: float, heading: float, step: float) -> tuple[float, float]:
    return x + step * math.cos(heading), y + step * math.sin(heading)


def as_fixes(sent: list[Sent]) -> list[Fix]:
    transformer = to_wgs84()
    out = []
    for index, s in enumerate(sent):
        lon, lat = transformer.transform(s.x, s.y)
        out.append(Fix(t=s.t, lon=lon, lat=lat, accuracy=s.accuracy, index=index))
    return out


def send(shift: Shift, sent: list[Sent], rng: random.Random | None, batch: int = 30) -> None:
    """Send in batches of `batch`; with `rng`, batches arrive in a shuffled order."""
    batches = [sent[i : i + batch] for i in range(0, len(sent), batch)]
    if rng is not None:
        rng.shuffle(batches)
    for chunk in batches:
        track_ingest(shift=shift, fixes=as_fixes(chunk))


def centroid_of(code: str) -> tuple[float, float]:
    point = Zone.objects.get(kind="quartier", code=code).geom.centroid
    return point.x, point.y


def make_week(
    rng: random.Random, *, first_night: date, nights: int, teams: int, fixes_per_shift: int
):
    """Shifts from 21:00 to past midnight on each night; some fixes sent before check-in, and
    duplicates of a stored time with another position sent afterwards."""
    codes = [str(c) for c in range(1, 81)]
    team_objs = [
        TeamFactory(mode=TeamMode.VEHICLE if i % 4 == 3 else TeamMode.FOOT) for i in range(teams)
    ]
    shifts: list[tuple[Shift, list[Sent]]] = []
    for night in range(nights):
        day = first_night + timedelta(days=night)
        for team in team_objs:
            started = datetime(day.year, day.month, day.day, 21, 0, tzinfo=PARIS) + timedelta(
                minutes=rng.randint(0, 90)
            )
            shift = Shift.objects.create(
                team=team, started_at=started, tracker_token_hash=f"{team.pk}-{day}-{rng.random()}"
            )
            speed = 8.0 if team.mode == TeamMode.VEHICLE else 1.3
            sent = walk(
                rng,
                start=started - timedelta(seconds=30),  # the first fixes precede check-in
                n=fixes_per_shift,
                origin=centroid_of(rng.choice(codes)),
                speed=speed,
            )
            shifts.append((shift, sent))
    return shifts


@pytest.fixture
def quartiers(db):
    return load_zones()


def test_white_zones_match_the_reference_with_batches_in_order(quartiers):
    rng = random.Random(1)
    shifts = make_week(rng, first_night=date(2026, 11, 16), nights=3, teams=6, fixes_per_shift=400)
    for shift, sent in shifts:
        send(shift, sent, rng=None)
    assert assert_white_areas_agree(shifts, date(2026, 11, 16), date(2026, 11, 18)) >= 6
    # A window of one night only counts that night.
    assert_white_areas_agree(shifts, date(2026, 11, 17), date(2026, 11, 17))


def test_white_zones_match_the_reference_when_batches_arrive_shuffled(quartiers):
    rng = random.Random(2)
    shifts = make_week(rng, first_night=date(2026, 11, 16), nights=2, teams=5, fixes_per_shift=360)
    for shift, sent in shifts:
        send(shift, sent, rng=rng)
    assert assert_white_areas_agree(shifts, date(2026, 11, 16), date(2026, 11, 17)) >= 5


def test_a_duplicate_time_with_another_position_keeps_the_first(quartiers):
    rng = random.Random(3)
    shifts = make_week(rng, first_night=date(2026, 11, 16), nights=1, teams=2, fixes_per_shift=200)
    for shift, sent in shifts:
        send(shift, sent, rng=None)
        # The same times again, 300 m away: duplicates, nothing moves.
        moved = [Sent(s.t, s.x + 300, s.y, s.accuracy) for s in sent[50:80]]
        recorded = track_ingest(shift=shift, fixes=as_fixes(moved))
        assert recorded.duplicates == 30 and not recorded.accepted
    assert_white_areas_agree(shifts, date(2026, 11, 16), date(2026, 11, 16))


def test_a_shift_across_the_october_clock_change_is_one_service_day(quartiers):
    # 2026-10-25 03:00 CEST becomes 02:00 CET: the night of the 24th is 11 hours long.
    rng = random.Random(4)
    team = TeamFactory()
    started = datetime(2026, 10, 24, 22, 0, tzinfo=PARIS)
    shift = Shift.objects.create(team=team, started_at=started, tracker_token_hash="dst")
    sent = walk(rng, start=started, n=2700, origin=centroid_of("15"), speed=0.4)
    assert sent[-1].t.astimezone(PARIS).hour >= 5  # past the clock change, before 06:00
    send(shift, sent, rng=None, batch=500)
    shift_end(shift=shift, ended_at=sent[-1].t + timedelta(minutes=1))
    days = {
        d
        for d in Shift.objects.get(pk=shift.pk)
        .coverage_pieces.values_list("day", flat=True)
        .distinct()
    }
    assert days == {date(2026, 10, 24)}
    assert_white_areas_agree([(shift, sent)], date(2026, 10, 24), date(2026, 10, 24))
    assert_white_areas_agree([(shift, sent)], date(2026, 10, 19), date(2026, 10, 25))


def test_fixes_after_check_out_are_refused_and_do_not_cover(quartiers):
    rng = random.Random(5)
    team = TeamFactory()
    started = datetime(2026, 11, 20, 21, 0, tzinfo=PARIS)
    shift = Shift.objects.create(team=team, started_at=started, tracker_token_hash="end")
    sent = walk(rng, start=started, n=300, origin=centroid_of("30"), speed=1.3)
    shift_end(shift=shift, ended_at=sent[199].t)
    recorded = track_ingest(shift=shift, fixes=as_fixes(sent))
    assert len(recorded.accepted) == 200
    assert len(recorded.rejected) == 100
    assert "après la fin" in recorded.rejected[0].reason
    assert_white_areas_agree([(shift, sent)], date(2026, 11, 20), date(2026, 11, 20))


def test_rebuild_gives_the_same_white_zones_as_the_incremental_path(quartiers):
    rng = random.Random(6)
    shifts = make_week(rng, first_night=date(2026, 11, 16), nights=2, teams=4, fixes_per_shift=300)
    for shift, sent in shifts:
        send(shift, sent, rng=rng)
    window = {"day_from": date(2026, 11, 16), "day_to": date(2026, 11, 17), "kind": "quartier"}
    before = {w.coverage.code: w.coverage.white_m2 for w in white_zones(**window)}
    coverage_rebuild(day_from=date(2026, 11, 16), day_to=date(2026, 11, 17))
    after = {w.coverage.code: w.coverage.white_m2 for w in white_zones(**window)}
    assert before.keys() == after.keys()
    areas = dict(Zone.objects.filter(kind="quartier").values_list("code", "area_m2"))
    for code in before:
        assert abs(before[code] - after[code]) <= 0.001 * areas[code], code
    assert_white_areas_agree(shifts, date(2026, 11, 16), date(2026, 11, 17))
