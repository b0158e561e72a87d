"""Import zone boundaries from any file GDAL reads (GeoJSON, GeoPackage, Shapefile...).

Two steps, so that one bad feature never leaves half a file in the database:

1. `zone_records_read` reads the whole layer and turns it into checked records in the storage
   SRID, or raises `ZoneImportError` listing every problem it found. It touches no database.
2. `zones_import` resolves parents, then writes every record in one transaction, updating
   zones by (kind, code) so that importing the same file twice changes nothing but the data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.gis.gdal import (
    CoordTransform,
    DataSource,
    GDALException,
    SpatialReference,
)
from django.contrib.gis.gdal.feature import Feature
from django.contrib.gis.gdal.layer import Layer
from django.contrib.gis.geos import GEOSException, GEOSGeometry, MultiPolygon, Polygon
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from zones.models import Zone

# The error message lists this many problems; the rest are counted, not printed.
MAX_REPORTED_PROBLEMS = 20

_CODE_MAX = Zone._meta.get_field("code").max_length
_NAME_MAX = Zone._meta.get_field("name").max_length
_KIND_MAX = Zone._meta.get_field("kind").max_length
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # what Zone.kind (a SlugField) accepts


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a file. `index` is the feature's 1-based position in the layer."""

    message: str
    index: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        if self.index is None:
            return self.message
        if self.code:
            where = _("entité n° %(index)d (code « %(code)s »)") % {
                "index": self.index,
                "code": self.code,
            }
        else:
            where = _("entité n° %(index)d") % {"index": self.index}
        return f"{where} : {self.message}"


