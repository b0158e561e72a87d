"""Reads of zones. Spatial queries live here so the SQL that matters is reviewed in one place."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.contrib.gis.geos import Polygon
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from maraudes.days import service_day, service_day_bounds
from maraudes.models import TeamMode
from maraudes.numbers import local_number
from zones.models import WEEK_DAYS, Assignment, Zone


def zone_kinds() -> list[str]:
    return list(Zone.objects.order_by("kind").values_list("kind", flat=True).distinct())


def zones_list(*, kind: str | None = None, bbox: Polygon | None = None) -> QuerySet[Zone]:
    """Zones, optionally of one kind and intersecting a bbox (any SRID; transformed here)."""
    zones = Zone.objects.select_related("parent").order_by("kind", "code")
    if kind:
        zones = zones.filter(kind=kind)
    if bbox is not None:
        zones = zones.filter(geom__intersects=bbox)
    return zones


# --- Coverage and white zones ---------------------------------------------------------------
#
# White zone of Z over [from, to] = Z minus the union of its zone-day coverage on those days.
# Each zone unions at most (to - from + 1) pre-unioned polygons: no raw fix is read here.


class WhiteShare:
    """The white part of a zone from its `area_m2` and `covered_m2`, for the rows that carry
    both (coverage, weekly report, weekly white zones)."""

    area_m2: float
    covered_m2: float

    @property
    def white_m2(self) -> float:
        return max(self.area_m2 - self.covered_m2, 0.0)

    @property
    def white_ratio(self) -> float:
        return self.white_m2 / self.area_m2 if self.area_m2 else 0.0


@dataclass(frozen=True)
class ZoneCoverage(WhiteShare):
    zone_id: int
    code: str
    name: str
    kind: str
    need_weight: float
    area_m2: float
    covered_m2: float
    last_visit: date | None
    passages: int
    encounters: int
    people: int
    white_geojson: str | None = None

    def as_dict(self) -> dict:
        """The figures of the contract's coverage row (DESIGN.md, "Contract")."""
        return {
            "code": self.code,
            "name": self.name,
            "kind": self.kind,
            "area_m2": round(self.area_m2, 1),
            "covered_m2": round(self.covered_m2, 1),
            "white_m2": round(self.white_m2, 1),
            "white_ratio": round(self.white_ratio, 4),
            "last_visit": self.last_visit.isoformat() if self.last_visit else None,
            "passages": self.passages,
            "encounters": self.encounters,
        }


def _coverage_sql(*, with_geometry: bool) -> str:
    """A 7-day window reads the rolling weekly white part (ZoneWeekWhite) kept by the
    services. Its row is missing when nothing covered the zone that week (the union below is
    then over no row), or when the week ends past the services' horizon (the day after the
    latest covered day): the union below computes it. Other windows union their zone-days."""
    white = (
        """ST_AsGeoJSON(ST_Transform(ST_Multi(CASE
                WHEN w.zone_id IS NOT NULL THEN w.geom
                WHEN cov.u IS NULL THEN z.geom
                ELSE ST_Difference(z.geom, cov.u) END), 4326), 6)"""
        if with_geometry
        else "NULL"
    )
    return f"""
    SELECT z.id, z.code, z.name, z.kind, z.need_weight, z.area_m2,
           CASE WHEN w.zone_id IS NOT NULL THEN GREATEST(z.area_m2 - w.white_m2, 0)
                ELSE COALESCE(ST_Area(cov.u), 0) END AS covered_m2,
           (SELECT max(c.day) FROM zones_zonedaycoverage c
             WHERE c.zone_id = z.id AND c.day <= %(to)s) AS last_visit,
           (SELECT count(DISTINCT s) FROM zones_zonedaycoverage c2, unnest(c2.shift_ids) s
             WHERE c2.zone_id = z.id AND c2.day BETWEEN %(from)s AND %(to)s) AS passages,
           COALESCE(enc.n, 0), COALESCE(enc.people, 0),
           {white} AS white
    FROM zones_zone z
    LEFT JOIN zones_zoneweekwhite w
      ON %(week)s AND w.zone_id = z.id AND w.last_day = %(to)s
    LEFT JOIN LATERAL (
      SELECT ST_Union(c.geom) AS u
      FROM zones_zonedaycoverage c
      WHERE w.zone_id IS NULL AND c.zone_id = z.id AND c.day BETWEEN %(from)s AND %(to)s
    ) cov ON true
    LEFT JOIN LATERAL (
      SELECT count(*) AS n, sum(e.people_count) AS people FROM maraudes_encounter e
      WHERE e.seen_at >= %(enc_from)s AND e.seen_at < %(enc_to)s
        AND ST_Intersects(z.geom, e.point)
    ) enc ON true
    WHERE (%(kind)s::text IS NULL OR z.kind = %(kind)s)
      AND (%(zone_ids)s::bigint[] IS NULL OR z.id = ANY(%(zone_ids)s))
    ORDER BY z.kind, z.code
    """


