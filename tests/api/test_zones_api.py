import json

import pytest
from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry

from tests.factories import ORIGIN_X, ORIGIN_Y, TeamFactory, ZoneFactory, l93, tile, user_with_role

pytestmark = pytest.mark.django_db

URL = "/api/v1/zones/"


@pytest.fixture
def client(api_as):
    return api_as(user_with_role("coordinator"))


def bbox_around(point, half_deg: float = 0.001) -> str:
    """A small WGS84 bbox around a Lambert-93 point, as Leaflet would send it."""
    p = point.transform(4326, clone=True)
    return f"{p.x - half_deg},{p.y - half_deg},{p.x + half_deg},{p.y + half_deg}"


def codes(response) -> list[str]:
    return [f["properties"]["code"] for f in response.json()["features"]]


def test_it_returns_a_geojson_feature_collection(client):
    zone = ZoneFactory(code="75104", name="Paris 4e", kind="arrondissement", geom=tile(0, 0))

    response = client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "FeatureCollection"
    (feature,) = body["features"]
    assert feature["type"] == "Feature"
    assert feature["id"] == zone.id
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert feature["properties"] == {
        "code": "75104",
        "name": "Paris 4e",
        "kind": "arrondissement",
        "parent": None,
        "need_weight": 1.0,
        "area_m2": pytest.approx(1_000_000),
    }


def test_it_speaks_wgs84_although_zones_are_stored_in_lambert_93(client):
    assert settings.SRID == 2154
    ZoneFactory(geom=tile(0, 0))

    geometry = client.get(URL).json()["features"][0]["geometry"]

    lons = [x for polygon in geometry["coordinates"] for ring in polygon for x, _ in ring]
    lats = [y for polygon in geometry["coordinates"] for ring in polygon for _, y in ring]
    assert all(2.34 < lon < 2.37 for lon in lons)  # Île de la Cité, not 652 000 m
    assert all(48.85 < lat < 48.87 for lat in lats)
    # Back in Lambert-93 it is the same square, to the 6 decimals the API sends (~10 cm).
    returned = GEOSGeometry(json.dumps(geometry), srid=4326).transform(settings.SRID, clone=True)
    stored = tile(0, 0)
    assert returned.sym_difference(stored).area < 0.001 * stored.area
    assert returned.centroid.distance(stored.centroid) < 1


def test_it_names_the_parent_zone_by_its_code(client):
    paris4 = ZoneFactory(code="75104", kind="arrondissement", geom=tile(0, 0, size=2000))
    ZoneFactory(code="7510413", kind="quartier", parent=paris4, geom=tile(0, 0))

    response = client.get(URL, {"kind": "quartier"})

    assert [f["properties"]["parent"] for f in response.json()["features"]] == ["75104"]


def test_it_filters_by_kind(client):
    ZoneFactory(code="75104", kind="arrondissement", geom=tile(0, 0, size=2000))
    ZoneFactory(code="7510413", kind="quartier", geom=tile(0, 0))
    ZoneFactory(code="7510414", kind="quartier", geom=tile(1, 0))

    assert codes(client.get(URL, {"kind": "quartier"})) == ["7510413", "7510414"]
    assert codes(client.get(URL, {"kind": "arrondissement"})) == ["75104"]
    assert len(codes(client.get(URL))) == 3


def test_it_filters_by_a_wgs84_bbox(client):
    ZoneFactory(code="A", geom=tile(0, 0))
    ZoneFactory(code="B", geom=tile(5, 0))

    near_a = bbox_around(l93(500, 500))
    near_b = bbox_around(l93(5500, 500))
    between = bbox_around(l93(3000, 500))

    assert codes(client.get(URL, {"bbox": near_a})) == ["A"]
    assert codes(client.get(URL, {"bbox": near_b})) == ["B"]
    assert codes(client.get(URL, {"bbox": between})) == []
    assert codes(client.get(URL, {"bbox": "2.2,48.8,2.5,48.9"})) == ["A", "B"]


