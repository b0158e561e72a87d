"""Shifts: check-in, check-out, figures and track."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from maraudes.models import Role, Shift
from maraudes.services import tracker_token_hash
from tests.factories import ShiftFactory, TeamFactory, user_with_role


def test_a_member_checks_in_and_gets_a_tracker_token(api_as, team, member):
    response = api_as(member).post("/api/v1/shifts/", {"team": team.pk}, format="json")
    assert response.status_code == 201
    body = response.json()
    shift = Shift.objects.get(pk=body["id"])
    assert len(body["tracker_token"]) >= 40
    # Only the hash is stored.
    assert shift.tracker_token_hash == tracker_token_hash(body["tracker_token"])
    assert body["tracker_token"] not in shift.tracker_token_hash
    assert shift.started_by == member


def test_a_member_cannot_check_in_another_team(api_as, member):
    other = TeamFactory()
    response = api_as(member).post("/api/v1/shifts/", {"team": other.pk}, format="json")
    assert response.status_code == 403


def test_a_coordinator_records_an_outing_after_the_fact(api_as, team):
    coordinator = user_with_role(Role.COORDINATOR)
    started = (timezone.now() - timedelta(days=3)).isoformat()
    response = api_as(coordinator).post(
        "/api/v1/shifts/", {"team": team.pk, "started_at": started}, format="json"
    )
    assert response.status_code == 201


def test_a_member_cannot_backdate_a_shift_by_days(api_as, team, member):
    started = (timezone.now() - timedelta(days=3)).isoformat()
    response = api_as(member).post(
        "/api/v1/shifts/", {"team": team.pk, "started_at": started}, format="json"
    )
    assert response.status_code == 400
    assert "started_at" in response.json()


def test_a_member_may_send_a_check_in_made_offline_an_hour_ago(api_as, team, member):
    started = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api_as(member).post(
        "/api/v1/shifts/", {"team": team.pk, "started_at": started}, format="json"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"team": 999999}, "team"),
        ({"team": "rouge"}, "team"),
        ({}, "team"),
        ({"team": None, "colour": "red"}, "colour"),
    ],
)
def test_bad_check_ins_name_the_field(api_as, member, body, field):
    response = api_as(member).post("/api/v1/shifts/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_a_check_in_in_the_future_is_refused(api_as, team, member):
    started = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api_as(member).post(
        "/api/v1/shifts/", {"team": team.pk, "started_at": started}, format="json"
    )
    assert response.status_code == 400
    assert "started_at" in response.json()


def test_check_out_ends_the_shift_once(api_as, team, member):
    shift = ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=3))
    client = api_as(member)
    response = client.post(f"/api/v1/shifts/{shift.pk}/end/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["ended_at"]
    again = client.post(f"/api/v1/shifts/{shift.pk}/end/", {}, format="json")
    assert again.status_code == 400
    assert "déjà terminée" in str(again.json())


def test_check_out_before_check_in_is_refused(api_as, team, member):
    shift = ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=1))
    ended = (timezone.now() - timedelta(hours=2)).isoformat()
    response = api_as(member).post(
        f"/api/v1/shifts/{shift.pk}/end/", {"ended_at": ended}, format="json"
    )
    assert response.status_code == 400
    assert "ended_at" in response.json()


def test_the_shift_shows_its_fix_count_and_track(api_as, team, member):
    client = api_as(member)
    shift = ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=1))
    now = timezone.now()
    fixes = [
        {"t": (now - timedelta(seconds=60 - 10 * i)).isoformat(), "lon": 2.35 + i * 1e-4,
         "lat": 48.85, "accuracy": 8}
        for i in range(4)
    ]  # fmt: skip
    client.post(f"/api/v1/shifts/{shift.pk}/positions/", {"fixes": fixes}, format="json")
    assert client.get(f"/api/v1/shifts/{shift.pk}/").json()["fix_count"] == 4
    track = client.get(f"/api/v1/shifts/{shift.pk}/track/").json()
    assert track["type"] == "FeatureCollection"
    line = track["features"][0]["geometry"]
    assert line["type"] == "LineString"
    assert line["coordinates"][0] == pytest.approx([2.35, 48.85], abs=1e-6)


def test_a_member_cannot_see_another_teams_shift(api_as, member):
    shift = ShiftFactory(team=TeamFactory())
    assert api_as(member).get(f"/api/v1/shifts/{shift.pk}/").status_code == 404
    assert api_as(member).get(f"/api/v1/shifts/{shift.pk}/track/").status_code == 404
