"""Pure geometry of coverage: shapely in, shapely out, no Django.

The coverage contract (DESIGN.md, "Coverage model"), as functions:

- kept fixes of one shift, in time order, are joined by a segment when they are at most
  `max_gap_s` apart and the speed between them is at most `max_speed` (m/s);
- a fix no segment touches still counts on its own;
- each segment and lone fix covers its buffer of `radius` metres.

Coordinates are metres in a projected CRS (Lambert-93 in production).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

# A 32-gon per circle: its area is 0.64 % short of the true circle, far inside the contract's
# 1 % of a zone's area (a lone fix is a small part of any zone).
QUAD_SEGS = 8
# Vertices closer than this to their neighbours' chord are dropped from a coverage polygon:
# the union of many buffers leaves near-duplicate vertices that make later overlays slow
# (OverlayNG falls back to snapping), while the area moves by well under 0.1 % of a zone.
SIMPLIFY_M = 0.1
# A track is buffered in short chunks, then unioned: a long line that doubles back on itself
# (a team standing still with GPS jitter draws a scribble) is several times slower to buffer
# whole than as chunks (measured on the demo week: 45 ms instead of 140 ms a shift).
CHUNK_SEGMENTS = 6


@dataclass(frozen=True, slots=True)
class TrackFix:
    t: datetime
    x: float
    y: float


def track_runs(
    fixes: Sequence[TrackFix], *, max_gap_s: float, max_speed: float
) -> list[list[TrackFix]]:
    """Split time-ordered fixes into runs; consecutive fixes of a run are joined by a segment.

    A run of one fix is a lone fix. Fixes must be sorted by time and unique in time.
    """
    runs: list[list[TrackFix]] = []
    current: list[TrackFix] = []
    for fix in fixes:
        if current and joins(current[-1], fix, max_gap_s=max_gap_s, max_speed=max_speed):
            current.append(fix)
        else:
            if current:
                runs.append(current)
            current = [fix]
    if current:
        runs.append(current)
    return runs


def joins(a: TrackFix, b: TrackFix, *, max_gap_s: float, max_speed: float) -> bool:
    dt = (b.t - a.t).total_seconds()
    if dt <= 0 or dt > max_gap_s:
        return False
    return math.hypot(b.x - a.x, b.y - a.y) / dt <= max_speed


def runs_geometry(runs: Iterable[Sequence[TrackFix]]) -> list[BaseGeometry]:
    """Lines for runs of two or more fixes (in chunks sharing their end fixes), points for
    lone fixes. The union of their buffers is the coverage of the runs."""
    parts: list[BaseGeometry] = []
    for run in runs:
        if len(run) == 1:
            parts.append(Point(run[0].x, run[0].y))
            continue
        coords = [(f.x, f.y) for f in run]
        for start in range(0, len(coords) - 1, CHUNK_SEGMENTS):
            parts.append(LineString(coords[start : start + CHUNK_SEGMENTS + 1]))
    return parts


def covered_area(parts: Sequence[BaseGeometry], *, radius: float) -> MultiPolygon:
    """The union of the buffers of `parts`, valid, as a MultiPolygon (maybe empty)."""
    if not parts:
        return MultiPolygon()
    buffers = shapely.buffer(list(parts), radius, quad_segs=QUAD_SEGS)
    union = shapely.union_all(buffers)
    return as_multipolygon(shapely.simplify(union, SIMPLIFY_M, preserve_topology=True))


def track_coverage(
    fixes: Sequence[TrackFix], *, radius: float, max_gap_s: float, max_speed: float
) -> MultiPolygon:
    runs = track_runs(fixes, max_gap_s=max_gap_s, max_speed=max_speed)
    return covered_area(runs_geometry(runs), radius=radius)


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
