"""Hours of presence per zone, kept as fixes arrive (issue 6). Being written: the calls from
zones.services are in place; the functions do nothing yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from zones.geometry import TrackFix


def presence_add(
    *, shift_id: int, day: date, track: Sequence[TrackFix], max_gap_s: float, max_speed: float
) -> None:
    """The append path: `track` is the shift-day's kept fix just before the batch (if any)
    followed by the batch's new kept fixes, in time order."""


def presence_replace(
    *, shift_id: int, day: date, track: Sequence[TrackFix], max_gap_s: float, max_speed: float
) -> None:
    """The recompute path: `track` is every kept fix of the shift-day, in time order."""


def presence_rebuild(
    *,
    days: Sequence[date],
    tracks: Mapping[tuple[int, date], tuple[Sequence[TrackFix], float]],
    max_gap_s: float,
) -> None:
    """coverage_rebuild: replace the presence of `days` by that of `tracks`
    ((shift id, day) -> (every kept fix in time order, the team's max speed))."""