def test_it_combines_kind_and_bbox(client):
    ZoneFactory(code="A", kind="quartier", geom=tile(0, 0))
    ZoneFactory(code="B", kind="quartier", geom=tile(5, 0))
    ZoneFactory(code="C", kind="sector", geom=tile(0, 0))

    response = client.get(URL, {"kind": "quartier", "bbox": bbox_around(l93(500, 500))})

    assert codes(response) == ["A"]


def test_it_returns_an_empty_collection_when_there_are_no_zones(client):
    assert client.get(URL).json() == {"type": "FeatureCollection", "features": []}


def test_it_is_readable_by_a_field_member(api_as):
    ZoneFactory()
    field = user_with_role("field", team=TeamFactory())

    assert api_as(field).get(URL).status_code == 200


def test_it_works_with_the_browser_session(client_with_session):
    ZoneFactory()

    response = client_with_session.get(URL, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response.json()["type"] == "FeatureCollection"


@pytest.fixture
def client_with_session(client):
    from django.test import Client

    browser = Client()
    browser.force_login(user_with_role("planner"))
    return browser


def test_it_refuses_anonymous_readers(api):
    assert api.get(URL).status_code == 401


def test_it_rejects_an_unknown_kind_listing_the_known_ones(client):
    ZoneFactory(kind="quartier")

    response = client.get(URL, {"kind": "departement"})

    assert response.status_code == 400
    (message,) = response.json()["kind"]
    assert "departement" in message
    assert "quartier" in message


@pytest.mark.parametrize(
    "bbox",
    [
        "abc",
        "2.3,48.8,2.4",
        "2.3,48.8,2.4,48.9,1",
        "2.3;48.8;2.4;48.9",
        "nan,48.8,2.4,48.9",
        "2.3,48.8,inf,48.9",
        "2.4,48.8,2.3,48.9",  # min_lon > max_lon
        "48.8,2.3,48.9,2.4",  # lat/lon swapped: still a valid box, but check the bounds below
        "2.3,-91,2.4,48.9",
        "2.3,48.8,181,48.9",
        "2.3,48.8,2.3,48.9",  # empty
    ],
)
def test_it_rejects_a_malformed_bbox(client, bbox):
    response = client.get(URL, {"bbox": bbox})

    if bbox == "48.8,2.3,48.9,2.4":
        # Swapped lat/lon is a box in the Gulf of Aden: legal, and empty here.
        assert response.status_code == 200
        assert codes(response) == []
        return
    assert response.status_code == 400
    assert list(response.json()) == ["bbox"]
    assert "min_lon" in response.json()["bbox"][0] or "min < max" in response.json()["bbox"][0]


def test_it_rejects_an_unknown_parameter(client):
    response = client.get(URL, {"kinds": "quartier"})

    assert response.status_code == 400
    assert list(response.json()) == ["kinds"]


def test_it_lists_zones_in_a_constant_number_of_queries(client, django_assert_max_num_queries):
    parents = [
        ZoneFactory(kind="arrondissement", code=f"A{i}", geom=tile(i, 0, size=5000))
        for i in range(3)
    ]
    for i in range(30):
        ZoneFactory(kind="quartier", parent=parents[i % 3], geom=tile(i % 10, i // 10))

    # token, zones
    with django_assert_max_num_queries(2):
        response = client.get(URL)
    assert len(response.json()["features"]) == 33

    # token, kinds, zones
    with django_assert_max_num_queries(3):
        response = client.get(URL, {"kind": "quartier", "bbox": "2.0,48.5,2.8,49.2"})
    assert len(response.json()["features"]) == 30
    assert {f["properties"]["parent"] for f in response.json()["features"]} == {"A0", "A1", "A2"}


def test_the_test_tiles_sit_in_paris():
    # Guards the fixtures the tests above rely on: the origin is Notre-Dame in Lambert-93.
    assert (ORIGIN_X, ORIGIN_Y) == (652_000.0, 6_862_000.0)
