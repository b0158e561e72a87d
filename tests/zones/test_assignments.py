"""Assignments: the services that write them (and tell everyone), the selectors that read
them and flag what is wrong with a night's plan."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maraudes.days import service_day
from maraudes.fixes import Fix
from maraudes.models import Event, TeamMode
from maraudes.services import shift_start
from tests.factories import TeamFactory, ZoneFactory, tile, user_with_role
from tests.support.paris import to_wgs84
from zones.models import Assignment
from zones.selectors import (
    FAR_APART_M,
    PRIORITY_TOP_N,
    assignment_conflicts,
    assignments_for_day,
)
from zones.services import assignment_create, assignment_data, assignment_delete, track_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def tonight():
    return service_day(timezone.now())


@pytest.fixture
def coordinator():
    return user_with_role("coordinator")


# --- Services -------------------------------------------------------------------------------


def test_an_assignment_is_told_to_the_coordination_and_the_team_after_commit(
    sent, tonight, coordinator, django_capture_on_commit_callbacks
):
    zone, team = ZoneFactory(code="S01", name="Châtelet"), TeamFactory(name="Nord 1")
    with django_capture_on_commit_callbacks(execute=True):
        assignment = assignment_create(zone=zone, team=team, day=tonight, by=coordinator)
        assert sent == []  # stored, not sent yet

    assert assignment.created_by == coordinator
    (event,) = sent
    assert event.type == "assignment_changed"
    assert event.team_id == team.pk and event.to_team  # the team's feed gets it too
    assert event.as_message() == {
        "seq": event.seq,
        "type": "assignment_changed",
        "action": "created",
        "id": assignment.pk,
        "zone": zone.pk,
        "zone_code": "S01",
        "zone_name": "Châtelet",
        "zone_kind": zone.kind,
        "team": team.pk,
        "team_name": "Nord 1",
        "color": team.color,
        "day": tonight.isoformat(),
    }


def test_taking_a_zone_back_tells_the_same_assignment_deleted(
    sent, tonight, coordinator, django_capture_on_commit_callbacks
):
    assignment = assignment_create(
        zone=ZoneFactory(), team=TeamFactory(), day=tonight, by=coordinator
    )
    data = assignment_data(assignment)
    with django_capture_on_commit_callbacks(execute=True):
        assignment_delete(assignment=assignment, by=coordinator)

    assert not Assignment.objects.exists()
    assert sent[-1].as_message() == {
        "seq": sent[-1].seq,
        "type": "assignment_changed",
        "action": "deleted",
        **data,
    }


def test_a_rolled_back_assignment_is_never_told(sent, tonight, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                assignment_create(zone=ZoneFactory(), team=TeamFactory(), day=tonight, by=None)
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert sent == []
    assert not Event.objects.exists() and not Assignment.objects.exists()


def test_the_same_assignment_twice_is_refused_and_told_once(sent, tonight):
    zone, team = ZoneFactory(name="Bercy"), TeamFactory(name="Nord 1")
    assignment_create(zone=zone, team=team, day=tonight, by=None)

    with pytest.raises(ValidationError) as refused:
        assignment_create(zone=zone, team=team, day=tonight, by=None)

    assert "déjà affectée à Nord 1" in refused.value.message_dict["zone"][0]
    assert Assignment.objects.count() == 1
    assert Event.objects.filter(type="assignment_changed").count() == 1


def test_a_past_night_is_history(tonight):
    zone, team = ZoneFactory(), TeamFactory()
    with pytest.raises(ValidationError) as refused:
        assignment_create(zone=zone, team=team, day=tonight - timedelta(days=1), by=None)
    assert "est passée" in refused.value.message_dict["day"][0]

    old = Assignment.objects.create(zone=zone, team=team, day=tonight - timedelta(days=1))
    with pytest.raises(ValidationError):
        assignment_delete(assignment=old, by=None)
    assert Assignment.objects.filter(pk=old.pk).exists()


def test_an_inactive_team_gets_no_zone(tonight):
    with pytest.raises(ValidationError) as refused:
        assignment_create(
            zone=ZoneFactory(), team=TeamFactory(is_active=False), day=tonight, by=None
        )
    assert "n'est plus active" in refused.value.message_dict["team"][0]


# --- Selectors ------------------------------------------------------------------------------


def test_a_night_lists_its_assignments_by_zone(tonight):
    a, b = ZoneFactory(code="A"), ZoneFactory(code="B")
    first, second = TeamFactory(), TeamFactory()
    Assignment.objects.create(zone=b, team=first, day=tonight)
    Assignment.objects.create(zone=a, team=second, day=tonight)
    Assignment.objects.create(zone=a, team=first, day=tonight + timedelta(days=1))

    assert [x.zone.code for x in assignments_for_day(day=tonight)] == ["A", "B"]
    assert [x.zone.code for x in assignments_for_day(day=tonight, team_ids={first.pk})] == ["B"]
    assert list(assignments_for_day(day=tonight, kind="quartier")) == []


def test_a_zone_given_to_two_teams_is_double_booked(tonight):
    zone = ZoneFactory(code="S18", name="Châtelet")
    alpha, beta = TeamFactory(name="Alpha"), TeamFactory(name="Bêta")
    for team in (alpha, beta):
        Assignment.objects.create(zone=zone, team=team, day=tonight)

    conflicts = assignment_conflicts(day=tonight)

    (double,) = conflicts.double_booked
    assert double["zone"] == zone.pk
    assert [t["name"] for t in double["teams"]] == ["Alpha", "Bêta"]
    assert double["message"] == "« Châtelet » (S18) est donnée à 2 équipes : Alpha, Bêta."
    # Another night is not concerned.
    assert assignment_conflicts(day=tonight + timedelta(days=1)).double_booked == []


@pytest.mark.parametrize(
    ("mode", "cols_apart", "flagged"),
    [
        (TeamMode.FOOT, 2, False),  # 2 km between centres: a walk
        (TeamMode.FOOT, 4, True),  # 4 km: most of an hour on foot
        (TeamMode.VEHICLE, 4, False),
        (TeamMode.VEHICLE, 9, True),
    ],
)
def test_a_team_given_zones_far_apart_is_flagged(tonight, mode, cols_apart, flagged):
    team = TeamFactory(name="Rive Gauche", mode=mode)
    west = ZoneFactory(name="Ouest", geom=tile(0, 0))
    east = ZoneFactory(name="Est", geom=tile(cols_apart, 0))
    for zone in (west, east):
        Assignment.objects.create(zone=zone, team=team, day=tonight)

    far = assignment_conflicts(day=tonight).far_apart

    assert bool(far) is flagged
    assert (cols_apart * 1000 > FAR_APART_M[mode]) is flagged
    if flagged:
        assert far[0]["distance_m"] == cols_apart * 1000
        assert {z["zone"] for z in far[0]["zones"]} == {west.pk, east.pk}
        assert far[0]["message"] == (
            f"Rive Gauche a « Ouest » et « Est », à {cols_apart},0 km l'une de l'autre."
        )


def walk(zone_tile_col: int, *, day_offset: int = 0) -> None:
    """A team walks 300 m in the zone at column `zone_tile_col`, a little earlier tonight."""
    start = timezone.now() - timedelta(hours=1, days=day_offset)
    shift = shift_start(team=TeamFactory(), by=None, started_at=start).shift
    transformer = to_wgs84()
    fixes = []
    for i in range(31):
        lon, lat = transformer.transform(652_000 + zone_tile_col * 1000 + 350 + 10 * i, 6_862_500)
        fixes.append(Fix(t=start + timedelta(seconds=10 * i), lon=lon, lat=lat, accuracy=5))
    track_ingest(shift=shift, fixes=fixes)


def test_priority_white_zones_nobody_has_tonight_are_flagged(tonight):
    zones = [ZoneFactory(code=f"Z{i}", name=f"Zone {i}", geom=tile(i, 0)) for i in range(7)]
    walk(0)  # Z0 walked tonight: less white, lower priority than the never-visited ones
    Assignment.objects.create(zone=zones[3], team=TeamFactory(), day=tonight)

    conflicts = assignment_conflicts(day=tonight)

    flagged = conflicts.uncovered_priorities
    ranks = [u["rank"] for u in flagged]
    assert len(ranks) == PRIORITY_TOP_N - 1  # the top N, less the one assigned
    assert zones[3].pk not in {u["zone"] for u in flagged}
    assert zones[0].pk not in {u["zone"] for u in flagged}  # walked: not in the top 5
    assert all(u["reason"] and u["message"].startswith("Priorité n° ") for u in flagged)
    assert conflicts.window == (tonight - timedelta(days=6), tonight)
    assert conflicts.count == len(flagged)


def test_the_conflicts_cost_a_handful_of_queries_whatever_the_plan(tonight):
    teams = [TeamFactory() for _ in range(3)]

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assignment_conflicts(day=tonight)
        return len(queries)

    ZoneFactory(geom=tile(0, 0))
    before = count()
    for i in range(12):
        zone = ZoneFactory(geom=tile(i, 1))
        for team in teams[: 1 + i % 3]:
            Assignment.objects.create(zone=zone, team=team, day=tonight)
    assert count() == before <= 5
