"""zones.importing: reading is pure, problems are complete, writes are all or nothing."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.gis.geos import MultiPolygon
from pyproj import Transformer

from tests.factories import ZoneFactory
from tests.zones.test_import_zones import LAT, LON, feature, hourglass, square, write_geojson
from zones.importing import (
    MAX_REPORTED_PROBLEMS,
    Problem,
    ZoneImportError,
    zone_records_read,
    zones_import,
)
from zones.models import Zone


def read(path, **kwargs):
    return zone_records_read(path=path, code_field="code", name_field="nom", **kwargs)


def secteurs_import(path, **kwargs):
    return zones_import(path=path, kind="secteur", code_field="code", name_field="nom", **kwargs)


# --- Reading touches no database (no django_db mark: any query would fail) -----------------


def test_reading_the_paris_arrondissements_needs_no_database(shared_data):
    records = zone_records_read(
        path=shared_data / "boundaries" / "paris_arrondissements.geojson",
        code_field="c_ar",
        name_field="l_aroff",
    )

    assert sorted(r.code for r in records) == sorted(str(n) for n in range(1, 21))
    assert all(isinstance(r.geom, MultiPolygon) for r in records)
    assert {r.geom.srid for r in records} == {settings.SRID}


def test_it_reprojects_wgs84_like_an_independent_transform(tmp_path):
    path = write_geojson(tmp_path / "z.geojson", feature(square(0), code="A", nom="A"))

    (record,) = read(path)

    expected = Transformer.from_crs(4326, settings.SRID, always_xy=True).transform(LON, LAT)
    assert record.geom[0].exterior_ring[0] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("value", "code"), [(1, "1"), (3.0, "3"), ("  75101 ", "75101")])
def test_it_stores_codes_as_trimmed_strings(tmp_path, value, code):
    path = write_geojson(tmp_path / "z.geojson", feature(square(0), code=value, nom="A"))

    (record,) = read(path)

    assert record.code == code


def test_it_keeps_every_part_of_a_multipolygon_and_drops_elevations(tmp_path):
    parts = [square(0)["coordinates"], square(2)["coordinates"]]
    with_z = [[[x, y, 35.0] for x, y in ring] for ring in square(4)["coordinates"]]
    path = write_geojson(
        tmp_path / "z.geojson",
        feature({"type": "MultiPolygon", "coordinates": parts}, code="M", nom="Deux"),
        feature({"type": "Polygon", "coordinates": with_z}, code="Z", nom="Altitude"),
    )

    multi, flat = read(path)

    assert len(multi.geom) == 2
    assert not flat.geom.hasz and isinstance(flat.geom, MultiPolygon)


def test_the_error_keeps_every_problem_but_prints_the_first_twenty(tmp_path):
    features = [feature(None, code=f"N{i}", nom="Nul") for i in range(25)]
    path = write_geojson(tmp_path / "z.geojson", *features)

    with pytest.raises(ZoneImportError) as excinfo:
        read(path)

    error = excinfo.value
    assert len(error.problems) == 25
    assert error.problems[0] == Problem(
        "géométrie absente (null) : un Polygon ou un MultiPolygon est attendu", index=1, code="N0"
    )
    lines = str(error).splitlines()
    assert lines[0].startswith("Import refusé, aucune zone modifiée : 25 problèmes dans ")
    assert len(lines) == 1 + MAX_REPORTED_PROBLEMS + 1
    assert lines[-1] == "… et 5 autres problèmes."


# --- Import: parents and writes ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_moves_a_zone_to_its_new_parent_on_reimport(tmp_path):
    nord = ZoneFactory(kind="secteur-parent", code="N")
    sud = ZoneFactory(kind="secteur-parent", code="S")
    path = tmp_path / "z.geojson"
    write_geojson(path, feature(square(0), code="A", nom="A", p="N"))
    secteurs_import(path, parent_field="p")

    write_geojson(path, feature(square(0), code="A", nom="A", p="S"))
    result = secteurs_import(path, parent_field="p")

    assert (result.created, result.updated) == (0, 1)
    zone = Zone.objects.get(kind="secteur", code="A")
    assert zone.parent == sud
    assert not nord.children.exists()


@pytest.mark.django_db
def test_it_reports_bad_features_and_unknown_parents_together(tmp_path):
    ZoneFactory(kind="secteur-parent", code="N")
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(hourglass(), code="A", nom="A", p="N"),
        feature(square(1), code="B", nom="B", p="X"),
    )

    with pytest.raises(ZoneImportError) as excinfo:
        secteurs_import(path, parent_field="p", parent_kind="secteur-parent")

    assert [(p.index, p.code) for p in excinfo.value.problems] == [(1, "A"), (2, "B")]
    assert "Self-intersection" in excinfo.value.problems[0].message
    assert "« X » inconnue" in excinfo.value.problems[1].message
    assert not Zone.objects.filter(kind="secteur").exists()


@pytest.mark.django_db
def test_it_rejects_a_parent_field_missing_from_the_file(tmp_path):
    ZoneFactory(kind="secteur-parent", code="N")
    path = write_geojson(tmp_path / "z.geojson", feature(square(0), code="A", nom="A"))

    with pytest.raises(ZoneImportError, match=r"champ « p » \(--parent-field\) absent du fichier"):
        secteurs_import(path, parent_field="p", parent_kind="secteur-parent")


@pytest.mark.django_db
def test_it_rejects_a_feature_without_a_parent_code(tmp_path):
    ZoneFactory(kind="secteur-parent", code="N")
    path = write_geojson(
        tmp_path / "z.geojson",
        feature(square(0), code="A", nom="A", p="N"),
        feature(square(1), code="B", nom="B", p=""),
    )

    with pytest.raises(ZoneImportError) as excinfo:
        secteurs_import(path, parent_field="p", parent_kind="secteur-parent")

    (problem,) = excinfo.value.problems
    assert str(problem) == (
        "entité n° 2 (code « B ») : code de la zone parente absent ou vide (champ « p »)"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"kind": "quartier prioritaire"}, "type « quartier prioritaire » invalide"),
        ({"kind": "q" * 41}, "invalide"),
        ({"parent_kind": "arrondissement"}, "--parent-kind n'a de sens qu'avec --parent-field"),
        ({"parent_field": "p", "parent_kind": "secteur"}, "--parent-kind doit différer"),
    ],
)
def test_it_rejects_inconsistent_options(tmp_path, options, expected):
    path = write_geojson(tmp_path / "z.geojson", feature(square(0), code="A", nom="A", p="N"))
    arguments = {"path": path, "kind": "secteur", "code_field": "code", "name_field": "nom"}

    with pytest.raises(ZoneImportError, match=expected):
        zones_import(**(arguments | options))

    assert not Zone.objects.exists()
