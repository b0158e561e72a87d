import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point

from zones.geometry import (
    CHUNK_SEGMENTS,
    QUAD_SEGS,
    TrackArrays,
    TrackFix,
    as_multipolygon,
    joined_pairs,
    joins,
    track_arrays,
    track_boxes,
    track_coverage,
    track_parts,
    track_runs,
)

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


def test_joined_pairs_applies_the_rule_exactly_at_its_limits():
    us = timedelta(microseconds=1)
    fixes = [
        TrackFix(T0, 0, 0),
        TrackFix(T0 + timedelta(seconds=120), 10, 0),  # exactly max_gap: joined
        TrackFix(T0 + timedelta(seconds=240) + us, 20, 0),  # a microsecond over: not
        TrackFix(T0 + timedelta(seconds=250) + us, 60, 0),  # exactly 4 m/s: joined
        TrackFix(T0 + timedelta(seconds=260) + us, 100.001, 0),  # just over 4 m/s: not
        TrackFix(T0 + timedelta(seconds=260) + us, 100, 0),  # same time: not
        TrackFix(T0 + timedelta(seconds=250), 100, 0),  # earlier: not
        TrackFix(T0 + timedelta(seconds=260), 110, 30),  # hypot 31.6 m in 10 s: joined
    ]
    t, x, y = track_arrays(fixes)
    expected = [True, False, True, False, False, False, True]
    assert joined_pairs(t, x, y, **RULES).tolist() == expected
    assert [joins(a, b, **RULES) for a, b in itertools.pairwise(fixes)] == expected


def test_track_parts_are_chunks_sharing_their_end_fixes_and_points_for_lone_fixes():
    run = [(10 * i, 10 * i, 0) for i in range(2 * CHUNK_SEGMENTS + 2)]
    fixes = walk(*run, (1000, 0, 500))  # the last one after a gap: a lone fix
    parts = track_parts(*track_arrays(fixes), **RULES)
    coords = [shapely.get_coordinates(p)[:, 0].tolist() for p in parts]
    c = CHUNK_SEGMENTS
    assert [p.geom_type for p in parts] == ["LineString"] * 3 + ["Point"]
    assert coords[:3] == [
        [10.0 * i for i in range(0, c + 1)],
        [10.0 * i for i in range(c, 2 * c + 1)],
        [10.0 * i for i in range(2 * c, 2 * c + 2)],
    ]
    assert shapely.get_coordinates(parts[3]).tolist() == [[0.0, 500.0]]


def test_a_lone_fix_covers_its_disc():
    cov = track_coverage(walk((0, 0, 0)), radius=100, **RULES)
    assert cov.area == pytest.approx(Point(0, 0).buffer(100, 256).area, rel=0.01)


@pytest.mark.parametrize("radius", [3, 10, 50, 100, 400])
def test_simplifying_keeps_every_vertex_of_a_disc_whatever_the_radius(radius):
    cov = track_coverage(walk((0, 0, 0)), radius=radius, **RULES)
    assert shapely.get_num_coordinates(cov) == 4 * QUAD_SEGS + 1  # closed ring
    assert cov.area == pytest.approx(Point(0, 0).buffer(radius, 256).area, rel=0.01)


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


@pytest.mark.parametrize("n", [1, 2, 64, 65, 66, 200])
def test_track_boxes_hold_the_track_grown_by_the_margin(n):
    # A wandering track: a random walk of 10-metre steps, doubling back now and then.
    rng = np.random.default_rng(n)
    steps = rng.normal(0, 10, size=(n, 2))
    x, y = 650_000 + np.cumsum(steps[:, 0]), 6_860_000 + np.cumsum(steps[:, 1])
    track = TrackArrays(np.arange(n, dtype=np.int64) * 10_000_000, x, y)
    boxes = track_boxes(track, margin=101, run=64)
    assert len(boxes) == max(1, -(-(n - 1) // 64))
    held = shapely.union_all([shapely.box(*b) for b in boxes])
    line = Point(x[0], y[0]) if n == 1 else LineString(np.column_stack([x, y]))
    assert held.contains(line.buffer(100))
    # Each box hugs its stretch: no wider than the stretch grown by the margin.
    for b, start in zip(boxes, range(0, max(n - 1, 1), 64), strict=True):
        stretch = slice(start, min(start + 64, n - 1) + 1)
        assert b[0] == pytest.approx(x[stretch].min() - 101)
        assert b[3] == pytest.approx(y[stretch].max() + 101)


def test_track_boxes_of_no_fix_are_none():
    empty = np.zeros(0)
    assert track_boxes(TrackArrays(empty.astype(np.int64), empty, empty), margin=1).shape == (0, 4)
