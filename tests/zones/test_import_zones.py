"""manage.py import_zones: real Paris boundaries in, every bad input refused whole."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from ctypes import POINTER, byref, c_char_p, c_int, c_void_p
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.gis.gdal import DataSource
from django.core.management import CommandError, call_command
from django.db.models import Count

from tests.factories import ORIGIN_X, ORIGIN_Y, ZoneFactory, tile
from zones.models import Zone

pytestmark = pytest.mark.django_db

PARIS_KM2 = 105.37
BOUNDARIES = "boundaries"
EDGE = "geometry_edge_cases"


def import_zones(path, *args: str, **options) -> str:
    out = StringIO()
    call_command("import_zones", str(path), *args, stdout=out, **options)
    return out.getvalue()


def import_secteurs(path, *args: str) -> str:
    return import_zones(path, "--kind=secteur", "--code-field=code", "--name-field=nom", *args)


def import_arrondissements(shared_data: Path) -> str:
    return import_zones(
        shared_data / BOUNDARIES / "paris_arrondissements.geojson",
        "--kind=arrondissement",
        "--code-field=c_ar",
        "--name-field=l_aroff",
    )


def import_quartiers(shared_data: Path, *args: str) -> str:
    return import_zones(
        shared_data / BOUNDARIES / "paris_quartiers_administratifs.geojson",
        "--kind=quartier",
        "--code-field=c_qu",
        "--name-field=l_qu",
        "--parent-field=c_ar",
        *args,
    )


# --- Small GeoJSON files, written in tmp_path -----------------------------------------------

# Around Notre-Dame, in WGS84 degrees: inside the default territory.
LON, LAT = 2.3499, 48.8530


def square(col: int = 0, size: float = 0.005) -> dict:
    x0, y0 = LON + col * size, LAT
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def hourglass() -> dict:
    d = 0.005
    ring = [[LON, LAT], [LON + d, LAT + d], [LON + d, LAT], [LON, LAT + d], [LON, LAT]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(geometry: dict | None, **properties) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def write_geojson(path: Path, *features: dict, crs: int | None = None) -> Path:
    collection: dict = {"type": "FeatureCollection", "features": list(features)}
    if crs is not None:
        # The pre-RFC 7946 "crs" member, which GDAL still honours.
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs}"}}
    path.write_text(json.dumps(collection), encoding="utf-8")
    return path


def l93_tile_coordinates(col: int = 0) -> dict:
    """tile(col, 0) from the factories, as raw Lambert-93 GeoJSON coordinates."""
    x0, y0 = ORIGIN_X + col * 1000, ORIGIN_Y
    ring = [[x0, y0], [x0 + 1000, y0], [x0 + 1000, y0 + 1000], [x0, y0 + 1000], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def geopackage_from(source: Path, target: Path, *, srs: str) -> Path:
    """Convert with GDAL's own library (what GeoDjango loads), assigning `srs` to the layer:
    no ogr2ogr binary or GDAL Python bindings needed."""
    from django.contrib.gis.gdal.libgdal import lgdal

    options_new = lgdal.GDALVectorTranslateOptionsNew
    options_new.restype, options_new.argtypes = c_void_p, [POINTER(c_char_p), c_void_p]
    translate = lgdal.GDALVectorTranslate
    translate.restype = c_void_p
    translate.argtypes = [c_char_p, c_void_p, c_int, POINTER(c_void_p), c_void_p, POINTER(c_int)]
    lgdal.GDALClose.argtypes = [c_void_p]
    lgdal.GDALVectorTranslateOptionsFree.argtypes = [c_void_p]

    args = [b"-f", b"GPKG", b"-a_srs", srs.encode()]
    options = options_new((c_char_p * (len(args) + 1))(*args, None), None)
    src = DataSource(str(source))
    usage_error = c_int(0)
    out = translate(
        str(target).encode(), None, 1, (c_void_p * 1)(src.ptr), options, byref(usage_error)
    )
    lgdal.GDALVectorTranslateOptionsFree(options)
    assert out, "GDALVectorTranslate failed"
    lgdal.GDALClose(out)
    return target


# --- Refusals leave the database as it was --------------------------------------------------


@pytest.fixture
def sentinel() -> Zone:
    """A zone already there, with the code the bad files also use: it must survive them."""
    return ZoneFactory(kind="secteur", code="A", name="Avant", need_weight=2.5, geom=tile(5, 5))


def assert_refused(run, *expected: str) -> str:
    """Run an import that must fail; return its message after checking nothing changed."""
    before = list(Zone.objects.order_by("pk").values_list("pk", "kind", "code", "name"))
    with pytest.raises(CommandError) as excinfo:
        run()
    message = str(excinfo.value)
    for text in expected:
        assert text in message
    after = list(Zone.objects.order_by("pk").values_list("pk", "kind", "code", "name"))
    assert after == before
    return message


def assert_untouched(zone: Zone) -> None:
    fresh = Zone.objects.get(pk=zone.pk)
    assert (fresh.name, fresh.need_weight, fresh.parent_id) == ("Avant", 2.5, None)
    assert fresh.geom.equals(tile(5, 5))


# --- Real Paris boundaries ------------------------------------------------------------------


def test_it_imports_the_20_arrondissements(shared_data):
    out = import_arrondissements(shared_data)

    assert "20 zones importées (20 créées, 0 mise à jour)" in out
    zones = Zone.objects.filter(kind="arrondissement")
    assert sorted(zones.values_list("code", flat=True), key=int) == [str(n) for n in range(1, 21)]
    assert zones.get(code="1").name == "Louvre"
    assert zones.get(code="13").name == "Gobelins"
    total_km2 = sum(z.area_m2 for z in zones) / 1e6
    assert total_km2 == pytest.approx(PARIS_KM2, rel=0.005)
    assert all(z.geom.srid == settings.SRID and z.geom.valid for z in zones)


def test_it_stores_geometries_reprojected_to_lambert93(shared_data):
    import_arrondissements(shared_data)

    louvre = Zone.objects.get(kind="arrondissement", code="1")
    xmin, ymin, xmax, ymax = louvre.geom.extent
    # The 1st arrondissement lies around x 649–653 km, y 6862–6865 km in Lambert-93.
    assert 648_000 < xmin < xmax < 654_000
    assert 6_861_000 < ymin < ymax < 6_866_000
    assert louvre.area_m2 == pytest.approx(louvre.geom.area)


def test_it_imports_the_80_quartiers_under_their_arrondissements(shared_data):
    import_arrondissements(shared_data)

    out = import_quartiers(shared_data, "--parent-kind=arrondissement")

    assert "80 zones importées (80 créées, 0 mise à jour)" in out
    quartiers = Zone.objects.filter(kind="quartier").select_related("parent")
    assert quartiers.count() == 80
    assert sum(q.area_m2 for q in quartiers) / 1e6 == pytest.approx(PARIS_KM2, rel=0.005)
    assert all(q.parent is not None and q.parent.kind == "arrondissement" for q in quartiers)
    first = quartiers.get(code="1")
    assert (first.name, first.parent.code) == ("Saint-Germain-l'Auxerrois", "1")
    for q in quartiers:
        assert q.parent.geom.contains(q.geom.centroid), q
    per_arrondissement = Zone.objects.filter(kind="arrondissement").annotate(n=Count("children"))
    assert {a.n for a in per_arrondissement} == {4}


def test_it_finds_the_parent_kind_when_only_one_kind_has_those_codes(shared_data):
    import_arrondissements(shared_data)

    import_quartiers(shared_data)

    gaillon = Zone.objects.get(kind="quartier", code="5")
    assert (gaillon.parent.kind, gaillon.parent.code) == ("arrondissement", "2")


def test_reimporting_updates_the_zones_instead_of_duplicating_them(shared_data):
    import_arrondissements(shared_data)
    import_quartiers(shared_data)
    passy = Zone.objects.get(kind="arrondissement", code="16")
    Zone.objects.filter(pk=passy.pk).update(name="Renommé", need_weight=4.0, geom=tile(0, 0))

    out = import_arrondissements(shared_data)
    out_quartiers = import_quartiers(shared_data)

    assert "20 zones importées (0 créée, 20 mises à jour)" in out
    assert "80 zones importées (0 créée, 80 mises à jour)" in out_quartiers
    assert Zone.objects.filter(kind="arrondissement").count() == 20
    assert Zone.objects.filter(kind="quartier").count() == 80
    passy = Zone.objects.get(pk=passy.pk)
    assert passy.name == "Passy"
    assert passy.need_weight == 4.0  # the coordinators' weight survives a re-import
    assert passy.area_m2 > 10e6  # the real 16e again (with the Bois de Boulogne), not a tile
    assert passy.children.count() == 4


# --- Bad files: refused whole, database unchanged -------------------------------------------


def test_it_rejects_a_self_intersecting_polygon(tmp_path, sentinel):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Après"),
        feature(hourglass(), code="B", nom="Sablier"),
    )

    message = assert_refused(
        lambda: import_secteurs(path), "entité n° 2 (code « B »)", "Self-intersection"
    )

    assert "géométrie invalide" in message
    assert_untouched(sentinel)


@pytest.mark.parametrize(
    "name",
    [
        "turf-kinks/hourglass.geojson",
        "turf-unkink-polygon/hourglass.geojson",
        "turf-unkink-polygon/hourglassMultiPolygon.geojson",
        "turf-unkink-polygon/hourglassFeatureCollection.geojson",
    ],
)
def test_it_rejects_the_hourglass_files_naming_the_geos_reason(shared_data, sentinel, name):
    path = shared_data / EDGE / name

    assert_refused(lambda: import_secteurs(path), "entité n° 1", "Self-intersection")

    assert_untouched(sentinel)


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        ({"type": "Point", "coordinates": [LON, LAT]}, "géométrie Point"),
        ({"type": "LineString", "coordinates": [[LON, LAT], [LON, LAT + 0.01]]}, "LineString"),
        (None, "géométrie absente"),
    ],
)
def test_it_rejects_a_feature_that_is_not_a_polygon(tmp_path, sentinel, geometry, expected):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Après"),
        feature(geometry, code="B", nom="Pas un polygone"),
    )

    assert_refused(lambda: import_secteurs(path), "entité n° 2 (code « B »)", expected)

    assert_untouched(sentinel)


def test_it_rejects_point_layers_such_as_the_paris_sanisettes(shared_data, sentinel):
    path = shared_data / "services" / "sanisettes_paris.geojson"

    message = assert_refused(
        lambda: import_zones(path, "--kind=secteur", "--code-field=adresse", "--name-field=type"),
        "entité n° 1",
        "géométrie MultiPoint",
    )

    # 615 refused features (and duplicate addresses): the first 20 printed, the rest counted.
    assert len([line for line in message.splitlines() if line.startswith("- ")]) == 20
    assert re.search(r"\n… et \d+ autres problèmes\.$", message)
    assert_untouched(sentinel)


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"nom": "Sans code"}, "entité n° 2 : code absent"),
        ({"code": "  ", "nom": "Code vide"}, "entité n° 2 : code vide"),
        ({"code": "A", "nom": "Doublon"}, "entité n° 2 (code « A ») : code « A » en double"),
        ({"code": "B"}, "entité n° 2 (code « B ») : nom absent ou vide"),
        ({"code": "B", "nom": ""}, "entité n° 2 (code « B ») : nom absent ou vide"),
    ],
)
def test_it_rejects_a_feature_with_a_bad_code_or_name(tmp_path, sentinel, properties, expected):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Après"),
        feature(square(1), **properties),
    )

    assert_refused(lambda: import_secteurs(path), expected)

    assert_untouched(sentinel)


def test_it_reports_every_problem_not_only_the_first(tmp_path, sentinel):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Après"),
        feature({"type": "Point", "coordinates": [LON, LAT]}, code="B", nom="Point"),
        feature(square(2), code="", nom="Sans code"),
        feature(hourglass(), code="D", nom="Sablier"),
        feature(square(4), code="E", nom="Bien"),
    )

    message = assert_refused(lambda: import_secteurs(path), "3 problèmes")

    assert "entité n° 2 (code « B ») : géométrie Point" in message
    assert "entité n° 3 : code vide" in message
    assert "entité n° 4 (code « D ») : géométrie invalide : Self-intersection" in message
    assert "entité n° 5" not in message
    assert_untouched(sentinel)


def test_it_names_the_available_fields_when_the_code_field_is_wrong(shared_data):
    path = shared_data / BOUNDARIES / "paris_arrondissements.geojson"

    assert_refused(
        lambda: import_zones(
            path, "--kind=arrondissement", "--code-field=C_AR", "--name-field=l_aroff"
        ),
        "champ « C_AR » (--code-field) absent du fichier",
        "vouliez-vous dire « c_ar » ?",
        "l_aroff",
    )


def test_it_rejects_an_unknown_parent_code(shared_data, tmp_path):
    import_arrondissements(shared_data)
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Ici", ar=4),
        feature(square(1), code="B", nom="Nulle part", ar=21),
    )

    assert_refused(
        lambda: import_secteurs(path, "--parent-field=ar", "--parent-kind=arrondissement"),
        "entité n° 2 (code « B ») : zone parente « 21 » inconnue",
    )


def test_it_asks_for_the_parent_kind_when_several_kinds_have_those_codes(shared_data, tmp_path):
    import_arrondissements(shared_data)
    ZoneFactory(kind="secteur-nord", code="4")
    path = write_geojson(tmp_path / "z.geojson", feature(square(0), code="A", nom="Ici", ar=4))

    assert_refused(
        lambda: import_secteurs(path, "--parent-field=ar"),
        "arrondissement, secteur-nord",
        "précisez --parent-kind",
    )


def test_it_asks_to_import_the_parents_first(shared_data):
    assert_refused(
        lambda: import_quartiers(shared_data),
        "aucune zone existante ne porte ces codes parents : importez d'abord",
    )
    assert_refused(
        lambda: import_quartiers(shared_data, "--parent-kind=arrondissement"),
        "aucune zone « arrondissement » n'existe : importez d'abord",
    )


def test_it_rejects_quartiers_when_the_parent_kind_is_wrong(shared_data, sentinel):
    import_arrondissements(shared_data)

    assert_refused(
        lambda: import_quartiers(shared_data, "--parent-kind=secteur"),
        "zone parente « 1 » inconnue parmi les zones « secteur »",
    )


def test_it_rejects_an_empty_file(tmp_path, sentinel):
    path = tmp_path / "vide.geojson"
    path.write_bytes(b"")

    assert_refused(lambda: import_secteurs(path), "fichier vide")

    assert_untouched(sentinel)


@pytest.mark.parametrize(
    "content",
    [b"ceci n'est pas du JSON\n", b"\x00\x01\x02\xff binaire", b'{"type": "FeatureCollection",'],
)
def test_it_rejects_a_file_gdal_cannot_read(tmp_path, sentinel, content):
    path = tmp_path / "illisible.geojson"
    path.write_bytes(content)

    assert_refused(lambda: import_secteurs(path), "GDAL ne sait pas lire ce fichier")

    assert_untouched(sentinel)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("real-world/fontaines-a-boire_malformed_leading-comma.geojson", "character 41"),
        ("geojsonhint/bad/bad-json.geojson", "offset 31"),
    ],
)
def test_it_rejects_malformed_json_saying_where(shared_data, sentinel, name, detail):
    path = shared_data / EDGE / name

    assert_refused(lambda: import_secteurs(path), "GDAL ne sait pas lire ce fichier", detail)

    assert_untouched(sentinel)


def test_it_rejects_a_file_with_no_features(tmp_path, sentinel):
    path = write_geojson(tmp_path / "z.geojson")

    assert_refused(lambda: import_secteurs(path), "aucune entité")

    assert_untouched(sentinel)


def test_it_rejects_a_missing_file(tmp_path, sentinel):
    assert_refused(
        lambda: import_secteurs(tmp_path / "absent.geojson"), "fichier introuvable", "absent"
    )

    assert_untouched(sentinel)


def test_it_exits_non_zero_from_the_shell(tmp_path):
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    missing = tmp_path / "absent.geojson"

    # --skip-checks: this is about the exit status, not about the rest of the project.
    done = subprocess.run(
        [sys.executable, str(manage), "import_zones", str(missing), "--skip-checks",
         "--kind=secteur", "--code-field=code", "--name-field=nom"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip

    assert done.returncode != 0
    assert "fichier introuvable" in done.stderr


# --- Coordinate systems ---------------------------------------------------------------------


def test_it_refuses_lambert93_coordinates_in_a_file_without_a_crs(tmp_path, sentinel):
    path = write_geojson(
        tmp_path / "z.geojson", feature(l93_tile_coordinates(), code="A", nom="L93")
    )

    message = assert_refused(
        lambda: import_secteurs(path), "652000, 6862000", "ne sont pas des longitudes"
    )

    assert "CRS" in message and "manque" in message
    assert_untouched(sentinel)


def test_it_imports_a_lambert93_geojson_that_declares_its_crs(tmp_path, sentinel):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(l93_tile_coordinates(0), code="A", nom="Après"),
        feature(l93_tile_coordinates(1), code="B", nom="Voisin"),
        crs=2154,
    )

    out = import_secteurs(path)

    assert "2 zones importées (1 créée, 1 mise à jour)" in out
    a, b = Zone.objects.get(kind="secteur", code="A"), Zone.objects.get(kind="secteur", code="B")
    assert a.pk == sentinel.pk and a.name == "Après" and a.need_weight == 2.5
    assert a.geom.equals(tile(0, 0)) and b.geom.equals(tile(1, 0))
    assert a.area_m2 == pytest.approx(1e6)


def test_it_imports_a_geopackage_in_lambert93(tmp_path):
    plain = write_geojson(
        tmp_path / "l93.geojson", feature(l93_tile_coordinates(2), code=7, nom="G")
    )
    path = geopackage_from(plain, tmp_path / "secteurs.gpkg", srs="EPSG:2154")

    out = import_secteurs(path, "--layer=l93")

    assert "1 zone importée (1 créée, 0 mise à jour)" in out
    zone = Zone.objects.get(kind="secteur", code="7")
    assert zone.geom.equals(tile(2, 0))


def test_it_lists_the_layers_when_the_layer_does_not_exist(tmp_path):
    plain = write_geojson(
        tmp_path / "l93.geojson", feature(l93_tile_coordinates(), code=7, nom="G")
    )
    path = geopackage_from(plain, tmp_path / "secteurs.gpkg", srs="EPSG:2154")

    assert_refused(
        lambda: import_secteurs(path, "--layer=quartiers"),
        "couche « quartiers » introuvable",
        "0 « l93 »",
    )


def test_it_refuses_zones_outside_the_territory_such_as_swapped_lat_lon(tmp_path, sentinel):
    swapped = {"type": "Polygon", "coordinates": [[[y, x] for x, y in square()["coordinates"][0]]]}
    path = write_geojson(tmp_path / "z.geojson", feature(swapped, code="A", nom="Inversé"))

    assert_refused(lambda: import_secteurs(path), "entité n° 1 (code « A ») : hors du territoire")

    assert_untouched(sentinel)


def test_a_dry_run_checks_the_file_and_writes_nothing(tmp_path, sentinel):
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="Après"),
        feature(square(1), code="B", nom="Nouveau"),
    )

    out = import_secteurs(path, "--dry-run")

    assert "rien n'a été écrit" in out and "1 zone(s) à créer, 1 à mettre à jour" in out
    assert Zone.objects.count() == 1
    assert_untouched(sentinel)
