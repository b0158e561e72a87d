"""Reading a GPX file into fixes: the third way in (DESIGN.md, "Phones"), for any GPS app
that exports its track after the fact. Pure: bytes in, fixes and reasons out; no database,
no HTTP.

Safety first. gpxpy 1.6 parses with lxml or the standard library's ElementTree, not with
defusedxml, even when defusedxml is installed; and ElementTree expands internal entities (the
"billion laughs"). So every file is first read by defusedxml with DTDs forbidden: a GPX has
no use for a DTD, and without one there is no entity to expand and no external entity to
fetch. Only a file that passes reaches gpxpy.

What is read: the points of every track segment (`trk/trkseg/trkpt`), in file order, each
with its time. Waypoints and routes are ignored (they are places, not a walk); empty segments
are skipped. A point without a time is refused with its reason, as is a point the shared
fix rules refuse (maraudes.fixes: territory, swapped coordinates, time in the future).

GPX has no accuracy field. A point's accuracy is its `hdop` times a typical satellite
range error (5 m) when the file gives one, else GPX_ACCURACY_M: apps export satellite
fixes, and coverage counts points within MAX_ACCURACY_M (50 m).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import defusedxml.ElementTree as SafeET
import gpxpy
import gpxpy.gpx
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from maraudes.fixes import Fix, FixError, Rejected, check_position, check_time

GPX_ACCURACY_M = 10.0
UERE_M = 5.0  # user equivalent range error: accuracy ≈ hdop × UERE


class GpxError(ValueError):
    """The file as a whole cannot be used: nothing from it is stored."""


@dataclass
class GpxPoints:
    fixes: list[Fix] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    tracks: int = 0
    segments: int = 0  # non-empty ones
    waypoints: int = 0  # ignored, counted to say so

    @property
    def points(self) -> int:
        return len(self.fixes) + len(self.rejected)


def parse_gpx(data: bytes, *, now: datetime | None = None) -> GpxPoints:
    text = _checked_text(data)
    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXException as exc:
        raise GpxError(f"GPX illisible : {exc}") from None
    result = GpxPoints(tracks=len(gpx.tracks), waypoints=len(gpx.waypoints))
    index = 0
    for track_number, track in enumerate(gpx.tracks, start=1):
        for segment_number, segment in enumerate(track.segments, start=1):
            if not segment.points:
                continue
            result.segments += 1
            for point_number, point in enumerate(segment.points, start=1):
                where = f"trace {track_number}, segment {segment_number}, point {point_number}"
                try:
                    result.fixes.append(_fix(point, index=index, now=now))
                except FixError as exc:
                    result.rejected.append(Rejected(index=index, reason=f"{where} : {exc}"))
                index += 1
    if not gpx.tracks:
        raise GpxError(
            "Aucune trace (<trk>) dans ce fichier GPX (points d'intérêt : "
            f"{len(gpx.waypoints)}, itinéraires : {len(gpx.routes)} ; ignorés) : exportez la "
            "trace enregistrée pendant la maraude."
        )
    if index == 0:
        raise GpxError("Les traces de ce fichier GPX n'ont aucun point (<trkpt>).")
    return result


def _fix(point: gpxpy.gpx.GPXTrackPoint, *, index: int, now: datetime | None) -> Fix:
    t = point.time
    if t is None:
        raise FixError(
            "pas d'heure (<time> absente ou illisible) : un point sans heure ne peut pas être "
            "placé sur la maraude."
        )
    if t.tzinfo is None or t.utcoffset() is None:
        raise FixError(f"heure sans fuseau ({t.isoformat()}) : ajoutez Z ou un décalage.")
    t = check_time(t.astimezone(UTC), now=now)
    lon, lat = float(point.longitude), float(point.latitude)
    check_position(lon, lat)
    hdop = point.horizontal_dilution
    accuracy = float(hdop) * UERE_M if hdop is not None and hdop >= 0 else GPX_ACCURACY_M
    speed = float(point.speed) if point.speed is not None and point.speed >= 0 else None
    course = point.course
    heading = float(course) if course is not None and 0 <= course <= 360 else None
    return Fix(t=t, lon=lon, lat=lat, accuracy=accuracy, speed=speed, heading=heading, index=index)


_DECLARED = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _checked_text(data: bytes) -> str:
    """The file as text, after defusedxml has refused DTDs, entities and malformed XML."""
    if not data.strip():
        raise GpxError("Fichier vide.")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        raise GpxError(
            "Déclaration de type de document (<!DOCTYPE>) refusée : un GPX n'en a pas, et elle "
            "sert aux attaques par entités (« billion laughs », entités externes)."
        ) from None
    except (EntitiesForbidden, ExternalReferenceForbidden):
        raise GpxError("Entités XML refusées : un GPX n'en a pas besoin.") from None
    except SafeET.ParseError as exc:
        raise GpxError(f"XML mal formé : {exc}.") from None
    tag = root.tag.rsplit("}", 1)[-1] if isinstance(root.tag, str) else ""
    if tag != "gpx":
        raise GpxError(f"Ce n'est pas un fichier GPX : l'élément racine est <{tag}>, pas <gpx>.")
    return _decode(data)


def _decode(data: bytes) -> str:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding)
    declared = _DECLARED.match(data.lstrip())
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError):  # expat read it, so this is rare
        raise GpxError(f"Encodage « {encoding} » illisible.") from None
