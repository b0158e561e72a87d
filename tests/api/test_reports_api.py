"""GET /api/v1/reports/weekly/ (JSON, CSV for programs, CSV for Excel in French) and
/api/v1/reports/weekly/white-zones/ (GeoJSON)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from maraudes.models import Role
from tests.factories import TeamFactory, ZoneFactory, tile, user_with_role
from tests.support.reports import A_X, A_Y, paris, walk
from zones.reports import week_current, week_last_complete
from zones.selectors import zones_coverage

URL = "/api/v1/reports/weekly/"
WHITE_URL = "/api/v1/reports/weekly/white-zones/"


@pytest.fixture
def planner(db):
    return user_with_role(Role.PLANNER)


@pytest.fixture
def coordinator(db):
    return user_with_role(Role.COORDINATOR)


def get_json(client, query: str) -> dict:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_gives_the_week_per_zone_with_totals_and_trend(api_as, planner, week47):
    body = get_json(api_as(planner), "week=2026-W47&kind=quartier")

    assert body["week"] == "2026-W47" and body["kind"] == "quartier"
    assert (body["from"], body["to"], body["previous_week"]) == (
        "2026-11-16",
        "2026-11-22",
        "2026-W46",
    )
    assert body["complete"] is True
    assert body["hour_bands"][0] == "20h" and body["hour_bands"][-1] == "05h"
    assert [z["code"] for z in body["zones"]] == ["1", "2", "10"]
    one = body["zones"][0]
    assert one["name"] == "Saint-Germain-l'Auxerrois"
    assert one["passages"] == 2 and one["last_visit"] == "2026-11-17"
    assert one["covered_ratio"] + one["white_ratio"] == pytest.approx(1, abs=1e-3)
    assert one["white_ha"] == pytest.approx(one["white_m2"] / 10_000, abs=0.01)
    assert one["change"] == "up" and one["previous"]["covered_ratio"] == 0
    assert set(one["needs"]) >= {"food", "shelter", "health"}
    assert body["totals"]["passages"] == 3
    assert body["totals"]["encounters"] == 3 and body["totals"]["people"] == 7
    assert len(body["trend"]) == 8 and body["trend"][-1]["week"] == "2026-W47"
    assert body["trend"][-1]["covered_ratio"] == body["totals"]["covered_ratio"]
    assert body["need_labels"]["shelter"] == "hébergement / 115"
    # Two walks of five minutes, at 22:00 and 23:00.
    assert one["presence_hours"] == pytest.approx(600 / 3600, abs=0.01)
    assert one["night_hours"]["22h"] == pytest.approx(300 / 3600, abs=0.01)
    assert one["night_hours"]["23h"] == pytest.approx(300 / 3600, abs=0.01)
    assert body["totals"]["presence_hours"] == pytest.approx(1200 / 3600, abs=0.01)


def test_its_figures_agree_with_the_coverage_endpoint(api_as, planner, week47):
    client = api_as(planner)
    report = get_json(client, "week=2026-W47&kind=quartier")
    coverage = client.get("/api/v1/coverage/?from=2026-11-16&to=2026-11-22&kind=quartier").json()
    by_code = {row["code"]: row for row in coverage}

    for zone in report["zones"]:
        ref = by_code[zone["code"]]
        assert zone["white_m2"] == pytest.approx(ref["white_m2"], abs=1e-4 * ref["area_m2"])
        assert zone["covered_m2"] == pytest.approx(ref["covered_m2"], abs=1e-4 * ref["area_m2"])
        assert (zone["passages"], zone["last_visit"]) == (ref["passages"], ref["last_visit"])


def test_people_counts_below_three_are_hidden_whoever_asks(api_as, planner, coordinator, week47):
    for user in (planner, coordinator):
        body = get_json(api_as(user), "week=2026-W47&kind=quartier")
        one, two, ten = body["zones"]
        assert (one["encounters"], one["people"]) == (2, 6)
        # One encounter of one person in zone 2: neither figure is given.
        assert (two["encounters"], two["people"]) == ("<3", "<3")
        assert one["needs"]["food"] == {"encounters": "<3", "people": "<3"}
        assert one["needs"]["shelter"] == {"encounters": 1, "people": 4}
        assert (ten["encounters"], ten["people"]) == (0, 0)


def test_the_default_week_is_the_last_complete_one_and_the_kind_quartier(api_as, planner, week47):
    body = get_json(api_as(planner), "")

    assert body["week"] == str(week_last_complete())
    assert body["kind"] == "quartier"


def test_an_empty_week_is_zeros(api_as, planner, week47):
    body = get_json(api_as(planner), "week=2026-W40&kind=quartier")

    assert all(z["passages"] == 0 and z["covered_m2"] == 0 for z in body["zones"])
    assert body["totals"]["white_ratio"] == 1 and body["totals"]["encounters"] == 0


def test_the_october_clock_change_week_includes_its_sunday_night(api_as, planner, db):
    ZoneFactory(code="1", name="Un", kind="quartier", geom=tile(0, 0))
    team = TeamFactory()
    # Sunday 25 October 2026 (clocks went back that morning), 23:50, to Monday 00:00.
    walk(team, start=paris(2026, 10, 25, 23, 50), x=A_X, y=A_Y, n=61)

    w43 = get_json(api_as(planner), "week=2026-W43&kind=quartier")
    w44 = get_json(api_as(planner), "week=2026-W44&kind=quartier")

    assert w43["zones"][0]["passages"] == 1 and w43["zones"][0]["last_visit"] == "2026-10-25"
    assert w44["zones"][0]["passages"] == 0 and w44["zones"][0]["previous"]["passages"] == 1
    reference = zones_coverage(
        day_from=paris(2026, 10, 19).date(), day_to=paris(2026, 10, 25).date()
    )
    assert w43["zones"][0]["covered_m2"] == pytest.approx(reference[0].covered_m2, rel=1e-4)


# --- CSV ------------------------------------------------------------------------------------


def test_the_excel_csv_has_a_bom_semicolons_decimal_commas_and_accents(api_as, planner, week47):
    response = api_as(planner).get(f"{URL}?week=2026-W47&kind=quartier&format=csv&dialect=excel-fr")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="rapport-maraudes-2026-W47-quartier-excel.csv"'
    )
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "Dernière visite" in text and "Élysée" in text and "hébergement / 115" in text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header, *zones, total = rows
    assert len(header) > 20 and all(len(row) == len(header) for row in rows)
    assert header[:6] == [
        "Code",
        "Zone",
        "Surface (ha)",
        "Part couverte (%)",
        "Surface non couverte (ha)",
        "Dernière visite",
    ]
    one = dict(zip(header, zones[0], strict=True))
    assert one["Zone"] == "Saint-Germain-l'Auxerrois"
    assert one["Surface (ha)"] == "100,00"
    assert "," in one["Part couverte (%)"] and "." not in one["Part couverte (%)"]
    assert one["Dernière visite"] == "17/11/2026"
    assert one["Heures de présence"] == "0,17"  # two walks of 5 minutes
    assert one["Évolution de la part couverte"] == "hausse"
    two = dict(zip(header, zones[1], strict=True))
    assert two["Personnes rencontrées"] == "<3" and two["Rencontres"] == "<3"
    assert total[1] == "Ensemble du territoire"
    assert float(one["Surface non couverte (ha)"].replace(",", ".")) > 0
    assert b"\r\n" in raw


def test_the_plain_csv_is_for_programs(api_as, coordinator, week47):
    response = api_as(coordinator).get(f"{URL}?week=2026-W47&kind=quartier&format=csv")

    assert response.status_code == 200
    raw = response.content
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [r["code"] for r in rows] == ["1", "2", "10"]  # no total line
    one = rows[0]
    assert one["week"] == "2026-W47" and one["kind"] == "quartier"
    assert float(one["area_m2"]) == pytest.approx(1_000_000)
    assert 0 < float(one["covered_ratio"]) < 1
    assert one["last_visit"] == "2026-11-17"
    assert rows[1]["people"] == "<3"  # exports hide small counts, for coordinators too
    assert rows[2]["name"] == "Élysée"


def test_errors_stay_json_when_csv_was_asked(api_as, planner, week47):
    response = api_as(planner).get(f"{URL}?week=2026-W54&format=csv")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "53 semaines" in response.json()["week"][0]


# --- Bad input and access -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("week=2026-W54", "week", "2026 compte 53 semaines"),
        ("week=last", "week", "n'est pas une semaine ISO"),
        ("week=2026-11-16", "week", "AAAA-Wss"),
        ("kind=galaxie", "kind", "galaxie"),
        ("dialect=excel&format=csv", "dialect", "excel-fr"),
        ("format=xml", "format", "csv"),
        ("semaine=2026-W47", "semaine", "inconnu"),
    ],
)
def test_bad_input_gets_a_400_with_the_reason(api_as, planner, week47, query, field, says):
    response = api_as(planner).get(f"{URL}?{query}")

    assert response.status_code == 400
    assert says in response.json()[field][0]


def test_a_week_in_the_future_is_refused(api_as, planner, week47):
    future = week_current().shifted(1)

    response = api_as(planner).get(f"{URL}?week={future}")

    assert response.status_code == 400
    assert "n'a pas encore commencé" in response.json()["week"][0]
    assert api_as(planner).get(f"{URL}?week={week_current()}").json()["complete"] is False


def test_field_members_and_strangers_get_no_report(api, api_as, week47):
    member = user_with_role(Role.FIELD, team=TeamFactory())

    assert api_as(member).get(URL).status_code == 403
    assert api_as(member).get(WHITE_URL).status_code == 403
    assert api.get(URL).status_code == 401


def test_the_query_count_does_not_grow_with_zones(api_as, planner, week47):
    client = api_as(planner)

    def count(fmt: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{URL}?week=2026-W47&kind=quartier{fmt}")
            assert response.status_code == 200
        return len(queries)

    before, before_csv = count(""), count("&format=csv")
    for n in range(12):
        ZoneFactory(code=f"X{n}", kind="quartier", geom=tile(n, 4))
    assert count("") == before <= 12
    assert count("&format=csv") == before_csv == before


# --- White zones ----------------------------------------------------------------------------


def test_the_white_zones_are_geojson_in_wgs84_largest_first(api_as, planner, week47):
    response = api_as(planner).get(f"{WHITE_URL}?week=2026-W47&kind=quartier")

    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["week"] == "2026-W47"
    codes = [f["properties"]["code"] for f in body["features"]]
    assert codes == ["10", "2", "1"]
    whites = [f["properties"]["white_m2"] for f in body["features"]]
    assert whites == sorted(whites, reverse=True)
    geometry = body["features"][0]["geometry"]
    assert geometry["type"] == "MultiPolygon"
    lon, lat = geometry["coordinates"][0][0][0]
    assert 2.2 < lon < 2.5 and 48.8 < lat < 48.95
    one = body["features"][2]["properties"]
    report = get_json(api_as(planner), "week=2026-W47&kind=quartier")
    assert one["white_m2"] == pytest.approx(report["zones"][0]["white_m2"], abs=1)
    assert one["passages"] == 2


def test_the_white_zones_refuse_bad_weeks(api_as, planner, week47):
    response = api_as(planner).get(f"{WHITE_URL}?week=2026-W54")

    assert response.status_code == 400 and "week" in response.json()


# --- Schema ---------------------------------------------------------------------------------


def test_the_report_is_documented_in_the_openapi_schema(api):
    schema = json.loads(api.get("/api/schema/", {"format": "json"}).content)

    operation = schema["paths"][URL]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"week", "kind", "format", "dialect"}
    assert {"application/json", "text/csv"} <= set(operation["responses"]["200"]["content"])
    assert {"400", "401", "403"} <= set(operation["responses"])
    assert "get" in schema["paths"][WHITE_URL]
