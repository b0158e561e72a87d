"""Pure geometry of coverage: shapely in, shapely out, no Django.

The coverage contract (DESIGN.md, "Coverage model"), as functions:

- kept fixes of one shift, in time order, are joined by a segment when they are at most
  `max_gap_s` apart and the speed between them is at most `max_speed` (m/s);
- a fix no segment touches still counts on its own;
- each segment and lone fix covers its buffer of `radius` metres.

Coordinates are metres in a projected CRS (Lambert-93 in production).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

# A 32-gon per circle: its area is 0.64 % short of the true circle, far inside the contract's
# 1 % of a zone's area (a lone fix is a small part of any zone).
QUAD_SEGS = 8
# Vertices closer than this to their neighbours' chord are dropped from a coverage polygon:
# the union of many buffers leaves runs of near-collinear vertices that every later overlay,
# stored row and map layer carries. A hundredth of the radius at most, so that the 32-gons'
# own vertices stay whatever radius a team is given (each lies 1.9 % of the radius off its
# neighbours' chord: 0.96 m at a vehicle's 50 m). Against 0.1 m, half a metre drops 23 % of a
# piece's vertices and moves its area by 0.02 % (0.05 % at most; 40 tracks of the
# benchmark). The speed of ingestion did not move beyond the machine's noise (about -1 % CPU
# a fix, seven alternated pairs of runs, the pairs spread over +-10 %).
SIMPLIFY_M = 0.5
# A track is buffered in short chunks, then unioned: a long line that doubles back on itself
# (a team standing still with GPS jitter draws a scribble) is several times slower to buffer
# whole than as chunks (measured on the demo week: 45 ms instead of 140 ms a shift).
CHUNK_SEGMENTS = 6

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class TrackFix:
    t: datetime
    x: float
    y: float


class Located(Protocol):
    """What the functions here read of a fix: a TrackFix, or any fix with these (the stored
    fixes of a batch are used as they are, not copied)."""

    @property
    def t(self) -> datetime: ...

    @property
    def x(self) -> float: ...

    @property
    def y(self) -> float: ...


def track_runs(
    fixes: Sequence[Located], *, max_gap_s: float, max_speed: float
) -> list[list[Located]]:
    """Split time-ordered fixes into runs; consecutive fixes of a run are joined by a segment.

    A run of one fix is a lone fix. Fixes must be sorted by time and unique in time.
    """
    if not fixes:
        return []
    t, x, y = track_arrays(fixes)
    joined = joined_pairs(t, x, y, max_gap_s=max_gap_s, max_speed=max_speed)
    bounds = [0, *(np.flatnonzero(~joined) + 1).tolist(), len(fixes)]
    return [list(fixes[a:b]) for a, b in itertools.pairwise(bounds)]


def joins(a: Located, b: Located, *, max_gap_s: float, max_speed: float) -> bool:
    """The contract's rule for two consecutive fixes, as written (joined_pairs applies it to
    arrays)."""
    dt = (b.t - a.t).total_seconds()
    if dt <= 0 or dt > max_gap_s:
        return False
    return math.hypot(b.x - a.x, b.y - a.y) / dt <= max_speed


class TrackArrays(NamedTuple):
    """A track as arrays: times in whole microseconds since the Unix epoch (exact, as
    datetime arithmetic is), x and y."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray


