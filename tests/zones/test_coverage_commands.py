"""coverage_rebuild and white_zones commands."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from maraudes.fixes import Fix
from maraudes.services import shift_start
from tests.factories import TeamFactory, ZoneFactory, paris_time, tile
from tests.support.paris import to_wgs84
from zones.models import CoveragePiece, ZoneDayCoverage
from zones.services import track_ingest


@pytest.fixture
def walked(db):
    ZoneFactory(code="A", name="Secteur à l'est", geom=tile(0, 0))
    ZoneFactory(code="B", name="Secteur B", geom=tile(1, 0))
    shift = shift_start(team=TeamFactory(), by=None, started_at=paris_time(2026, 11, 20, 21)).shift
    transformer = to_wgs84()
    fixes = []
    for i in range(20):
        lon, lat = transformer.transform(652_300 + 10 * i, 6_862_300)
        t = paris_time(2026, 11, 20, 23) + timedelta(seconds=10 * i)
        fixes.append(Fix(t=t, lon=lon, lat=lat, accuracy=5, index=i))
    track_ingest(shift=shift, fixes=fixes)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_rebuild_recomputes_the_same_coverage(walked):
    before = ZoneDayCoverage.objects.get()
    ZoneDayCoverage.objects.all().delete()
    CoveragePiece.objects.all().delete()
    message = run("coverage_rebuild", "--from", "2026-11-20", "--to", "2026-11-20")
    assert "1 maraudes-jours" in message
    after = ZoneDayCoverage.objects.get()
    assert after.covered_m2 == pytest.approx(before.covered_m2, rel=1e-6)
    assert after.geom.sym_difference(before.geom).area < 1


def test_rebuild_without_dates_rebuilds_everything(walked):
    ZoneDayCoverage.objects.all().delete()
    run("coverage_rebuild")
    assert ZoneDayCoverage.objects.count() == 1


def test_rebuild_refuses_half_a_window(walked):
    with pytest.raises(CommandError, match="ensemble"):
        run("coverage_rebuild", "--from", "2026-11-20")


def test_white_zones_as_geojson(walked):
    data = json.loads(run("white_zones", "--from", "2026-11-20", "--to", "2026-11-20"))
    assert [f["properties"]["code"] for f in data["features"]] == ["B", "A"]
    assert data["features"][1]["geometry"]["type"] == "MultiPolygon"


def test_white_zones_as_csv(walked):
    text = run("white_zones", "--from", "2026-11-20", "--to", "2026-11-20", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["code"] for r in rows} == {"A", "B"}
    assert next(r for r in rows if r["code"] == "A")["name"] == "Secteur à l'est"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-21", "--to", "2026-11-20"], "après"),
        (["--from", "2026-11-20", "--to", "2026-11-20", "--kind", "galaxie"], "galaxie"),
    ],
)
def test_white_zones_bad_arguments(walked, args, message):
    with pytest.raises(CommandError, match=message):
        run("white_zones", *args)