class ZoneImportError(Exception):
    """The file was refused; `problems` says why, all of them, feature by feature."""

    def __init__(self, problems: list[Problem], *, path: str | Path | None = None) -> None:
        self.problems = problems
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        head = ngettext(
            "Import refusé, aucune zone modifiée : %(count)d problème",
            "Import refusé, aucune zone modifiée : %(count)d problèmes",
            len(self.problems),
        ) % {"count": len(self.problems)}
        if self.path is not None:
            head += _(" dans %(path)s") % {"path": self.path}
        lines = [head + " :"]
        lines += [f"- {p}" for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        hidden = len(self.problems) - MAX_REPORTED_PROBLEMS
        if hidden > 0:
            lines.append(
                ngettext(
                    "… et %(count)d autre problème.", "… et %(count)d autres problèmes.", hidden
                )
                % {"count": hidden}
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ZoneRecord:
    """One checked feature: a valid MultiPolygon in `settings.SRID` and its attributes."""

    index: int
    code: str
    name: str
    geom: MultiPolygon
    parent_code: str | None = None


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


def zones_import(
    *,
    path: str | Path,
    kind: str,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    parent_kind: str | None = None,
    layer: str | int | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Create or update the zones of `kind` described by the file, all or nothing.

    Zones are matched by (kind, code): geometry, name and parent are replaced, `need_weight`
    (set by coordinators) is kept, and zones of that kind absent from the file are left alone.
    With `parent_field`, its value is the code of an existing zone of `parent_kind`; without
    `parent_kind`, the one other kind that has zones with those codes is used.
    """
    if not _SLUG.fullmatch(kind) or len(kind) > _KIND_MAX:
        message = _(
            "type « %(kind)s » invalide : lettres sans accents, chiffres, - et _ seulement, "
            "%(max)d caractères au plus."
        )
        raise ZoneImportError([Problem(message % {"kind": kind, "max": _KIND_MAX})])
    if parent_kind and not parent_field:
        raise ZoneImportError([Problem(_("--parent-kind n'a de sens qu'avec --parent-field."))])

    records, problems = _records_read(
        path=path,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
        layer=layer,
    )
    parents, parent_problems = _parents_resolve(records, kind=kind, parent_kind=parent_kind)
    problems = _in_file_order(problems + parent_problems)
    if problems:
        raise ZoneImportError(problems, path=path)

    if dry_run:
        existing = Zone.objects.filter(kind=kind, code__in=[r.code for r in records])
        updated = existing.count()
        return ImportResult(created=len(records) - updated, updated=updated)
    return _zones_write(records, kind=kind, parents=parents)


def zone_records_read(
    *,
    path: str | Path,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    layer: str | int | None = None,
) -> list[ZoneRecord]:
    """Read and check every feature of one layer; raise `ZoneImportError` listing all problems.

    Touches no database: parents are only read as codes here.
    """
    records, problems = _records_read(
        path=path,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
        layer=layer,
    )
    if problems:
        raise ZoneImportError(problems, path=path)
    return records


def _records_read(
    *,
    path: str | Path,
    code_field: str,
    name_field: str,
    parent_field: str | None,
    layer: str | int | None,
) -> tuple[list[ZoneRecord], list[Problem]]:
    """The good features as records, and every problem with the others. A file that cannot
    be read at all raises `ZoneImportError` at once."""
    opened = _layer_open(path, layer)
    fields = opened.layer.fields
    problems = [
        Problem(_field_missing_message(option, field, fields))
        for option, field in (
            ("--code-field", code_field),
            ("--name-field", name_field),
            ("--parent-field", parent_field),
        )
        if field is not None and field not in fields
    ]
    if len(opened.layer) == 0:
        raise ZoneImportError([Problem(_("le fichier ne contient aucune entité."))], path=path)

    # RFC 7946: GeoJSON without a "crs" member is WGS84 (GDAL already reports it so); any
    # other layer without a CRS is taken to be WGS84 too. Either way, check it looks like it.
    source_srs = opened.layer.srs or SpatialReference(4326)
    if source_srs.geographic:
        _lonlat_check(opened.layer, path)
    try:
        to_storage = CoordTransform(source_srs, SpatialReference(settings.SRID))
    except GDALException as exc:
        message = _("système de coordonnées du fichier inutilisable : %(error)s")
        raise ZoneImportError([Problem(message % {"error": exc})], path=path) from None
    territory = _territory()

    records: list[ZoneRecord] = []
    first_index_by_code: dict[str, int] = {}
    for index, feature in enumerate(opened.layer, start=1):
        code = _value(feature, code_field, fields)
        name = _value(feature, name_field, fields)
        parent_code = _value(feature, parent_field, fields)
        reasons = _attributes_check(
            fields,
            code=(code_field, code),
            name=(name_field, name),
            parent=(parent_field, parent_code),
        )
        if code and not reasons:
            if code in first_index_by_code:
                reasons.append(
                    _("code « %(code)s » en double : déjà celui de l'entité n° %(first)d")
                    % {"code": code, "first": first_index_by_code[code]}
                )
            else:
                first_index_by_code[code] = index

        geom, reason = _geometry_read(feature)
        if geom is not None:
            geom, reason = _geometry_to_storage(geom, to_storage, territory)
        if reason:
            reasons.append(reason)

        problems += [Problem(r, index=index, code=code or None) for r in reasons]
        if not reasons and geom is not None and code and name:
            records.append(
                ZoneRecord(index=index, code=code, name=name, geom=geom, parent_code=parent_code)
            )
    return records, problems


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems about the whole file first, then feature by feature."""
    return sorted(problems, key=lambda p: -1 if p.index is None else p.index)


# --- Reading --------------------------------------------------------------------------------


@dataclass
class _OpenLayer:
    # The DataSource must outlive the layer and its features: GDAL frees them with it.
    source: DataSource
    layer: Layer


def _layer_open(path: str | Path, layer: str | int | None) -> _OpenLayer:
    def refuse(message: str) -> ZoneImportError:
        return ZoneImportError([Problem(message)], path=path)

    file = Path(path)
    if not file.exists():
        raise refuse(_("fichier introuvable."))
    if file.is_file() and file.stat().st_size == 0:
        raise refuse(_("fichier vide."))
    with _gdal_errors() as errors:
        try:
            source = DataSource(str(file))
        except GDALException:
            detail = "; ".join(dict.fromkeys(errors)) or _("format non reconnu")
            raise refuse(
                _(
                    "GDAL ne sait pas lire ce fichier (JSON mal formé, format inconnu ou "
                    "fichier illisible) : %(detail)s"
                )
                % {"detail": detail}
            ) from None
    if source.layer_count == 0:
        raise refuse(_("aucune couche dans ce fichier."))
    try:
        chosen = source[0 if layer is None else layer]
    except IndexError:
        names = ", ".join(f"{i} « {lyr.name} »" for i, lyr in enumerate(source))
        raise refuse(
            _("couche « %(layer)s » introuvable ; couches du fichier : %(names)s")
            % {"layer": layer, "names": names}
        ) from None
    return _OpenLayer(source=source, layer=chosen)


@contextmanager
def _gdal_errors() -> Iterator[list[str]]:
    """Collect what GDAL says while opening a file: its parser names the line and character.

    Django routes GDAL's error handler to the "django.contrib.gis" logger.
    """
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            args = record.args if isinstance(record.args, tuple) else ()
            text = args[-1] if args else record.getMessage()
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            messages.append(str(text))

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger("django.contrib.gis")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _field_missing_message(option: str, field: str, fields: list[str]) -> str:
    near = [f for f in fields if f.lower() == field.lower()]
    message = _("champ « %(field)s » (%(option)s) absent du fichier") % {
        "field": field,
        "option": option,
    }
    if near:
        message += _(" ; vouliez-vous dire « %(near)s » ?") % {"near": near[0]}
    message += _(" ; champs disponibles : %(fields)s") % {"fields": ", ".join(fields) or _("aucun")}
    return message


def _value(feature: Feature, field: str | None, fields: list[str]) -> str | None:
    """A field as a stripped string: codes are strings even when the file stores 1 or 1.0."""
    if field is None or field not in fields:
        return None
    value = feature.get(field)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _attributes_check(
    fields: list[str],
    *,
    code: tuple[str, str | None],
    name: tuple[str, str | None],
    parent: tuple[str | None, str | None],
) -> list[str]:
    """Why a feature's (field, value) pairs are unusable. A field absent from the whole layer
    was reported once already, so it is not repeated for every feature."""
    reasons = []
    code_field, code_value = code
    if code_field in fields:
        if code_value is None:
            reasons.append(_("code absent (champ « %(field)s » nul)") % {"field": code_field})
        elif not code_value:
            reasons.append(_("code vide (champ « %(field)s »)") % {"field": code_field})
        elif len(code_value) > _CODE_MAX:
            reasons.append(_("code trop long (%(max)d caractères au plus)") % {"max": _CODE_MAX})
    name_field, name_value = name
    if name_field in fields:
        if not name_value:
            reasons.append(_("nom absent ou vide (champ « %(field)s »)") % {"field": name_field})
        elif len(name_value) > _NAME_MAX:
            reasons.append(_("nom trop long (%(max)d caractères au plus)") % {"max": _NAME_MAX})
    parent_field, parent_value = parent
    if parent_field is not None and parent_field in fields and not parent_value:
        reasons.append(
            _("code de la zone parente absent ou vide (champ « %(field)s »)")
            % {"field": parent_field}
        )
    return reasons


# --- Geometry -------------------------------------------------------------------------------


def _geometry_read(feature: Feature) -> tuple[MultiPolygon | None, str | None]:
    """The feature's geometry as a valid 2D MultiPolygon in the file's CRS, or why not."""
    try:
        ogr = feature.geom
    except GDALException:  # GDAL hands back a null pointer for a null geometry
        return None, _("géométrie absente (null) : un Polygon ou un MultiPolygon est attendu")
    if ogr.geom_name not in ("POLYGON", "MULTIPOLYGON"):
        return None, _("géométrie %(type)s : seuls Polygon et MultiPolygon sont acceptés") % {
            "type": ogr.geom_type.name
        }
    try:
        # Storage is 2D: drop Z and M rather than refuse files that carry elevations.
        ogr.set_3d(False)
        ogr.set_measured(False)
        geom = GEOSGeometry(memoryview(ogr.wkb))
    except (GDALException, GEOSException, ValueError) as exc:
        return None, _("géométrie illisible : %(error)s") % {"error": exc}
    if isinstance(geom, Polygon):
        geom = MultiPolygon(geom)
    if geom.empty:
        return None, _("géométrie vide")
    if not geom.valid:
        return None, _("géométrie invalide : %(reason)s") % {"reason": geom.valid_reason}
    return geom, None


def _lonlat_check(layer: Layer, path: str | Path) -> None:
    """Refuse a layer said to be in degrees whose numbers cannot be degrees: typically metres
    from a file that lost its CRS. Reprojecting those would only print noise per feature."""
    try:
        xmin, ymin, xmax, ymax = layer.extent.tuple
    except GDALException:  # no geometry at all: every feature will say so
        return
    if max(abs(xmin), abs(xmax)) <= 180 and max(abs(ymin), abs(ymax)) <= 90:
        return
    message = _(
        "les coordonnées (par ex. %(x).0f, %(y).0f) ne sont pas des longitudes et latitudes "
        "WGS84 (|x| > 180 ou |y| > 90) : le système de coordonnées (CRS) du fichier manque "
        "sans doute (des mètres en Lambert-93, EPSG:2154 ?). Déclarez-le dans le fichier "
        "(membre « crs » du GeoJSON, fichier .prj, GeoPackage) ou convertissez-le en WGS84."
    )
    raise ZoneImportError([Problem(message % {"x": xmin, "y": ymin})], path=path)


def _geometry_to_storage(
    geom: MultiPolygon, transform: CoordTransform, territory: Polygon
) -> tuple[MultiPolygon | None, str | None]:
    try:
        geom = geom.transform(transform, clone=True)
    except (GDALException, GEOSException) as exc:
        return None, _("reprojection impossible : %(error)s") % {"error": exc}
    geom.srid = settings.SRID
    if not geom.valid:
        # Rare, but the database refuses invalid polygons (zone_geom_valid): say so here.
        return None, _("géométrie invalide après reprojection : %(reason)s") % {
            "reason": geom.valid_reason
        }
    if not geom.intersects(territory):
        bbox = ", ".join(f"{v:g}" for v in settings.TERRITORY_BBOX)
        return None, _(
            "hors du territoire (TERRITORY_BBOX %(bbox)s) : longitude et latitude inversées, "
            "ou mauvais système de coordonnées ?"
        ) % {"bbox": bbox}
    return geom, None


def _territory() -> Polygon:
    territory = Polygon.from_bbox(settings.TERRITORY_BBOX)
    territory.srid = 4326
    territory.transform(settings.SRID)
    return territory


# --- Parents and writing --------------------------------------------------------------------


def _parents_resolve(
    records: list[ZoneRecord], *, kind: str, parent_kind: str | None
) -> tuple[dict[str, Zone], list[Problem]]:
    """The parent zones by code, and the problems with the records' parent codes."""
    codes = {r.parent_code for r in records if r.parent_code}
    if not codes:
        return {}, []
    if parent_kind is None:
        kinds = list(
            Zone.objects.filter(code__in=codes)
            .exclude(kind=kind)
            .order_by("kind")
            .values_list("kind", flat=True)
            .distinct()
        )
        if not kinds:
            message = _(
                "aucune zone existante ne porte ces codes parents : importez d'abord les zones "
                "parentes, ou précisez --parent-kind."
            )
            return {}, [Problem(message)]
        if len(kinds) > 1:
            message = _(
                "des zones de plusieurs types portent ces codes parents (%(kinds)s) : précisez "
                "--parent-kind."
            )
            return {}, [Problem(message % {"kinds": ", ".join(kinds)})]
        parent_kind = kinds[0]
    elif parent_kind == kind:
        message = _("--parent-kind doit différer de --kind (« %(kind)s »).")
        return {}, [Problem(message % {"kind": kind})]

    if not Zone.objects.filter(kind=parent_kind).exists():
        message = _(
            "aucune zone « %(kind)s » n'existe : importez d'abord les zones parentes, ou "
            "vérifiez --parent-kind."
        )
        return {}, [Problem(message % {"kind": parent_kind})]
    parents = {z.code: z for z in Zone.objects.filter(kind=parent_kind, code__in=codes)}
    unknown = _("zone parente « %(parent)s » inconnue parmi les zones « %(kind)s »")
    problems = [
        Problem(unknown % {"parent": r.parent_code, "kind": parent_kind}, r.index, r.code)
        for r in records
        if r.parent_code and r.parent_code not in parents
    ]
    return parents, problems


def _zones_write(records: list[ZoneRecord], *, kind: str, parents: dict[str, Zone]) -> ImportResult:
    created = updated = 0
    with transaction.atomic():
        existing = {
            z.code: z
            for z in Zone.objects.select_for_update().filter(
                kind=kind, code__in=[r.code for r in records]
            )
        }
        for record in records:
            parent = parents.get(record.parent_code) if record.parent_code else None
            zone = existing.get(record.code)
            if zone is None:
                zone = Zone(kind=kind, code=record.code)
                created += 1
            else:
                updated += 1
            zone.name = record.name
            zone.geom = record.geom
            zone.parent = parent
            if zone.pk is None:
                zone.save()
            else:
                # need_weight is the coordinators' to set: an import never touches it.
                zone.save(update_fields=["name", "geom", "parent", "area_m2"])
    return ImportResult(created=created, updated=updated)