def track_arrays(fixes: Sequence[Located] | TrackArrays) -> TrackArrays:
    """The arrays of a track's fixes (given arrays are returned as they are: a caller that
    needs them twice converts the fixes once)."""
    if isinstance(fixes, TrackArrays):
        return fixes
    n = len(fixes)
    t = np.fromiter(((f.t - _EPOCH) // _MICROSECOND for f in fixes), dtype=np.int64, count=n)
    x = np.fromiter((f.x for f in fixes), dtype=np.float64, count=n)
    y = np.fromiter((f.y for f in fixes), dtype=np.float64, count=n)
    return TrackArrays(t, x, y)


def joined_pairs(
    t: np.ndarray, x: np.ndarray, y: np.ndarray, *, max_gap_s: float, max_speed
) -> np.ndarray:
    """Whether a segment joins each pair of consecutive fixes (i, i + 1): at most
    `max_gap_s` apart, later, and at most `max_speed` m/s between them (a number, or an
    array with the speed of each pair). `t` in whole microseconds; seconds are computed as
    timedelta.total_seconds() computes them, so limits hold exactly."""
    dt = (t[1:] - t[:-1]) / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            (dt > 0)
            & (dt <= max_gap_s)
            & (np.hypot(x[1:] - x[:-1], y[1:] - y[:-1]) / dt <= max_speed)
        )


def track_parts(
    t: np.ndarray, x: np.ndarray, y: np.ndarray, *, max_gap_s: float, max_speed: float
) -> np.ndarray:
    """The geometries whose buffers are the coverage of a time-ordered track (arrays as
    track_arrays gives them): its runs of two fixes or more as lines, in chunks of
    CHUNK_SEGMENTS segments sharing their end fixes, and its lone fixes as points."""
    n = len(t)
    if not n:
        return np.empty(0, dtype=object)
    joined = joined_pairs(t, x, y, max_gap_s=max_gap_s, max_speed=max_speed)
    breaks = np.flatnonzero(~joined) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [n]))  # exclusive
    lone = starts[ends - starts == 1]
    runs = np.flatnonzero(ends - starts > 1)
    # Chunk j of a run starts at its fix j * CHUNK_SEGMENTS and ends CHUNK_SEGMENTS fixes
    # later, or at the run's last fix.
    chunks = -(-(ends[runs] - starts[runs] - 1) // CHUNK_SEGMENTS)
    run = np.repeat(runs, chunks)
    first = starts[run] + _ranks(chunks) * CHUNK_SEGMENTS
    last = np.minimum(first + CHUNK_SEGMENTS, ends[run] - 1)
    sizes = last - first + 1
    at = np.repeat(first, sizes) + _ranks(sizes)
    lines = shapely.linestrings(x[at], y[at], indices=np.repeat(np.arange(len(first)), sizes))
    return np.concatenate((lines, shapely.points(x[lone], y[lone])))


def track_boxes(track: TrackArrays, *, margin: float, run: int = 64) -> np.ndarray:
    """Boxes (x0, y0, x1, y1 rows) that hold every segment and fix of a time-ordered track
    grown by `margin`: one box per `run` consecutive segments (each box also holds the first
    fix of the next, so the segment between two runs is inside one). A long track's boxes
    hug it, where its single box would take in the whole district it crosses."""
    n = len(track.t)
    if not n:
        return np.empty((0, 4))
    starts = np.arange(0, max(n - 1, 1), run)
    # Each run [start, next start], its last fix shared with the next run.
    ends = np.minimum(starts + run, n - 1)
    boxes = []
    for values, reduce, sign in (
        (track.x, np.minimum, -1),
        (track.y, np.minimum, -1),
        (track.x, np.maximum, 1),
        (track.y, np.maximum, 1),
    ):
        within = reduce.reduceat(values, starts)  # [start, next start)
        boxes.append(reduce(within, values[ends]) + sign * margin)
    return np.column_stack(boxes)


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each of `sizes`, end to end."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def covered_area(parts: Sequence[BaseGeometry] | np.ndarray, *, radius: float) -> MultiPolygon:
    """The union of the buffers of `parts`, valid, as a MultiPolygon (maybe empty)."""
    if not len(parts):
        return MultiPolygon()
    buffers = shapely.buffer(np.asarray(parts, dtype=object), radius, quad_segs=QUAD_SEGS)
    union = shapely.union_all(buffers)
    tolerance = min(SIMPLIFY_M, radius / 100)
    return as_multipolygon(shapely.simplify(union, tolerance, preserve_topology=True))


def track_coverage(
    fixes: Sequence[Located] | TrackArrays, *, radius: float, max_gap_s: float, max_speed: float
) -> MultiPolygon:
    """The coverage of a time-ordered track (fixes unique in time)."""
    t, x, y = track_arrays(fixes)
    if not len(t):
        return MultiPolygon()
    return covered_area(
        track_parts(t, x, y, max_gap_s=max_gap_s, max_speed=max_speed), radius=radius
    )


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """Keep the polygonal part of `geom`, made valid, as a MultiPolygon."""
    if geom.is_empty:
        return MultiPolygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    polygons: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        if isinstance(part, Polygon) and not part.is_empty:
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(part.geoms)
    return MultiPolygon(polygons)
