"""The weekly report selector (zones.reports): weeks of service days, agreement with the
coverage selectors, presence, the October clock change, an empty week, small counts.

The walks and encounters come from tests.support.reports, shared with the API and page tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from maraudes.models import Need
from maraudes.services import positions_purge
from tests.factories import PARIS, TeamFactory, ZoneFactory, tile
from tests.support.reports import A_X, A_Y, B_X, B_Y, meet, paris, walk
from zones.reports import (
    HOUR_BANDS,
    TREND_WEEKS,
    IsoWeek,
    NeedFigures,
    ReportParamError,
    count_shown,
    kind_param,
    week_last_complete,
    week_param,
    weekly_report,
    weekly_white_zones,
)
from zones.selectors import zones_coverage
from zones.services import coverage_rebuild

# Friday 27 November 2026, 12:00 in Paris: week 48 is in progress, week 47 the last complete.
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=PARIS)
W47 = IsoWeek(2026, 47)  # Monday 16 to Sunday 22 November 2026


@pytest.fixture
def zones(db):
    return (
        ZoneFactory(code="1", name="Saint-Germain-l'Auxerrois", kind="quartier", geom=tile(0, 0)),
        ZoneFactory(code="2", name="Halles", kind="quartier", geom=tile(1, 0)),
        ZoneFactory(code="10", name="Élysée", kind="quartier", geom=tile(2, 0)),
    )


@pytest.fixture
def week_data(zones):
    """Week 47: two nights in zone 1 (two teams the first), one in zone 2; encounters."""
    team, other = TeamFactory(), TeamFactory()
    first = walk(team, start=paris(2026, 11, 17, 22), x=A_X, y=A_Y)
    walk(other, start=paris(2026, 11, 17, 23), x=A_X, y=A_Y + 300)
    walk(team, start=paris(2026, 11, 19, 21, 30), x=B_X, y=B_Y, n=61)
    meet(first, at=paris(2026, 11, 17, 22, 2), x=A_X + 50, y=A_Y, people=2, needs=["food"])
    meet(
        first,
        at=paris(2026, 11, 17, 22, 4),
        x=A_X + 100,
        y=A_Y,
        people=4,
        needs=["food", "shelter"],
    )
    return zones


# --- Weeks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-W47", IsoWeek(2026, 47)),
        ("2026-w03", IsoWeek(2026, 3)),
        ("2026-W53", IsoWeek(2026, 53)),
    ],
)
def test_it_reads_iso_weeks(raw, expected):
    assert IsoWeek.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("2026-W54", "2026 compte 53 semaines"),
        ("2025-W53", "2025 compte 52 semaines"),
        ("2026-W00", "la semaine 0 n'existe pas"),
        ("last", "« last » n'est pas une semaine ISO"),
        ("2026-47", "n'est pas une semaine ISO"),
        ("1999-W10", "Aucune donnée avant 2000"),
    ],
)
def test_it_refuses_weeks_that_do_not_exist_saying_why(raw, says):
    with pytest.raises(ReportParamError) as error:
        IsoWeek.parse(raw)
    assert error.value.field == "week"
    assert says in error.value.message


def test_a_week_runs_from_monday_to_sunday():
    assert (W47.first_day, W47.last_day) == (date(2026, 11, 16), date(2026, 11, 22))
    assert str(W47) == "2026-W47"
    assert W47.shifted(-47) == IsoWeek(2025, 52)
    assert IsoWeek(2026, 53).shifted(1) == IsoWeek(2027, 1)


def test_the_default_week_is_the_last_complete_one():
    assert week_param(None, now=NOW) == W47
    assert week_param("  ", now=NOW) == W47
    # Monday 05:00: still Sunday's night, so week 47 is not over yet.
    assert week_last_complete(now=paris(2026, 11, 23, 5)) == IsoWeek(2026, 46)
    assert week_last_complete(now=paris(2026, 11, 23, 7)) == W47


def test_a_week_that_has_not_started_is_refused_but_the_current_one_is_not():
    assert week_param("2026-W48", now=NOW) == IsoWeek(2026, 48)
    with pytest.raises(ReportParamError) as error:
        week_param("2026-W49", now=NOW)
    assert "n'a pas encore commencé" in error.value.message
    assert "2026-W48" in error.value.message


def test_the_kind_defaults_to_quartier_and_unknown_kinds_are_named():
    assert kind_param(None, kinds=["arrondissement", "quartier"]) == "quartier"
    assert kind_param("", kinds=["secteur"]) == "secteur"
    assert kind_param(None, kinds=[]) is None
    with pytest.raises(ReportParamError) as error:
        kind_param("galaxie", kinds=["quartier"])
    assert error.value.field == "kind"
    assert "galaxie" in error.value.message and "quartier" in error.value.message


def test_small_counts_are_hidden_and_their_encounters_too():
    assert [count_shown(n, protect=True) for n in (0, 1, 2, 3)] == [0, "<3", "<3", 3]
    assert count_shown(2, protect=False) == 2
    # Two encounters beside "<3" people would tell that two people were met.
    assert count_shown(2, protect=True, people=2) == "<3"
    assert count_shown(2, protect=True, people=5) == 2


# --- The report -----------------------------------------------------------------------------


def test_it_agrees_with_the_coverage_selector_for_the_same_days(week_data):
    report = weekly_report(week=W47, kind="quartier", now=NOW)
    reference = {
        row.code: row
        for row in zones_coverage(day_from=W47.first_day, day_to=W47.last_day, kind="quartier")
    }

    assert [r.code for r in report.rows] == ["1", "2", "10"]  # natural order of codes
    for row in report.rows:
        ref = reference[row.code]
        assert row.covered_m2 == pytest.approx(ref.covered_m2, abs=1e-4 * ref.area_m2), row.code
        assert row.white_m2 == pytest.approx(ref.white_m2, abs=1e-4 * ref.area_m2), row.code
        assert row.area_m2 == pytest.approx(ref.area_m2)
        assert row.last_visit == ref.last_visit
        assert row.passages == ref.passages
        assert row.encounters == ref.encounters
        assert row.people == ref.people
    one, two, ten = report.rows
    assert one.passages == 2 and two.passages == 1 and ten.passages == 0
    assert one.last_visit == date(2026, 11, 17) and ten.last_visit is None
    assert ten.covered_ratio == 0 and ten.white_ratio == 1


def test_it_counts_encounters_and_people_by_need(week_data):
    one = weekly_report(week=W47, kind="quartier", now=NOW).rows[0]

    assert (one.encounters, one.people) == (2, 6)
    assert one.needs["food"].encounters == 2 and one.needs["food"].people == 6
    assert one.needs["shelter"].encounters == 1 and one.needs["shelter"].people == 4
    assert one.needs["health"].encounters == 0
    assert set(one.needs) == set(Need.values)


def test_the_territory_totals_count_each_shift_and_encounter_once(week_data):
    report = weekly_report(week=W47, kind="quartier", now=NOW)
    totals = report.totals

    assert totals.area_m2 == pytest.approx(3_000_000)
    assert totals.covered_m2 == pytest.approx(sum(r.covered_m2 for r in report.rows))
    assert totals.passages == 3  # three shifts, whatever the zones they entered
    assert (totals.encounters, totals.people) == (2, 6)
    assert totals.presence_s == pytest.approx(sum(r.presence_s for r in report.rows))
    assert totals.last_visit == date(2026, 11, 19)


def test_an_encounter_in_two_zones_counts_for_each_and_once_for_the_territory(zones):
    ZoneFactory(code="11", name="Recouvrement", kind="quartier", geom=tile(0, 0, size=600))
    shift = walk(TeamFactory(), start=paris(2026, 11, 17, 22), x=A_X, y=A_Y)
    meet(
        shift, at=paris(2026, 11, 17, 22, 1), x=A_X + 50, y=A_Y, people=3, needs=["food", "health"]
    )
    meet(shift, at=paris(2026, 11, 17, 22, 3), x=B_X, y=B_Y, people=1, needs=["food"])

    report = weekly_report(week=W47, kind="quartier", now=NOW)

    by_code = {r.code: r for r in report.rows}
    assert [by_code[c].encounters for c in ("1", "11", "2", "10")] == [1, 1, 1, 0]
    assert by_code["11"].needs["health"] == NeedFigures(encounters=1, people=3)
    assert (report.totals.encounters, report.totals.people) == (2, 4)
    assert report.totals.needs["food"] == NeedFigures(encounters=2, people=4)
    assert report.totals.needs["health"] == NeedFigures(encounters=1, people=3)
    assert report.totals.needs["shelter"] == NeedFigures()


def test_presence_is_the_time_between_consecutive_fixes_in_the_zone(week_data):
    one, two, ten = weekly_report(week=W47, kind="quartier", now=NOW).rows

    # Zone 1: two walks of 31 fixes 10 s apart (300 s each), at 22:00 and 23:00.
    assert one.presence_s == pytest.approx(600)
    assert dict(zip(HOUR_BANDS, one.bands_s, strict=True))[22] == pytest.approx(300)
    assert dict(zip(HOUR_BANDS, one.bands_s, strict=True))[23] == pytest.approx(300)
    # Zone 2: 61 fixes from 21:30: ten minutes.
    assert two.presence_s == pytest.approx(600)
    assert two.bands_s[HOUR_BANDS.index(21)] == pytest.approx(600)
    assert ten.presence_s == 0 and one.other_s == 0


def test_presence_leaves_out_gaps_and_jumps(zones):
    team = TeamFactory()
    shift = walk(team, start=paris(2026, 11, 18, 22), x=A_X, y=A_Y, n=7)  # 60 s
    # Five minutes later (a gap: no segment), then a 600 m jump in ten seconds.
    walk(team, start=paris(2026, 11, 18, 22, 6), x=A_X, y=A_Y, n=2, every_s=60, shift=shift)
    walk(team, start=paris(2026, 11, 18, 22, 7, 10), x=A_X + 600, y=A_Y, n=1, shift=shift)

    one = weekly_report(week=W47, kind="quartier", now=NOW).rows[0]

    assert one.presence_s == pytest.approx(60 + 60)


def test_a_sunday_night_belongs_to_sundays_week(zones):
    # Sunday 22 November 23:00 to Monday 23 November 01:30: service day Sunday, week 47.
    team = TeamFactory()
    shift = walk(team, start=paris(2026, 11, 23, 1), x=A_X, y=A_Y, n=31)
    meet(shift, at=paris(2026, 11, 23, 1, 2), x=A_X + 20, y=A_Y, people=3)

    w47 = weekly_report(week=W47, kind="quartier", now=NOW).rows[0]
    w48 = weekly_report(week=IsoWeek(2026, 48), kind="quartier", now=NOW).rows[0]

    assert (w47.passages, w47.encounters, w47.last_visit) == (1, 1, date(2026, 11, 22))
    assert w47.covered_m2 > 0 and w47.bands_s[HOUR_BANDS.index(1)] == pytest.approx(300)
    assert (w48.passages, w48.encounters, w48.covered_m2, w48.presence_s) == (0, 0, 0, 0)
    assert w48.previous_covered_m2 == pytest.approx(w47.covered_m2)


def test_an_interval_across_six_in_the_morning_belongs_to_no_day(zones):
    # Monday 23 November, 05:58:30 to 06:00:30, a fix every 30 s: Sunday's service day (week
    # 47) until 06:00, Monday's (week 48) after; the interval across 06:00 joins no segment.
    walk(TeamFactory(), start=paris(2026, 11, 23, 5, 58, 30), x=A_X, y=A_Y, n=5, every_s=30)

    w47 = weekly_report(week=W47, kind="quartier", now=NOW).rows[0]
    w48 = weekly_report(week=IsoWeek(2026, 48), kind="quartier", now=NOW).rows[0]

    assert w47.presence_s == pytest.approx(60)
    assert w47.bands_s[HOUR_BANDS.index(5)] == pytest.approx(60)
    assert w48.presence_s == pytest.approx(30) and w48.other_s == pytest.approx(30)


def test_the_october_clock_change_week(zones):
    """2026-W43: at 03:00 CEST on Sunday 25 October the clocks go back to 02:00 CET."""
    w43 = IsoWeek(2026, 43)
    assert (w43.first_day, w43.last_day) == (date(2026, 10, 19), date(2026, 10, 25))
    team = TeamFactory()
    # One fix a minute, 1 m apart, from 01:30 CEST to 02:30 CET: two real hours, the 02h
    # band lived twice.
    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    shift = walk(team, start=start, x=A_X, y=A_Y, n=121, every_s=60, dx=1.0)
    # The next night, Sunday 25 October from 23:00 CET to Monday: still week 43.
    sunday = walk(team, start=paris(2026, 10, 26, 0, 10), x=B_X, y=B_Y)
    meet(sunday, at=paris(2026, 10, 26, 0, 12), x=B_X + 10, y=B_Y, people=1)

    report = weekly_report(week=w43, kind="quartier", now=NOW)
    one, two, _ten = report.rows

    assert one.presence_s == pytest.approx(2 * 3600)
    bands = dict(zip(HOUR_BANDS, one.bands_s, strict=True))
    assert bands[1] == pytest.approx(1800)
    assert bands[2] == pytest.approx(5400)
    assert one.last_visit == date(2026, 10, 24) and one.passages == 1
    assert two.last_visit == date(2026, 10, 25) and two.passages == 1
    assert two.encounters == 1
    assert shift.coverage_pieces.values_list("day", flat=True).distinct().get() == date(
        2026, 10, 24
    )
    reference = {
        r.code: r
        for r in zones_coverage(day_from=w43.first_day, day_to=w43.last_day, kind="quartier")
    }
    for row in report.rows:
        ref = reference[row.code]
        assert row.covered_m2 == pytest.approx(ref.covered_m2, abs=1e-4 * ref.area_m2)
    week_after = weekly_report(week=IsoWeek(2026, 44), kind="quartier", now=NOW)
    assert week_after.totals.passages == 0
    assert week_after.totals.previous_passages == 2


def test_an_empty_week_gives_zeros_not_errors(zones):
    report = weekly_report(week=IsoWeek(2026, 40), kind="quartier", now=NOW)

    assert len(report.rows) == 3
    for row in [*report.rows, report.totals]:
        assert row.covered_m2 == 0 and row.passages == 0 and row.presence_s == 0
        assert row.encounters == 0 and row.people == 0 and row.last_visit is None
        assert row.change == "same" and row.white_ratio == 1
    assert [p.covered_ratio for p in report.trend] == [0.0] * TREND_WEEKS
    assert report.complete


def test_a_report_without_any_zone_is_empty(db):
    report = weekly_report(week=W47, kind=None, now=NOW)

    assert report.rows == [] and report.totals.area_m2 == 0 and report.totals.covered_ratio == 0


def test_the_change_compares_with_the_previous_week(zones):
    team = TeamFactory()
    walk(team, start=paris(2026, 11, 10, 22), x=A_X, y=A_Y, n=61)  # week 46: 600 m
    walk(team, start=paris(2026, 11, 17, 22), x=A_X, y=A_Y, n=11)  # week 47: 100 m
    walk(team, start=paris(2026, 11, 17, 23), x=B_X, y=B_Y, n=11)  # zone 2: new

    one, two, ten = weekly_report(week=W47, kind="quartier", now=NOW).rows

    assert one.previous_covered_m2 > one.covered_m2 > 0
    assert (one.change, two.change, ten.change) == ("down", "up", "same")
    assert one.previous_passages == 1


def test_the_trend_gives_the_covered_share_of_the_territory_over_eight_weeks(zones):
    team = TeamFactory()
    walk(team, start=paris(2026, 10, 6, 22), x=A_X, y=A_Y)  # week 41
    walk(team, start=paris(2026, 11, 18, 22), x=B_X, y=B_Y)  # week 47

    report = weekly_report(week=W47, kind="quartier", now=NOW)

    assert [str(p.week) for p in report.trend] == [f"2026-W{n}" for n in range(40, 48)]
    shares = [p.covered_ratio for p in report.trend]
    assert shares[1] > 0 and shares[7] > 0
    assert shares[0] == shares[2] == shares[6] == 0
    assert shares[7] == pytest.approx(report.totals.covered_ratio)


def test_presence_outlives_the_purge_of_the_raw_fixes(week_data):
    later = NOW + timedelta(days=120)
    before = weekly_report(week=W47, kind="quartier", now=NOW)

    assert positions_purge(now=later) > 0
    report = weekly_report(week=W47, kind="quartier", now=later)

    assert [r.presence_s for r in report.rows] == pytest.approx([600, 600, 0])
    assert [r.bands_s for r in report.rows] == [r.bands_s for r in before.rows]
    assert report.rows[0].covered_m2 == pytest.approx(before.rows[0].covered_m2)


def test_presence_counts_for_the_zones_of_the_kind_asked_for(zones):
    ZoneFactory(code="A", kind="secteur", geom=tile(0, 0, size=2000))
    team = TeamFactory()
    walk(team, start=paris(2026, 11, 17, 22), x=A_X, y=A_Y)
    walk(team, start=paris(2026, 11, 19, 21, 30), x=B_X, y=B_Y, n=61)

    (sector,) = weekly_report(week=W47, kind="secteur", now=NOW).rows
    one, two, _ten = weekly_report(week=W47, kind="quartier", now=NOW).rows

    assert (one.presence_s, two.presence_s) == pytest.approx((300, 600))
    assert sector.presence_s == pytest.approx(900)  # both walks, each interval once


def test_a_zone_drawn_after_the_fixes_gets_its_presence_from_coverage_rebuild(week_data):
    ZoneFactory(code="A", kind="secteur", geom=tile(0, 0, size=2000))
    assert weekly_report(week=W47, kind="secteur", now=NOW).rows[0].presence_s == 0

    coverage_rebuild(day_from=W47.first_day, day_to=W47.last_day)

    (sector,) = weekly_report(week=W47, kind="secteur", now=NOW).rows
    assert sector.presence_s == pytest.approx(1200)
    assert [r.presence_s for r in weekly_report(week=W47, kind="quartier", now=NOW).rows] == (
        pytest.approx([600, 600, 0])
    )


def test_a_week_in_progress_is_not_complete(zones):
    assert not weekly_report(week=IsoWeek(2026, 48), kind="quartier", now=NOW).complete


def test_the_white_zones_of_the_week_are_largest_first(week_data):
    zones = weekly_white_zones(week=W47, kind="quartier", srid=4326)

    assert [z.code for z in zones] == ["10", "2", "1"]
    assert zones[0].white_ratio == 1 and zones[0].last_visit is None
    assert 0 < zones[2].white_m2 < zones[1].white_m2 < 1_000_000
    assert zones[2].passages == 2
    assert '"MultiPolygon"' in zones[0].geojson and "2.3" in zones[0].geojson