def zones_coverage(
    *,
    day_from: date,
    day_to: date,
    kind: str | None = None,
    zone_ids: list[int] | None = None,
    with_geometry: bool = False,
    encounters_from: date | None = None,
) -> list[ZoneCoverage]:
    """One row per zone, fully covered ones too: area, covered area, last visit, passages and
    encounters over the service days [day_from, day_to]."""
    enc_from = service_day_bounds(encounters_from or day_from)[0]
    enc_to = service_day_bounds(day_to)[1]
    with connection.cursor() as cursor:
        cursor.execute(
            _coverage_sql(with_geometry=with_geometry),
            {
                "from": day_from,
                "to": day_to,
                "kind": kind,
                "zone_ids": zone_ids,
                "enc_from": enc_from,
                "enc_to": enc_to,
                "week": (day_to - day_from).days == WEEK_DAYS - 1,
            },
        )
        return [ZoneCoverage(*row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class WhiteZone:
    coverage: ZoneCoverage
    priority: float
    reason: str

    def as_dict(self) -> dict:
        return {**self.coverage.as_dict(), "priority": self.priority, "reason": self.reason}


# People met in the last four weeks weigh in the priority.
ENCOUNTER_LOOKBACK = timedelta(days=28)


def white_zones(
    *, day_from: date, day_to: date, kind: str | None = None, zone_ids: list[int] | None = None
) -> list[WhiteZone]:
    """Zones with a white part over [day_from, day_to], by priority, highest first."""
    rows = zones_coverage(
        day_from=day_from,
        day_to=day_to,
        kind=kind,
        zone_ids=zone_ids,
        with_geometry=True,
        encounters_from=day_to - ENCOUNTER_LOOKBACK + timedelta(days=1),
    )
    result = []
    for row in rows:
        if row.white_m2 < WHITE_EPSILON_M2:
            continue
        priority, reason = white_zone_priority(row, today=day_to)
        result.append(WhiteZone(coverage=row, priority=priority, reason=reason))
    result.sort(key=lambda w: (-w.priority, w.coverage.code))
    return result


# Slivers left by buffer approximation are not white zones anybody could walk to.
WHITE_EPSILON_M2 = 1.0


def white_zone_priority(row: ZoneCoverage, *, today: date) -> tuple[float, str]:
    """Rank where to send a team next, and say why in one sentence.

    priority = white hectares x need weight x (1 + people met in 4 weeks / 10)
                x (1 + days since last visit / 7, capped at 4 weeks)
    """
    hectares = row.white_m2 / 10_000
    days = (today - row.last_visit).days if row.last_visit else None
    staleness = min(days if days is not None else 28, 28)
    priority = hectares * row.need_weight * (1 + row.people / 10) * (1 + staleness / 7)
    ha = local_number(hectares, 1)
    if days is None:
        since = _("jamais visitée")
    elif days == 0:
        since = _("visitée ce jour")
    else:
        since = ngettext(
            "non visitée depuis %(n)d jour", "non visitée depuis %(n)d jours", days
        ) % {"n": days}
    if row.people:
        met = ngettext(
            "%(n)d personne rencontrée ici ces 4 dernières semaines",
            "%(n)d personnes rencontrées ici ces 4 dernières semaines",
            row.people,
        ) % {"n": row.people}
    else:
        met = _("aucune rencontre ici ces 4 dernières semaines")
    reason = _("%(ha)s ha non couverts, %(since)s ; %(met)s.") % {
        "ha": ha,
        "since": since,
        "met": met,
    }
    return round(priority, 3), reason


# --- Staleness: how long since anyone passed ----------------------------------------------

STALENESS_CLASSES = [
    ("tonight", 1, gettext_lazy("couverte cette nuit")),
    ("3_days", 3, gettext_lazy("couverte ces 3 derniers jours")),
    ("7_days", 7, gettext_lazy("couverte ces 7 derniers jours")),
    ("28_days", 28, gettext_lazy("couverte ces 28 derniers jours")),
]
NEVER = ("not_28_days", gettext_lazy("pas couverte depuis 28 jours"))


@dataclass(frozen=True)
class StalenessPart:
    zone_id: int
    code: str
    name: str
    staleness: str
    label: str
    area_m2: float
    geojson: str


def staleness_layers(*, today: date, kind: str | None = None) -> list[StalenessPart]:
    """Each zone cut by the last visit of its places, as of service day `today`: covered
    tonight, in the last 3 days, 7 days, 28 days, and not in 28 days."""
    empty = f"ST_GeomFromText('MULTIPOLYGON EMPTY', {settings.SRID})"
    unions = ",\n".join(
        f"COALESCE(ST_Union(c.geom) FILTER (WHERE c.day > %(today)s - {days}), {empty}) AS u{days}"
        for _key, days, _label in STALENESS_CLASSES
    )
    parts = []
    previous = empty
    for _key, days, _label in STALENESS_CLASSES:
        parts.append(f"ST_Difference(u.u{days}, {previous})")
        previous = f"u.u{days}"
    parts.append(f"ST_Difference(z.geom, {previous})")
    columns = ",\n".join(
        f"ST_Area(p{i}) AS a{i}, ST_AsGeoJSON(ST_Transform(ST_Multi(p{i}), 4326), 6) AS g{i}"
        for i in range(len(parts))
    )
    sql = f"""
    SELECT z.id, z.code, z.name, {columns}
    FROM zones_zone z
    JOIN LATERAL (
      SELECT {unions}
      FROM zones_zonedaycoverage c
      WHERE c.zone_id = z.id AND c.day > %(today)s - 28 AND c.day <= %(today)s
    ) u ON true
    CROSS JOIN LATERAL (SELECT {", ".join(f"{p} AS p{i}" for i, p in enumerate(parts))}) d
    WHERE (%(kind)s::text IS NULL OR z.kind = %(kind)s)
    ORDER BY z.kind, z.code
    """
    classes = [(key, label) for key, _days, label in STALENESS_CLASSES] + [NEVER]
    result = []
    with connection.cursor() as cursor:
        cursor.execute(sql, {"today": today, "kind": kind})
        for row in cursor.fetchall():
            zone_id, code, name, *figures = row
            for i, (key, label) in enumerate(classes):
                area, geojson = figures[2 * i], figures[2 * i + 1]
                if area and area >= WHITE_EPSILON_M2:
                    result.append(
                        StalenessPart(zone_id, code, name, key, str(label), area, geojson)
                    )
    return result


# --- Assignments and their conflicts --------------------------------------------------------


def assignments_for_day(
    *, day: date, team_ids: Collection[int] | None = None, kind: str | None = None
) -> QuerySet[Assignment]:
    """The zones given to teams for the night of `day`, with their zone and team."""
    assignments = (
        Assignment.objects.filter(day=day)
        .select_related("zone", "team")
        .order_by("zone__kind", "zone__code", "team__name")
    )
    if team_ids is not None:
        assignments = assignments.filter(team_id__in=team_ids)
    if kind:
        assignments = assignments.filter(zone__kind=kind)
    return assignments


# Two zones given to one team the same night are "far apart" when their centres are further
# than this. On foot (about 4 km/h) 3 km is some 45 minutes of walking from one to the other,
# a quarter of a night's outing spent getting there; a vehicle crosses central Paris in about
# 20 minutes at night, hence 8 km. A hint on the map, not a rule: constants, not settings.
FAR_APART_M = {TeamMode.FOOT: 3_000.0, TeamMode.VEHICLE: 8_000.0}
# The white zones that should not go a night without a team: the PRIORITY_TOP_N highest
# priorities over the last PRIORITY_WINDOW_DAYS service days.
PRIORITY_TOP_N = 5
PRIORITY_WINDOW_DAYS = 7


@dataclass(frozen=True)
class AssignmentConflicts:
    day: date
    window: tuple[date, date]  # of the white zones whose priorities are checked
    double_booked: list[dict]
    far_apart: list[dict]
    uncovered_priorities: list[dict]

    @property
    def count(self) -> int:
        return len(self.double_booked) + len(self.far_apart) + len(self.uncovered_priorities)

    def as_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "from": self.window[0].isoformat(),
            "to": self.window[1].isoformat(),
            "count": self.count,
            "double_booked": self.double_booked,
            "far_apart": self.far_apart,
            "uncovered_priorities": self.uncovered_priorities,
        }


_DOUBLE_BOOKED_SQL = """
SELECT z.id, z.code, z.name,
       array_agg(t.id ORDER BY t.name), array_agg(t.name ORDER BY t.name),
       array_agg(t.color ORDER BY t.name)
FROM zones_assignment a
JOIN zones_zone z ON z.id = a.zone_id
JOIN maraudes_team t ON t.id = a.team_id
WHERE a.day = %(day)s AND (%(kind)s::text IS NULL OR z.kind = %(kind)s)
GROUP BY z.id, z.code, z.name
HAVING count(*) > 1
ORDER BY z.code
"""

_FAR_APART_SQL = """
SELECT t.id, t.name, t.color, z1.id, z1.code, z1.name, z2.id, z2.code, z2.name, d.m
FROM zones_assignment a1
JOIN zones_assignment a2
  ON a2.team_id = a1.team_id AND a2.day = a1.day AND a2.zone_id > a1.zone_id
JOIN zones_zone z1 ON z1.id = a1.zone_id
JOIN zones_zone z2 ON z2.id = a2.zone_id
JOIN maraudes_team t ON t.id = a1.team_id
CROSS JOIN LATERAL (SELECT ST_Distance(ST_Centroid(z1.geom), ST_Centroid(z2.geom)) AS m) d
WHERE a1.day = %(day)s
  AND (%(kind)s::text IS NULL OR (z1.kind = %(kind)s AND z2.kind = %(kind)s))
  AND d.m > CASE WHEN t.mode = %(vehicle)s THEN %(vehicle_m)s ELSE %(foot_m)s END
ORDER BY t.name, d.m DESC
"""


def _km(metres: float) -> str:
    return local_number(metres / 1000, 1)


def assignment_conflicts(*, day: date, kind: str | None = None) -> AssignmentConflicts:
    """What a coordinator should look at before the night of `day`: a zone given to two
    teams, a team given zones far apart, and priority white zones that nobody has."""
    params = {
        "day": day,
        "kind": kind,
        "vehicle": TeamMode.VEHICLE.value,
        "vehicle_m": FAR_APART_M[TeamMode.VEHICLE],
        "foot_m": FAR_APART_M[TeamMode.FOOT],
    }
    with connection.cursor() as cursor:
        cursor.execute(_DOUBLE_BOOKED_SQL, params)
        double_rows = cursor.fetchall()
        cursor.execute(_FAR_APART_SQL, params)
        far_rows = cursor.fetchall()
    double_booked = [
        {
            "zone": zone_id,
            "code": code,
            "name": name,
            "teams": [
                {"id": t, "name": n, "color": c}
                for t, n, c in zip(team_ids, team_names, colors, strict=True)
            ],
            "message": _("« %(zone)s » (%(code)s) est donnée à %(n)d équipes : %(teams)s.")
            % {"zone": name, "code": code, "n": len(team_ids), "teams": ", ".join(team_names)},
        }
        for zone_id, code, name, team_ids, team_names, colors in double_rows
    ]
    far_apart = [
        {
            "team": team_id,
            "team_name": team_name,
            "color": color,
            "zones": [
                {"zone": z1, "code": c1, "name": n1},
                {"zone": z2, "code": c2, "name": n2},
            ],
            "distance_m": round(metres),
            "message": _("%(team)s a « %(a)s » et « %(b)s », à %(km)s km l'une de l'autre.")
            % {"team": team_name, "a": n1, "b": n2, "km": _km(metres)},
        }
        for team_id, team_name, color, z1, c1, n1, z2, c2, n2, metres in far_rows
    ]
    window_to = min(day, service_day(timezone.now()))
    window_from = window_to - timedelta(days=PRIORITY_WINDOW_DAYS - 1)
    top = white_zones(day_from=window_from, day_to=window_to, kind=kind)[:PRIORITY_TOP_N]
    assigned = set(
        Assignment.objects.filter(
            day=day, zone_id__in=[w.coverage.zone_id for w in top]
        ).values_list("zone_id", flat=True)
    )
    uncovered = [
        {
            "zone": white.coverage.zone_id,
            "code": white.coverage.code,
            "name": white.coverage.name,
            "rank": rank,
            "priority": white.priority,
            "reason": white.reason,
            "message": _("Priorité n° %(rank)d, « %(zone)s » (%(code)s), n'a pas d'équipe.")
            % {"rank": rank, "zone": white.coverage.name, "code": white.coverage.code},
        }
        for rank, white in enumerate(top, start=1)
        if white.coverage.zone_id not in assigned
    ]
    return AssignmentConflicts(
        day=day,
        window=(window_from, window_to),
        double_booked=double_booked,
        far_apart=far_apart,
        uncovered_priorities=uncovered,
    )
