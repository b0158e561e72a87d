"""GET /api/v1/white-zones/ and /api/v1/coverage/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from maraudes.fixes import Fix
from maraudes.models import Role
from maraudes.services import shift_start
from tests.factories import TeamFactory, ZoneFactory, paris_time, tile, user_with_role
from tests.support.paris import to_wgs84
from zones.services import track_ingest


@pytest.fixture
def coordinator(db):
    return user_with_role(Role.COORDINATOR)


@pytest.fixture
def walked(db):
    """Two 1 km sectors; a team walks 300 m inside the first on the night of 2026-11-20."""
    first = ZoneFactory(code="A", name="Secteur A", geom=tile(0, 0))
    second = ZoneFactory(code="B", name="Secteur B", geom=tile(1, 0))
    team = TeamFactory()
    shift = shift_start(team=team, by=None, started_at=paris_time(2026, 11, 20, 21)).shift
    transformer = to_wgs84()
    fixes = []
    for i in range(31):
        lon, lat = transformer.transform(652_200 + 10 * i, 6_862_500)
        fixes.append(
            Fix(t=paris_time(2026, 11, 20, 22) + timedelta(seconds=10 * i), lon=lon, lat=lat,
                accuracy=5, index=i)
        )  # fmt: skip
    track_ingest(shift=shift, fixes=fixes)
    return first, second


def test_white_zones_are_geojson_ranked_with_a_reason(api_as, coordinator, walked):
    response = api_as(coordinator).get("/api/v1/white-zones/?from=2026-11-20&to=2026-11-20")
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "FeatureCollection"
    by_code = {f["properties"]["code"]: f for f in body["features"]}
    a, b = by_code["A"]["properties"], by_code["B"]["properties"]
    # A 300 m walk with a 100 m radius covers 300 x 200 + pi x 100^2 ≈ 91,400 m2.
    assert a["white_m2"] == pytest.approx(1_000_000 - 91_416, rel=0.005)
    assert a["last_visit"] == "2026-11-20"
    assert b["white_ratio"] == 1.0 and b["last_visit"] is None
    assert "ha non couverts" in a["reason"] and "jamais visitée" in b["reason"]
    assert (
        body["features"][0]["properties"]["priority"]
        >= body["features"][1]["properties"]["priority"]
    )
    lon, lat = by_code["A"]["geometry"]["coordinates"][0][0][0]
    assert 2.2 < lon < 2.5 and 48.8 < lat < 48.95  # WGS84 at the edge


def test_coverage_lists_every_zone_with_passages(api_as, coordinator, walked):
    rows = api_as(coordinator).get("/api/v1/coverage/?from=2026-11-20&to=2026-11-20").json()
    by_code = {r["code"]: r for r in rows}
    assert set(by_code) == {"A", "B"}
    assert by_code["A"]["passages"] == 1 and by_code["B"]["passages"] == 0
    assert by_code["A"]["covered_m2"] + by_code["A"]["white_m2"] == pytest.approx(1_000_000, abs=1)


def test_the_night_after_sees_it_all_white(api_as, coordinator, walked):
    rows = api_as(coordinator).get("/api/v1/coverage/?from=2026-11-21&to=2026-11-21").json()
    assert all(r["covered_m2"] == 0 for r in rows)
    assert {r["last_visit"] for r in rows} == {"2026-11-20", None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-11-21&to=2026-11-20", "from"),
        ("from=2025-01-01&to=2026-11-20", "to"),
        ("from=hier&to=2026-11-20", "from"),
        ("from=2026-11-20&to=2026-13-01", "to"),
        ("kind=galaxie", "kind"),
        ("colour=red", "colour"),
    ],
)
@pytest.mark.parametrize("endpoint", ["white-zones", "coverage"])
def test_bad_windows_get_a_400_naming_the_field(api_as, coordinator, query, field, endpoint):
    response = api_as(coordinator).get(f"/api/v1/{endpoint}/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_a_field_member_does_not_get_the_citywide_layers(api_as, db):
    member = user_with_role(Role.FIELD, team=TeamFactory())
    assert api_as(member).get("/api/v1/white-zones/").status_code == 403


def test_the_white_zone_query_count_does_not_grow_with_zones(api_as, coordinator, walked):
    client = api_as(coordinator)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert (
                client.get("/api/v1/white-zones/?from=2026-11-14&to=2026-11-20").status_code == 200
            )
        return len(queries)

    before = count()
    for n in range(10):
        ZoneFactory(code=f"X{n}", geom=tile(n, 3))
    assert count() == before <= 8


def test_staleness_cuts_zones_by_last_visit(api_as, coordinator, walked):
    body = api_as(coordinator).get("/api/v1/staleness/?day=2026-11-22").json()
    parts = {(f["properties"]["code"], f["properties"]["staleness"]): f for f in body["features"]}
    # Walked two nights before the 22nd: within 3 days, the rest of A and all of B not in 28.
    assert set(parts) == {("A", "3_days"), ("A", "not_28_days"), ("B", "not_28_days")}
    assert parts[("A", "3_days")]["properties"]["area_m2"] == pytest.approx(91_416, rel=0.005)
    assert parts[("B", "not_28_days")]["properties"]["area_m2"] == pytest.approx(1e6, rel=1e-6)
    tonight = api_as(coordinator).get("/api/v1/staleness/?day=2026-11-20").json()
    assert ("A", "tonight") in {
        (f["properties"]["code"], f["properties"]["staleness"]) for f in tonight["features"]
    }


def test_staleness_rejects_a_bad_day(api_as, coordinator, walked):
    response = api_as(coordinator).get("/api/v1/staleness/?day=demain")
    assert response.status_code == 400 and "day" in response.json()
