"""POST /api/v1/encounters/: three taps on a phone, stored once whatever the network does."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from maraudes.models import Encounter, Role
from tests.factories import ShiftFactory, TeamFactory, user_with_role


@pytest.fixture
def shift(db):
    return ShiftFactory(team=TeamFactory(), started_at=timezone.now() - timedelta(hours=1))


@pytest.fixture
def member(shift):
    return user_with_role(Role.FIELD, team=shift.team)


def encounter(shift, **overrides):
    return {
        "client_id": str(uuid.uuid4()),
        "shift": shift.pk,
        "seen_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
        "lon": 2.3499,
        "lat": 48.853,
        "people_count": 2,
        "needs": ["food", "shelter"],
        "actions": ["hot_drink"],
        **overrides,
    }


def test_it_logs_an_encounter_at_its_place(api_as, member, shift):
    response = api_as(member).post("/api/v1/encounters/", encounter(shift), format="json")
    assert response.status_code == 201
    stored = Encounter.objects.get()
    assert stored.people_count == 2 and stored.needs == ["food", "shelter"]
    assert stored.point.srid == 2154 and 651_000 < stored.point.x < 653_000
    assert stored.created_by == member


def test_sending_it_twice_stores_it_once(api_as, member, shift):
    body = encounter(shift)
    first = api_as(member).post("/api/v1/encounters/", body, format="json")
    again = api_as(member).post("/api/v1/encounters/", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Encounter.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"people_count": -1}, "people_count"),
        ({"people_count": 0}, "people_count"),
        ({"people_count": 500}, "people_count"),
        ({"needs": ["teleportation"]}, "needs"),
        ({"actions": ["hug"]}, "actions"),
        ({"client_id": "pas-un-uuid"}, "client_id"),
        ({"note": "x" * 281}, "note"),
        ({"lon": 48.853, "lat": 2.3499}, "lon"),
        ({"seen_at": "2026-11-20T21:00:00"}, "seen_at"),
        ({"seen_at": (timezone.now() + timedelta(hours=1)).isoformat()}, "seen_at"),
        ({"seen_at": (timezone.now() - timedelta(days=2)).isoformat()}, "seen_at"),
        ({"name": "Jean"}, "name"),
    ],
)
def test_bad_encounters_get_a_400_naming_the_field(api_as, member, shift, overrides, field):
    response = api_as(member).post(
        "/api/v1/encounters/", encounter(shift, **overrides), format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not Encounter.objects.exists()


def test_a_client_id_reused_on_another_shift_is_refused(api_as, member, shift):
    body = encounter(shift)
    api_as(member).post("/api/v1/encounters/", body, format="json")
    other = ShiftFactory(team=shift.team, started_at=shift.started_at)
    response = api_as(member).post(
        "/api/v1/encounters/", {**body, "shift": other.pk}, format="json"
    )
    assert response.status_code == 400 and "client_id" in response.json()


def test_a_member_cannot_log_on_another_teams_shift(api_as, shift):
    stranger = user_with_role(Role.FIELD, team=TeamFactory())
    response = api_as(stranger).post("/api/v1/encounters/", encounter(shift), format="json")
    assert response.status_code == 403
