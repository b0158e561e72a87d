"""POST /api/v1/shifts/{id}/gpx/: a GPX track uploaded after the fact, safely."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from maraudes.models import Position, Role
from tests.factories import ShiftFactory, TeamFactory, ZoneFactory, user_with_role
from tests.maraudes.test_gpx import BILLION_LAUGHS, EXTERNAL_ENTITY, gpx, pt
from zones.models import ZoneDayCoverage

pytestmark = pytest.mark.django_db

RUN = "gpx/paris/paris14_running_2015-08-03.gpx"  # 2015-08-03, 19:07:54 to 19:37:27 UTC


@pytest.fixture
def team(db):
    return TeamFactory()


@pytest.fixture
def member(team):
    return user_with_role(Role.FIELD, team=team)


@pytest.fixture
def run_shift(team):
    """A shift whose window covers the Paris run of 3 August 2015."""
    return ShiftFactory(
        team=team,
        started_at=datetime(2015, 8, 3, 19, 0, tzinfo=UTC),
        ended_at=datetime(2015, 8, 3, 20, 0, tzinfo=UTC),
    )


@pytest.fixture
def open_shift(team):
    return ShiftFactory(team=team, started_at=timezone.now() - timedelta(hours=2))


@pytest.fixture
def paris_14e(db):
    square = Polygon.from_bbox((2.300, 48.820, 2.330, 48.840))
    square.srid = 4326
    square.transform(2154)
    return ZoneFactory(code="75114", name="Observatoire", geom=MultiPolygon(square, srid=2154))


def upload(client, shift, data: bytes, name: str = "trace.gpx"):
    return client.post(
        f"/api/v1/shifts/{shift.pk}/gpx/",
        {"file": SimpleUploadedFile(name, data, content_type="application/gpx+xml")},
        format="multipart",
    )


def raw(client, shift, data: bytes, content_type: str = "application/gpx+xml"):
    return client.generic(
        "POST", f"/api/v1/shifts/{shift.pk}/gpx/", data, content_type=content_type
    )


def test_it_imports_the_paris_run_as_a_file(api_as, member, run_shift, paris_14e, shared_data):
    response = upload(api_as(member), run_shift, (shared_data / RUN).read_bytes())

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (257, 0, [])
    assert (body["tracks"], body["segments"], body["points"]) == (1, 1, 257)
    assert Position.objects.filter(shift=run_shift, source="gpx").count() == 257
    coverage = ZoneDayCoverage.objects.get(zone=paris_14e)
    assert coverage.day.isoformat() == "2015-08-03"
    assert coverage.covered_m2 > 500_000  # 4.9 km with a 100 m radius on foot


def test_it_imports_a_raw_body_and_a_second_upload_is_all_duplicates(
    api_as, member, run_shift, shared_data
):
    data = (shared_data / RUN).read_bytes()
    client = api_as(member)

    first = raw(client, run_shift, data)
    again = raw(client, run_shift, data, content_type="application/octet-stream")

    assert first.json()["accepted"] == 257
    assert again.status_code == 200
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 257)
    assert Position.objects.filter(shift=run_shift).count() == 257


def test_a_bom_is_no_obstacle(api_as, member, run_shift, shared_data):
    data = codecs.BOM_UTF8 + (shared_data / RUN).read_bytes()

    assert upload(api_as(member), run_shift, data).json()["accepted"] == 257


def test_points_outside_the_shift_are_refused_with_the_reason(api_as, member, team, shared_data):
    shift = ShiftFactory(
        team=team,
        started_at=datetime(2015, 8, 3, 19, 20, tzinfo=UTC),
        ended_at=datetime(2015, 8, 3, 19, 30, tzinfo=UTC),
    )

    body = upload(api_as(member), shift, (shared_data / RUN).read_bytes()).json()

    assert 0 < body["accepted"] < 257
    assert body["rejected_count"] == 257 - body["accepted"]
    reasons = {r["reason"] for r in body["rejected"]}
    assert any("avant le début de la maraude" in r for r in reasons)
    assert any("après la fin de la maraude" in r for r in reasons)


def test_points_without_time_are_refused_and_the_others_kept(api_as, member, open_shift):
    now = timezone.now()
    data = gpx(
        pt((now - timedelta(minutes=10)).isoformat())
        + pt(None)
        + pt((now - timedelta(minutes=9)).isoformat())
    )

    response = upload(api_as(member), open_shift, data)

    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {
            "index": 1,
            "reason": "trace 1, segment 1, point 2 : pas d'heure (<time> absente ou "
            "illisible) : un point sans heure ne peut pas être placé sur la maraude.",
        }
    ]


def test_a_file_with_waypoints_only_is_a_400(api_as, member, open_shift, shared_data):
    response = upload(
        api_as(member), open_shift, (shared_data / "gpx/other/unicode_with_bom.gpx").read_bytes()
    )

    assert response.status_code == 400
    assert "Aucune trace" in response.json()["detail"]


def test_a_track_outside_paris_is_a_400_and_nothing_is_stored(
    api_as, member, open_shift, shared_data
):
    response = upload(
        api_as(member), open_shift, (shared_data / "gpx/other/cerknicko-jezero.gpx").read_bytes()
    )

    assert response.status_code == 400
    assert "hors du territoire" in response.json()["detail"]
    assert response.json()["rejected_count"] == 296
    assert len(response.json()["rejected"]) == 200
    assert not Position.objects.exists()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (b'<?xml version="1.0"?><gpx version="1.1"><trk><trkseg><trkpt', "XML mal formé"),
        (b"", "vide"),
        (b'{"fixes": []}', "XML mal formé"),
        (b'<gpx version="1.1" creator="t"><wpt lat="48.85" lon="2.35"/></gpx>', "Aucune trace"),
    ],
)
def test_an_unusable_file_is_a_400_and_nothing_is_stored(
    api_as, member, open_shift, data, expected
):
    for response in (
        upload(api_as(member), open_shift, data),
        raw(api_as(member), open_shift, data),
    ):
        assert response.status_code == 400
        assert expected in str(response.json())
    assert not Position.objects.exists()


def test_a_20_mb_file_is_a_413(api_as, member, open_shift):
    data = gpx(pt()) + b" " * (20 * 1024 * 1024)

    assert raw(api_as(member), open_shift, data).status_code == 413
    assert upload(api_as(member), open_shift, data).status_code == 413
    assert not Position.objects.exists()


def test_a_multipart_upload_without_a_file_is_a_400(api_as, member, open_shift):
    response = api_as(member).post(
        f"/api/v1/shifts/{open_shift.pk}/gpx/", {"note": "oubli"}, format="multipart"
    )

    assert response.status_code == 400
    assert "file" in response.json()


def test_it_is_for_the_team_only(api_as, open_shift):
    stranger = user_with_role(Role.FIELD, team=TeamFactory())
    planner = user_with_role(Role.PLANNER)

    for user in (stranger, planner):
        assert upload(api_as(user), open_shift, gpx(pt())).status_code == 403


def test_a_coordinator_may_import_for_any_team(api_as, run_shift, shared_data):
    coordinator = user_with_role(Role.COORDINATOR)

    response = upload(api_as(coordinator), run_shift, (shared_data / RUN).read_bytes())

    assert response.json()["accepted"] == 257
