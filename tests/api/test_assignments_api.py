"""GET|POST /api/v1/assignments/, DELETE /api/v1/assignments/{id}/ and
GET /api/v1/assignments/conflicts/: the coordination plans the night, teams read theirs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maraudes.days import service_day
from maraudes.models import Event, Role
from tests.factories import TeamFactory, ZoneFactory, tile, user_with_role
from zones.models import Assignment

URL = "/api/v1/assignments/"


@pytest.fixture
def tonight():
    return service_day(timezone.now())


@pytest.fixture
def coordinator(db):
    return user_with_role(Role.COORDINATOR)


@pytest.fixture
def zone(db):
    return ZoneFactory(code="S06", name="Bercy", geom=tile(0, 0))


@pytest.fixture
def team(db):
    return TeamFactory(name="Nord 1", color="#d62728")


def test_a_coordinator_gives_a_zone_to_a_team_for_tonight(api_as, coordinator, zone, team, tonight):
    response = api_as(coordinator).post(
        URL, {"zone": zone.pk, "team": team.pk, "day": tonight.isoformat()}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    stored = Assignment.objects.get()
    assert body == {
        "id": stored.pk,
        "zone": zone.pk,
        "zone_code": "S06",
        "zone_name": "Bercy",
        "zone_kind": zone.kind,
        "team": team.pk,
        "team_name": "Nord 1",
        "color": "#d62728",
        "day": tonight.isoformat(),
    }
    assert stored.created_by == coordinator
    # The live maps and the team's feed get the same assignment.
    event = Event.objects.get(type="assignment_changed")
    assert event.data == {"action": "created", **body}


def test_a_later_night_can_be_planned(api_as, coordinator, zone, team, tonight):
    day = (tonight + timedelta(days=3)).isoformat()
    response = api_as(coordinator).post(
        URL, {"zone": zone.pk, "team": team.pk, "day": day}, format="json"
    )
    assert response.status_code == 201 and response.json()["day"] == day


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"zone": 999_999}, "zone", "La zone n° 999999 n'existe pas"),
        ({"team": 999_999}, "team", "L'équipe n° 999999 n'existe pas"),
        ({"day": "yesterday"}, "day", "est passée"),
        ({"day": "2026-13-01"}, "day", "AAAA-MM-JJ"),
        ({"day": "next-year+"}, "day", "un an"),
        ({"zone": "S06"}, "zone", "entier"),
        ({"zone": 1.5}, "zone", "entier"),
        ({"zone": None}, "zone", "nul"),
        ({"colour": "red"}, "colour", "Champ inconnu"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field(
    api_as, coordinator, zone, team, tonight, change, field, says
):
    body = {"zone": zone.pk, "team": team.pk, "day": tonight.isoformat()}
    if change.get("day") == "yesterday":
        change = {"day": (tonight - timedelta(days=1)).isoformat()}
    elif change.get("day") == "next-year+":
        change = {"day": (tonight + timedelta(days=400)).isoformat()}
    body.update(change)

    response = api_as(coordinator).post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert says in " ".join(response.json()[field])
    assert not Assignment.objects.exists()


def test_missing_fields_are_each_named(api_as, coordinator):
    response = api_as(coordinator).post(URL, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"zone", "team", "day"}


def test_the_same_assignment_twice_is_a_400_saying_so(api_as, coordinator, zone, team, tonight):
    body = {"zone": zone.pk, "team": team.pk, "day": tonight.isoformat()}
    client = api_as(coordinator)
    assert client.post(URL, body, format="json").status_code == 201

    again = client.post(URL, body, format="json")

    assert again.status_code == 400
    assert again.json() == {"zone": ["« Bercy » est déjà affectée à Nord 1 la nuit du "
                                     f"{tonight:%d/%m/%Y}."]}  # fmt: skip
    assert Assignment.objects.count() == 1


def test_an_inactive_team_is_refused(api_as, coordinator, zone, tonight):
    retired = TeamFactory(is_active=False)
    response = api_as(coordinator).post(
        URL, {"zone": zone.pk, "team": retired.pk, "day": tonight.isoformat()}, format="json"
    )
    assert response.status_code == 400 and "team" in response.json()


@pytest.mark.parametrize("role", [Role.PLANNER, Role.FIELD])
def test_only_the_coordination_assigns(api_as, zone, team, tonight, role):
    user = user_with_role(role, team=team if role == Role.FIELD else None)
    response = api_as(user).post(
        URL, {"zone": zone.pk, "team": team.pk, "day": tonight.isoformat()}, format="json"
    )
    assert response.status_code == 403
    assert not Assignment.objects.exists()


def test_an_administrator_assigns_too(api_as, zone, team, tonight):
    admin = user_with_role(Role.ADMIN)
    response = api_as(admin).post(
        URL, {"zone": zone.pk, "team": team.pk, "day": tonight.isoformat()}, format="json"
    )
    assert response.status_code == 201


def test_anonymous_requests_are_401(api, zone, team, tonight):
    assert api.get(URL).status_code == 401
    assert api.post(URL, {"zone": zone.pk}, format="json").status_code == 401


# --- Reading ------------------------------------------------------------------------------


@pytest.fixture
def plan(zone, team, tonight):
    """Tonight: Bercy to Nord 1, Nation to another team; tomorrow: Nation to Nord 1."""
    other = TeamFactory(name="Solidarité 1")
    nation = ZoneFactory(code="S07", name="Nation", geom=tile(1, 0))
    return {
        "mine": Assignment.objects.create(zone=zone, team=team, day=tonight),
        "theirs": Assignment.objects.create(zone=nation, team=other, day=tonight),
        "tomorrow": Assignment.objects.create(
            zone=nation, team=team, day=tonight + timedelta(days=1)
        ),
        "other": other,
    }


def test_the_coordination_reads_tonight_by_default(api_as, coordinator, plan):
    rows = api_as(coordinator).get(URL).json()
    assert [r["id"] for r in rows] == [plan["mine"].pk, plan["theirs"].pk]


def test_a_night_and_a_team_can_be_chosen(api_as, coordinator, plan, team, tonight):
    client = api_as(coordinator)
    tomorrow = (tonight + timedelta(days=1)).isoformat()
    assert [r["id"] for r in client.get(URL, {"day": tomorrow}).json()] == [plan["tomorrow"].pk]
    other = plan["other"].pk
    assert [r["id"] for r in client.get(URL, {"team": other}).json()] == [plan["theirs"].pk]


def test_a_team_member_reads_only_their_team(api_as, plan, team):
    member = user_with_role(Role.FIELD, team=team)
    client = api_as(member)

    assert [r["id"] for r in client.get(URL).json()] == [plan["mine"].pk]
    assert client.get(URL, {"team": team.pk}).status_code == 200
    assert client.get(URL, {"team": plan["other"].pk}).status_code == 403


def test_a_planner_does_not_read_the_night_plan(api_as, plan):
    assert api_as(user_with_role(Role.PLANNER)).get(URL).status_code == 403


@pytest.mark.parametrize(
    ("query", "field"),
    [("day=demain", "day"), ("team=nord", "team"), ("kind=galaxie", "kind"), ("x=1", "x")],
)
def test_bad_queries_are_400_naming_the_parameter(api_as, coordinator, query, field):
    response = api_as(coordinator).get(f"{URL}?{query}")
    assert response.status_code == 400 and field in response.json()


def test_the_list_query_count_does_not_grow_with_the_plan(api_as, coordinator, tonight):
    client = api_as(coordinator)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    before = count()
    for i in range(10):
        Assignment.objects.create(
            zone=ZoneFactory(geom=tile(i, 2)), team=TeamFactory(), day=tonight
        )
    assert count() == before


# --- Deleting -----------------------------------------------------------------------------


def test_a_coordinator_takes_a_zone_back(api_as, coordinator, plan):
    mine = plan["mine"]
    response = api_as(coordinator).delete(f"{URL}{mine.pk}/")

    assert response.status_code == 204
    assert not Assignment.objects.filter(pk=mine.pk).exists()
    event = Event.objects.get(type="assignment_changed")
    assert event.data["action"] == "deleted" and event.data["id"] == mine.pk
    assert event.team_id == mine.team_id and event.to_team


def test_deleting_an_unknown_assignment_is_404(api_as, coordinator, db):
    assert api_as(coordinator).delete(f"{URL}999999/").status_code == 404


def test_a_past_night_cannot_be_rewritten(api_as, coordinator, zone, team, tonight):
    old = Assignment.objects.create(zone=zone, team=team, day=tonight - timedelta(days=2))
    response = api_as(coordinator).delete(f"{URL}{old.pk}/")
    assert response.status_code == 400 and "est passée" in response.json()["day"][0]


def test_a_team_member_cannot_delete(api_as, plan, team):
    member = user_with_role(Role.FIELD, team=team)
    assert api_as(member).delete(f"{URL}{plan['mine'].pk}/").status_code == 403
    assert Assignment.objects.filter(pk=plan["mine"].pk).exists()


# --- Conflicts ----------------------------------------------------------------------------

CONFLICTS = "/api/v1/assignments/conflicts/"


def test_conflicts_name_double_bookings_far_zones_and_forgotten_priorities(
    api_as, coordinator, zone, team, tonight
):
    other = TeamFactory(name="Solidarité 1")
    far = ZoneFactory(code="S30", name="Ternes", geom=tile(6, 0))
    Assignment.objects.create(zone=zone, team=team, day=tonight)
    Assignment.objects.create(zone=zone, team=other, day=tonight)
    Assignment.objects.create(zone=far, team=team, day=tonight)
    forgotten = ZoneFactory(code="S12", name="Gare du Nord", geom=tile(3, 3), need_weight=5)

    body = api_as(coordinator).get(CONFLICTS).json()

    assert body["day"] == tonight.isoformat()
    assert [d["code"] for d in body["double_booked"]] == ["S06"]
    assert [f["team_name"] for f in body["far_apart"]] == ["Nord 1"]
    assert body["far_apart"][0]["distance_m"] == 6000
    top = body["uncovered_priorities"][0]
    assert (top["zone"], top["rank"]) == (forgotten.pk, 1)
    assert "Gare du Nord" in top["message"] and top["reason"]
    assert body["count"] == 1 + 1 + len(body["uncovered_priorities"])


def test_conflicts_are_for_the_coordination(api_as, team, db):
    member = user_with_role(Role.FIELD, team=team)
    assert api_as(member).get(CONFLICTS).status_code == 403
    assert api_as(user_with_role(Role.PLANNER)).get(CONFLICTS).status_code == 403


def test_conflicts_reject_a_bad_day(api_as, coordinator):
    response = api_as(coordinator).get(CONFLICTS, {"day": "lundi"})
    assert response.status_code == 400 and "day" in response.json()
