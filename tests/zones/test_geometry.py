from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, Point

from zones.geometry import TrackFix, as_multipolygon, track_coverage, track_runs

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
RULES = {"max_gap_s": 120, "max_speed": 4.0}


def walk(*steps: tuple[float, float, float]) -> list[TrackFix]:
    """Fixes from (seconds after T0, x, y)."""
    return [TrackFix(T0 + timedelta(seconds=s), x, y) for s, x, y in steps]


def test_it_joins_close_fixes_into_one_run():
    fixes = walk((0, 0, 0), (10, 10, 0), (20, 20, 0))
    assert [len(r) for r in track_runs(fixes, **RULES)] == [3]


def test_it_cuts_the_track_at_a_gap_longer_than_max_gap():
    fixes = walk((0, 0, 0), (10, 10, 0), (200, 20, 0))
    assert [len(r) for r in track_runs(fixes, **RULES)] == [2, 1]


def test_it_draws_no_line_across_a_gps_jump():
    # 500 m in 10 s is 50 m/s: a jump on foot.
    fixes = walk((0, 0, 0), (10, 500, 0), (20, 0, 10))
    runs = track_runs(fixes, **RULES)
    assert [len(r) for r in runs] == [1, 1, 1]


def test_a_jump_allowed_by_vehicle_speed_is_joined():
    fixes = walk((0, 0, 0), (10, 250, 0))
    assert [len(r) for r in track_runs(fixes, max_gap_s=120, max_speed=30)] == [2]


def test_a_lone_fix_covers_its_disc():
    cov = track_coverage(walk((0, 0, 0)), radius=100, **RULES)
    assert cov.area == pytest.approx(Point(0, 0).buffer(100, 256).area, rel=0.01)


def test_a_segment_covers_its_exact_buffer_within_the_contract():
    cov = track_coverage(walk((0, 0, 0), (100, 300, 0)), radius=100, **RULES)
    exact = LineString([(0, 0), (300, 0)]).buffer(100, 256)
    assert cov.symmetric_difference(exact).area < 0.01 * exact.area


def test_no_fix_covers_nothing():
    assert track_coverage([], radius=100, **RULES).is_empty


def test_as_multipolygon_drops_lines_and_points():
    geom = Point(0, 0).buffer(1).union(LineString([(5, 5), (6, 6)]))
    assert as_multipolygon(geom).geom_type == "MultiPolygon"
    assert as_multipolygon(geom).area == pytest.approx(Point(0, 0).buffer(1).area)
