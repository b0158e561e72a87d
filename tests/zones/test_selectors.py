"""Selectors that need no database: the priority of a white zone and its sentence."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import translation

from zones.selectors import ZoneCoverage, white_zone_priority

TODAY = date(2026, 11, 27)


def _row(*, white_m2: float, last_visit: date | None, people: int = 0) -> ZoneCoverage:
    return ZoneCoverage(
        zone_id=1,
        code="A",
        name="A",
        kind="quartier",
        need_weight=1.0,
        area_m2=1_000_000,
        covered_m2=1_000_000 - white_m2,
        last_visit=last_visit,
        passages=0,
        encounters=0,
        people=people,
    )


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", "3,2 ha non couverts, non visitée depuis 9 jours ; 14 personnes rencontrées"),
        ("en", "3.2 ha uncovered, not visited for 9 days; 14 people met"),
    ],
)
def test_the_reason_writes_hectares_as_the_language_does(language, expected):
    row = _row(white_m2=32_000, last_visit=date(2026, 11, 18), people=14)
    with translation.override(language):
        _priority, reason = white_zone_priority(row, today=TODAY)
    assert reason.startswith(expected)


@pytest.mark.parametrize(
    ("white_m2", "language", "hectares"),
    [
        (31_900, "fr", "3,2 ha"),
        (9_600, "fr", "1,0 ha"),
        (9_600, "en", "1.0 ha"),
        (449, "en", "0.0 ha"),
    ],
)
def test_the_hectares_are_rounded_not_cut(white_m2, language, hectares):
    with translation.override(language):
        _priority, reason = white_zone_priority(
            _row(white_m2=white_m2, last_visit=None), today=TODAY
        )
    assert reason.startswith(hectares + " ")


def test_priority_grows_with_white_area_staleness_and_people():
    base = white_zone_priority(_row(white_m2=10_000, last_visit=TODAY), today=TODAY)[0]
    assert white_zone_priority(_row(white_m2=20_000, last_visit=TODAY), today=TODAY)[0] > base
    stale = _row(white_m2=10_000, last_visit=date(2026, 11, 20))
    assert white_zone_priority(stale, today=TODAY)[0] > base
    met = _row(white_m2=10_000, last_visit=TODAY, people=5)
    assert white_zone_priority(met, today=TODAY)[0] > base
