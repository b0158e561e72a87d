"""Hours of presence per zone, kept as fixes arrive (issue 6): zones.models.ZonePresence.

The definition is the weekly report's (zones.reports, PRESENCE): two consecutive kept fixes of
a shift-day that the coverage contract joins by a segment (zones.geometry.joins: later, at
most `max_gap_s` apart, at most the team's `max_speed`) give an interval; its seconds count
for every zone holding its midpoint (border included, as ST_Intersects), in the local hour
(TIME_ZONE) of its start. A track is one shift-day, so no interval crosses DAY_START.

`track_intervals` (pure Python) is the definition; every path computes the same intervals
with numpy (`tracks_intervals`: a 1,000-fix batch in a fraction of the time). For a batch of
fixes, the zones holding their midpoints are found by the database in the one statement that
adds the seconds, so that the append path costs one round trip (well under a millisecond of
database time for 30 fixes):

- `presence_add` (a batch after the shift-day's latest fix): adds the batch's intervals, the
  one from the fix stored just before the batch included (`presence_add_many`: the batches of
  several shift-days in one statement);
- `presence_replace` (a fix landed between stored ones): the shift-day's rows are computed
  again from all its kept fixes;
- `presence_rebuild` (coverage_rebuild): the rows of whole days are replaced; there the
  midpoints of all the tracks are tested against the zones with shapely (about a second for
  a week of Paris, half a million fixes).

All three give the same rows for the same fixes, whatever order they arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from django.conf import settings
from django.db import connection

from maraudes.db import PreparedCursor, float8_array, int8_array, prepared_cursor
from zones.geometry import Located, TrackArrays, joined_pairs, joins, track_arrays


@dataclass(frozen=True, slots=True)
class Interval:
    """Time between two joined fixes: its midpoint (storage SRID), length, local start hour."""

    x: float
    y: float
    seconds: float
    hour: int


def track_intervals(
    track: Sequence[Located], *, max_gap_s: float, max_speed: float, tz: tzinfo
) -> list[Interval]:
    """The intervals of a time-ordered track: one per pair of consecutive fixes that the
    coverage contract joins by a segment. A gap, a jump or a lone fix gives none."""
    intervals = []
    for a, b in pairwise(track):
        if joins(a, b, max_gap_s=max_gap_s, max_speed=max_speed):
            intervals.append(
                Interval(
                    x=(a.x + b.x) / 2,
                    y=(a.y + b.y) / 2,
                    seconds=(b.t - a.t).total_seconds(),
                    hour=a.t.astimezone(tz).hour,
                )
            )
    return intervals


def _tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


# One statement for the intervals of one or more shift-days (group g: the g-th shift-day):
# the zones holding each midpoint, the seconds summed per zone and hour, added to what the
# shift-day already has. Midpoints go in runs of PART consecutive ones (a stretch of track a
# few hundred metres long). Each run finds the zones near it (one GiST probe with the extent
# of its midpoints), and each such zone is tested against the run's midpoints, one zone after
# the other. A midpoint thus meets the few zones along its stretch, not every zone near its
# whole track: a 1,000-fix night crossed forty quartiers' boxes, and 39,000 point-in-polygon
# tests became 5,700 (each costs PostGIS about a microsecond whatever the order, so the
# statement got about 10 % faster, measured). Rows are written in key order, so that two
# transactions writing the same rows wait for each other instead of deadlocking.
PART = 64
_ADD_SQL = """
WITH run AS MATERIALIZED (
  SELECT g, ST_SetSRID(ST_Extent(p)::geometry, %(srid)s) AS box,
         array_agg(p) AS ps, array_agg(seconds) AS seconds, array_agg(hour) AS hours
  FROM (
    SELECT g, (n - 1) / %(part)s AS part, ST_SetSRID(ST_MakePoint(x, y), %(srid)s) AS p,
           seconds, hour
    FROM unnest(%(groups)s::int8[], %(xs)s::float8[], %(ys)s::float8[], %(seconds)s::float8[],
                %(hours)s::int2[]) WITH ORDINALITY AS u(g, x, y, seconds, hour, n)
  ) i
  GROUP BY g, part
), s AS (
  SELECT * FROM unnest(%(shifts)s::bigint[], %(days)s::date[]) WITH ORDINALITY AS s(shift_id, day, g)
)
INSERT INTO zones_zonepresence (zone_id, shift_id, day, hour, seconds)
SELECT z.id, s.shift_id, s.day, m.hour, sum(m.seconds)
FROM run
JOIN zones_zone z ON z.geom && run.box
CROSS JOIN LATERAL unnest(run.ps, run.seconds, run.hours) AS m(p, seconds, hour)
JOIN s ON s.g = run.g
WHERE ST_Intersects(z.geom, m.p)
GROUP BY z.id, s.shift_id, s.day, m.hour
ORDER BY z.id, s.shift_id, s.day, m.hour
ON CONFLICT (zone_id, shift_id, day, hour)
  DO UPDATE SET seconds = zones_zonepresence.seconds + EXCLUDED.seconds
