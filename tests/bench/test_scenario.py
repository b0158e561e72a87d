"""The benchmark's scenario: the same seed gives the same week, shaped as asked."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
import shapely
from pyproj import Transformer

from bench.scenario import (
    DEFAULT_FIRST_NIGHT,
    FIX_INTERVAL_S,
    QUARTIERS,
    generate,
    quartiers,
)

SMALL = {"teams": 5, "nights": 2, "fixes": 200}


@pytest.fixture(scope="module")
def scenario():
    if not QUARTIERS.is_file():
        pytest.fail(f"shared data not found at {QUARTIERS}")
    return generate(**SMALL)


def test_the_same_seed_gives_the_same_fixes(scenario):
    again = generate(**SMALL)
    assert [(s.team, s.night, s.started_at, s.ended_at) for s in again.shifts] == [
        (s.team, s.night, s.started_at, s.ended_at) for s in scenario.shifts
    ]
    assert [list(s.fixes()) for s in again.shifts] == [list(s.fixes()) for s in scenario.shifts]


def test_another_seed_gives_other_routes(scenario):
    other = generate(**SMALL, seed=7)
    assert list(other.shifts[0].fixes()) != list(scenario.shifts[0].fixes())


def test_a_small_scenario_is_a_prefix_of_a_bigger_one(scenario):
    bigger = generate(teams=6, nights=3, fixes=200)
    same = [s for s in bigger.shifts if s.team < 5 and s.night in scenario.nights]
    assert [list(s.fixes()) for s in same] == [list(s.fixes()) for s in scenario.shifts]


def test_it_has_one_shift_per_team_and_night(scenario):
    assert len(scenario.teams) == 5
    assert scenario.nights == (DEFAULT_FIRST_NIGHT, DEFAULT_FIRST_NIGHT + timedelta(days=1))
    assert {(s.team, s.night) for s in scenario.shifts} == {
        (t, n) for t in range(5) for n in scenario.nights
    }
    assert {t.mode for t in scenario.teams} == {"foot", "vehicle"}


def test_fixes_come_every_10_s_inside_the_shift_window_with_a_few_gaps(scenario):
    for shift in scenario.shifts:
        assert 0.75 * SMALL["fixes"] <= len(shift) <= SMALL["fixes"]
        assert all(step % FIX_INTERVAL_S == 0 and step > 0 for step in _steps(shift))
        assert shift.started_at <= shift.times[0] and shift.times[-1] <= shift.ended_at
    # A night from ~20:00 lasts 200 fixes x 10 s, and stays on its own service day.
    assert all(s.started_at.hour in (20, 21) for s in scenario.shifts)
    # Gaps of minutes (phone in a pocket): some shifts have one, longer than MAX_GAP_S.
    assert any(max(_steps(s)) > 120 for s in scenario.shifts)


def test_fixes_are_in_paris_with_faults_like_a_phone(scenario):
    paris = shapely.union_all([q.geom for q in quartiers()]).buffer(50)
    to_l93 = Transformer.from_crs(4326, 2154, always_xy=True)
    inside = total = poor = 0
    for shift in scenario.shifts:
        x, y = to_l93.transform(list(shift.lon), list(shift.lat))
        inside += int(shapely.contains_xy(paris, x, y).sum())
        total += len(shift)
        poor += sum(a > 50 for a in shift.accuracy)
    assert inside / total > 0.95
    assert 0.01 < poor / total < 0.06
    summary = scenario.summary()
    assert summary["fixes"] == total == scenario.fix_count


def test_there_are_80_quartiers():
    assert len(quartiers()) == 80


def _steps(shift) -> list[float]:
    return [(b - a).total_seconds() for a, b in pairwise(shift.times)]


def test_the_bench_times_20_different_full_weeks_with_the_default_history():
    from bench.run import WINDOW_RUNS, windows

    picked = windows(DEFAULT_FIRST_NIGHT, 7 + WINDOW_RUNS - 1)
    assert len(set(picked)) == WINDOW_RUNS
    last_night = DEFAULT_FIRST_NIGHT + timedelta(days=7 + WINDOW_RUNS - 2)
    assert all(a >= DEFAULT_FIRST_NIGHT and b <= last_night for a, b in picked)
    assert all((b - a).days == 6 for a, b in picked)
