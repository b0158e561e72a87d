"""The live map's own layers: GET /api/v1/encounters/ and GET /api/v1/live/teams/."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maraudes.fixes import Fix
from maraudes.models import Role
from maraudes.services import encounter_create, shift_end, shift_start
from tests.factories import TeamFactory, user_with_role
from tests.support.paris import to_wgs84
from zones.services import track_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def coordinator():
    return user_with_role(Role.COORDINATOR)


def lonlat(dx: float, dy: float = 500.0) -> tuple[float, float]:
    return to_wgs84().transform(652_000 + dx, 6_862_000 + dy)


def out_now(team=None, *, hours: float = 1.0):
    return shift_start(
        team=team or TeamFactory(), by=None, started_at=timezone.now() - timedelta(hours=hours)
    ).shift


def meet(shift, *, minutes_ago: float, people: int = 1, note: str = ""):
    lon, lat = lonlat(100)
    return encounter_create(
        client_id=uuid.uuid4(),
        shift=shift,
        seen_at=timezone.now() - timedelta(minutes=minutes_ago),
        lon=lon,
        lat=lat,
        people_count=people,
        needs=["food"],
        note=note,
    ).encounter


# --- Encounters -----------------------------------------------------------------------------


def test_encounters_of_the_window_are_geojson_without_the_note(api_as, coordinator):
    shift = out_now()
    seen = meet(shift, minutes_ago=10, people=3, note="dort sous le pont")

    body = api_as(coordinator).get("/api/v1/encounters/").json()

    assert body["type"] == "FeatureCollection" and body["truncated"] is False
    (feature,) = body["features"]
    assert feature["id"] == seen.pk
    lon, lat = feature["geometry"]["coordinates"]
    assert 2.3 < lon < 2.4 and 48.8 < lat < 48.9  # WGS84 at the edge
    assert feature["properties"]["people_count"] == 3
    assert feature["properties"]["team"] == shift.team_id
    assert "note" not in feature["properties"]
    assert "pont" not in str(body)


def test_encounters_outside_the_window_or_the_bbox_are_left_out(api_as, coordinator):
    meet(out_now(), minutes_ago=10)
    client = api_as(coordinator)
    last_month = (timezone.now() - timedelta(days=40)).date()

    old_window = client.get(
        "/api/v1/encounters/", {"from": last_month.isoformat(), "to": last_month.isoformat()}
    )
    elsewhere = client.get("/api/v1/encounters/", {"bbox": "2.20,48.80,2.25,48.82"})
    here = client.get("/api/v1/encounters/", {"bbox": "2.30,48.80,2.40,48.90"})

    assert old_window.json()["features"] == []
    assert elsewhere.json()["features"] == []
    assert len(here.json()["features"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [("from=hier", "from"), ("bbox=1,2,3", "bbox"), ("note=1", "note")],
)
def test_bad_encounter_queries_are_400(api_as, coordinator, query, field):
    response = api_as(coordinator).get(f"/api/v1/encounters/?{query}")
    assert response.status_code == 400 and field in response.json()


def test_the_encounter_layer_is_for_the_coordination(api_as):
    team = TeamFactory()
    assert (
        api_as(user_with_role(Role.FIELD, team=team)).get("/api/v1/encounters/").status_code == 403
    )
    assert api_as(user_with_role(Role.PLANNER)).get("/api/v1/encounters/").status_code == 403


def test_phones_still_post_encounters_on_the_same_url(api_as):
    shift = out_now()
    member = user_with_role(Role.FIELD, team=shift.team)
    lon, lat = lonlat(50)
    response = api_as(member).post(
        "/api/v1/encounters/",
        {
            "client_id": str(uuid.uuid4()),
            "shift": shift.pk,
            "seen_at": timezone.now().isoformat(),
            "lon": lon,
            "lat": lat,
        },
        format="json",
    )
    assert response.status_code == 201


def test_the_encounter_layer_costs_one_query_whatever_its_size(api_as, coordinator):
    client = api_as(coordinator)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/encounters/").status_code == 200
        return len(queries)

    before = count()
    for i in range(10):
        meet(out_now(), minutes_ago=i + 1)
    assert count() == before


# --- Active teams ---------------------------------------------------------------------------


def walk(shift, *, start, count: int, step_s: int = 60, accuracy: float = 5.0):
    fixes = []
    for i in range(count):
        lon, lat = lonlat(10 * i)
        fixes.append(
            Fix(t=start + timedelta(seconds=step_s * i), lon=lon, lat=lat, accuracy=accuracy)
        )
    track_ingest(shift=shift, fixes=fixes)
    return fixes


def test_active_teams_come_with_their_last_fix_and_trail(api_as, coordinator):
    team = TeamFactory(name="Nord 1", color="#d62728")
    shift = out_now(team)
    start = timezone.now() - timedelta(minutes=30)
    fixes = walk(shift, start=start, count=30)  # one a minute for 30 minutes
    ended = out_now(TeamFactory(name="Rentrée"))
    shift_end(shift=ended)

    (row,) = api_as(coordinator).get("/api/v1/live/teams/").json()

    assert (row["shift"], row["team"], row["team_name"], row["color"]) == (
        shift.pk,
        team.pk,
        "Nord 1",
        "#d62728",
    )
    last = fixes[-1]
    assert row["last_fix"]["lon"] == pytest.approx(last.lon, abs=1e-6)
    assert row["last_fix"]["t"] == last.t.isoformat()
    # The last 15 minutes of fixes, up to the last one, with their times.
    coords = row["trail"]["coordinates"]
    assert row["trail"]["type"] == "LineString" and len(coords) == 16
    assert coords[-1] == pytest.approx([last.lon, last.lat], abs=1e-6)
    assert len(row["trail_times"]) == 16
    assert row["trail_times"][-1] == pytest.approx(last.t.timestamp())


def test_a_team_without_fixes_is_listed_without_a_position(api_as, coordinator):
    shift = out_now()
    (row,) = api_as(coordinator).get("/api/v1/live/teams/").json()
    assert row["shift"] == shift.pk and row["last_fix"] is None and row["trail"] is None


def test_inaccurate_fixes_do_not_draw_the_trail(api_as, coordinator):
    shift = out_now()
    walk(shift, start=timezone.now() - timedelta(minutes=5), count=3, accuracy=500)
    (row,) = api_as(coordinator).get("/api/v1/live/teams/").json()
    assert row["last_fix"]["accuracy"] == 500
    assert row["trail"] is None


def test_active_teams_are_for_the_coordination(api_as):
    team = TeamFactory()
    assert (
        api_as(user_with_role(Role.FIELD, team=team)).get("/api/v1/live/teams/").status_code == 403
    )


def test_active_teams_cost_one_query_whatever_their_number(api_as, coordinator):
    client = api_as(coordinator)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/live/teams/").status_code == 200
        return len(queries)

    before = count()
    for _ in range(5):
        walk(out_now(), start=timezone.now() - timedelta(minutes=10), count=3)
    assert count() == before