"""


def _add(cursor: PreparedCursor, keys: Sequence[tuple[int, date]], intervals: Intervals) -> None:
    """Add `intervals` (their `track`: an index into `keys`, the (shift id, day) of each
    track): one statement, none when there is no interval. The arrays go in binary."""
    if not len(intervals):
        return
    cursor.execute(
        _ADD_SQL,
        {
            "groups": int8_array(intervals.track + 1),
            "xs": float8_array(intervals.x),
            "ys": float8_array(intervals.y),
            "seconds": float8_array(intervals.seconds),
            "hours": int8_array(intervals.hour),
            "shifts": int8_array([shift_id for shift_id, _day in keys]),
            "days": [day for _shift_id, day in keys],
            "srid": settings.SRID,
            "part": PART,
        },
        prepare=True,
    )


def presence_add(
    *, shift_id: int, day: date, track: Sequence[Located], max_gap_s: float, max_speed: float
) -> None:
    """The append path: `track` is the shift-day's kept fix just before the batch (if any)
    followed by the batch's new kept fixes, in time order. One statement, none when the
    batch joins no segment."""
    presence_add_many([(shift_id, day, track, max_speed)], max_gap_s=max_gap_s)


def presence_add_many(
    batches: Sequence[tuple[int, date, Sequence[Located] | TrackArrays, float]], *, max_gap_s: float
) -> None:
    """`presence_add` for several shift-days at once ((shift id, day, track, the team's max
    speed)...), in one statement: for callers that batch fixes across shifts."""
    intervals = tracks_intervals(
        [(track, speed) for _shift, _day, track, speed in batches], max_gap_s=max_gap_s, tz=_tz()
    )
    if len(intervals):
        with prepared_cursor() as cursor:
            _add(cursor, [(shift_id, day) for shift_id, day, _track, _speed in batches], intervals)


def presence_replace(
    *, shift_id: int, day: date, track: Sequence[Located], max_gap_s: float, max_speed: float
) -> None:
    """The recompute path: `track` is every kept fix of the shift-day, in time order."""
    intervals = tracks_intervals([(track, max_speed)], max_gap_s=max_gap_s, tz=_tz())
    with prepared_cursor() as cursor:
        cursor.execute(
            "DELETE FROM zones_zonepresence WHERE shift_id = %s AND day = %s", [shift_id, day]
        )
        _add(cursor, [(shift_id, day)], intervals)


@dataclass(frozen=True)
class Intervals:
    """The intervals of many tracks as arrays: the index of their track, their midpoint,
    length and local start hour."""

    track: np.ndarray
    x: np.ndarray
    y: np.ndarray
    seconds: np.ndarray
    hour: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)


def tracks_intervals(
    tracks: Sequence[tuple[Sequence[Located] | TrackArrays, float]], *, max_gap_s: float, tz: tzinfo
) -> Intervals:
    """`track_intervals` of many (track, max speed), with numpy: the same intervals, for the
    half million fixes of a week in a fraction of the time. Times are whole microseconds, as
    in datetime arithmetic, so that the intervals and their lengths are exactly the same."""
    arrays = [track_arrays(track) for track, _speed in tracks]
    sizes = np.array([len(a.t) for a in arrays], dtype=np.int64)
    t, x, y = [np.concatenate(c) for c in zip(*arrays, strict=True)] if arrays else track_arrays([])
    track = np.repeat(np.arange(len(tracks)), sizes)
    speed = np.repeat([float(s) for _track, s in tracks], sizes)
    # Pairs of consecutive fixes of one track, joined as zones.geometry.joins joins them.
    joined = joined_pairs(t, x, y, max_gap_s=max_gap_s, max_speed=speed[:-1]) & (
        track[1:] == track[:-1]
    )
    dt = (t[1:] - t[:-1]) / 1e6
    first = np.flatnonzero(joined)
    start = t[first]
    return Intervals(
        track=track[first],
        x=(x[first] + x[first + 1]) / 2,
        y=(y[first] + y[first + 1]) / 2,
        seconds=dt[first],
        hour=_local_hours(start, tz),
    )


def _local_hours(t: np.ndarray, tz: tzinfo) -> np.ndarray:
    """Local hour of instants in microseconds since the epoch. The UTC offset is looked up
    once per minute present (clocks change on whole minutes), not once per instant."""
    if not len(t):
        return np.zeros(0, dtype=np.int64)
    seconds = t // 1_000_000
    minutes, where = np.unique(seconds // 60, return_inverse=True)
    offsets = np.array(
        [datetime.fromtimestamp(int(m) * 60, tz).utcoffset().total_seconds() for m in minutes],
        dtype=np.int64,
    )
    return ((seconds + offsets[where.reshape(-1)]) // 3600) % 24


def presence_rebuild(
    *,
    days: Sequence[date],
    tracks: Mapping[tuple[int, date], tuple[Sequence[Located], float]],
    max_gap_s: float,
) -> None:
    """coverage_rebuild: replace the presence of `days` by that of `tracks`
    ((shift id, day) -> (every kept fix in time order, the team's max speed)).

    Here the intervals of whole days are computed with numpy (`tracks_intervals`) and their
    midpoints tested against each zone's prepared polygon with shapely, then the sums are
    inserted in one statement: the same test in PostGIS, a GiST probe and an unprepared
    point-in-polygon per midpoint, takes seconds for a week of Paris. Three statements:
    delete, read the zones, insert.
    """
    keys = list(tracks)
    intervals = tracks_intervals([tracks[key] for key in keys], max_gap_s=max_gap_s, tz=_tz())
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM zones_zonepresence WHERE day = ANY(%s)", [list(days)])
        if not len(intervals):
            return
        cursor.execute("SELECT id, ST_AsBinary(geom) FROM zones_zone ORDER BY id")
        zones = cursor.fetchall()
        # Seconds per zone and (track, hour), the midpoints holding on the zone's border
        # included (intersects, as ST_Intersects).
        key = intervals.track * 24 + intervals.hour
        rows: list[tuple[int, int, date, int, float]] = []
        for zone_id, wkb in zones:
            polygon = shapely.from_wkb(bytes(wkb))
            x0, y0, x1, y1 = polygon.bounds
            mx, my = intervals.x, intervals.y
            near = np.flatnonzero((mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1))
            if not near.size:
                continue
            shapely.prepare(polygon)
            inside = near[shapely.intersects_xy(polygon, mx[near], my[near])]
            if not inside.size:
                continue
            sums = np.bincount(key[inside], weights=intervals.seconds[inside])
            for k in np.flatnonzero(sums).tolist():
                shift_id, day = keys[k // 24]
                rows.append((zone_id, shift_id, day, k % 24, float(sums[k])))
        if not rows:
            return
        cursor.execute(
            """INSERT INTO zones_zonepresence (zone_id, shift_id, day, hour, seconds)
               SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::date[], %s::int2[],
                                    %s::float8[])""",
            [list(column) for column in zip(*rows, strict=True)],
        )
