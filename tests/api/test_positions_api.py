"""POST /api/v1/shifts/{id}/positions/: fixes in, with every bad input named."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.utils import timezone

from maraudes.models import Position, Role
from tests.factories import ShiftFactory, TeamFactory, ZoneFactory, user_with_role
from zones.models import ZoneDayCoverage

NOTRE_DAME = {"lon": 2.3499, "lat": 48.8530}


@pytest.fixture
def shift(team):
    return ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=2))


def fix(seconds_ago: float = 60, **overrides):
    t = timezone.now() - timedelta(seconds=seconds_ago)
    return {"t": t.isoformat(), **NOTRE_DAME, "accuracy": 10, **overrides}


def post(client, shift, fixes):
    return client.post(f"/api/v1/shifts/{shift.pk}/positions/", {"fixes": fixes}, format="json")


def test_it_stores_a_batch_and_counts_it(api_as, member, shift):
    response = post(api_as(member), shift, [fix(60), fix(50), fix(40)])
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert Position.objects.filter(shift=shift).count() == 3


def test_a_resent_batch_is_stored_once(api_as, member, shift):
    batch = [fix(60), fix(50)]
    post(api_as(member), shift, batch)
    response = post(api_as(member), shift, batch)
    assert response.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert Position.objects.filter(shift=shift).count() == 2


def test_it_rejects_swapped_latitude_and_longitude_with_a_hint(api_as, member, shift):
    response = post(api_as(member), shift, [fix(60), fix(50, lon=48.853, lat=2.3499)])
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1
    assert "inversées" in body["rejected"][0]["reason"]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"lon": "NaN"}, "non finie"),
        ({"lat": "Infinity"}, "non finie"),
        ({"lon": 200.0}, "hors des bornes"),
        ({"lat": -95.0}, "hors des bornes"),
        ({"lon": 5.37, "lat": 43.29}, "hors du territoire"),
        ({"accuracy": None}, "accuracy"),
        ({"accuracy": -3}, "négatif"),
        ({"accuracy": "précis"}, "accuracy"),
        ({"t": "2026-11-20T21:00:00"}, "fuseau"),
        ({"t": "hier soir"}, "ISO-8601"),
        ({"t": None}, "ISO-8601"),
        ({"color": "red"}, "inconnus"),
    ],
)
def test_it_rejects_a_bad_fix_and_keeps_the_good_ones(api_as, member, shift, bad, expected):
    bad_fix = {k: v for k, v in fix(30, **bad).items() if v is not None}
    response = post(api_as(member), shift, [fix(60), bad_fix, fix(20)])
    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert expected in body["rejected"][0]["reason"]


def test_it_rejects_bare_nan_literals_fix_by_fix(api_as, member, shift):
    # Python's json.dumps writes NaN as a bare literal: the batch must survive it.
    body = json.dumps({"fixes": [fix(60), fix(50, lon=float("nan"))]})
    response = api_as(member).post(
        f"/api/v1/shifts/{shift.pk}/positions/", body, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert "non finie" in response.json()["rejected"][0]["reason"]


def test_it_rejects_a_fix_more_than_five_minutes_in_the_future(api_as, member, shift):
    response = post(api_as(member), shift, [fix(-600), fix(-60)])
    body = response.json()
    assert body["accepted"] == 1
    assert "futur" in body["rejected"][0]["reason"]


def test_it_rejects_fixes_before_check_in(api_as, member, shift):
    response = post(api_as(member), shift, [fix(3 * 3600), fix(60)])
    body = response.json()
    assert body["accepted"] == 1
    assert "avant le début" in body["rejected"][0]["reason"]


def test_an_ended_shift_still_takes_its_late_fixes_but_not_later_ones(api_as, member, shift):
    shift.ended_at = timezone.now() - timedelta(minutes=30)
    shift.save()
    response = post(api_as(member), shift, [fix(3600), fix(60)])
    body = response.json()
    assert body["accepted"] == 1
    assert "après la fin" in body["rejected"][0]["reason"]


def test_a_batch_over_the_limit_is_refused_whole_with_the_limit(api_as, member, shift, settings):
    settings.MAX_FIXES_PER_REQUEST = 10
    response = post(api_as(member), shift, [fix(100 - i) for i in range(11)])
    assert response.status_code == 413
    assert "10 au plus" in response.json()["detail"]
    assert not Position.objects.exists()


def test_an_oversized_body_is_refused(api_as, member, shift, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = post(api_as(member), shift, [fix(60, heading=1.0) for _ in range(40)])
    assert response.status_code == 413
    assert "2048 octets au plus" in response.json()["detail"]


@pytest.mark.parametrize(
    "body", ['{"fixes": [', "not json", '{"fixes": "many"}', "[]", '{"points": []}']
)
def test_malformed_bodies_get_a_400(api_as, member, shift, body):
    response = api_as(member).post(
        f"/api/v1/shifts/{shift.pk}/positions/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()


def test_a_member_cannot_post_to_another_teams_shift(api_as, shift):
    stranger = user_with_role(Role.FIELD, team=TeamFactory())
    response = post(api_as(stranger), shift, [fix(60)])
    assert response.status_code == 403
    assert not Position.objects.exists()


def test_a_planner_cannot_post_fixes(api_as, shift):
    response = post(api_as(user_with_role(Role.PLANNER)), shift, [fix(60)])
    assert response.status_code == 403


def test_anonymous_requests_are_refused(api, shift):
    assert post(api, shift, [fix(60)]).status_code in (401, 403)


def test_an_unknown_shift_is_a_404(api_as, member):
    response = api_as(member).post(
        "/api/v1/shifts/999999/positions/", {"fixes": [fix()]}, format="json"
    )
    assert response.status_code == 404


def test_after_the_response_the_coverage_includes_the_batch(api_as, member, shift):
    ZoneFactory(geom=MultiPolygon(Polygon.from_bbox((640e3, 6850e3, 665e3, 6870e3)), srid=2154))
    post(api_as(member), shift, [fix(60 - i) for i in range(5)])
    assert ZoneDayCoverage.objects.get().covered_m2 > 30_000
