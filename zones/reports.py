"""The planner's weekly report (issue 6): coverage per zone over one ISO week of service days.

Pure reads. A week is the ISO week of *service days* (maraudes.days): Monday 06:00 to the next
Monday 06:00, local time, so the night from Sunday 20:00 to Monday 05:00 belongs to Sunday's
week, and the clock changes move nothing.

Per zone of one kind, the report gives:

- covered and white area: the zone minus the union of its zone-day coverage over the week's
  seven service days, as `zones.selectors.zones_coverage` computes it (the union here is the
  floating-point overlay instead of the 0.1 m snapped one: the same areas to well under
  0.01 % of a zone, in half the time on the benchmark week (0.6 s instead of 1.3 s), which
  matters with eight weeks of trend to union);
- last visit (latest service day up to the week's Sunday that covered part of the zone) and
  passages (distinct shifts that entered the zone during the week), from the same table;
- encounters and people met, in total and by need, as `zones_coverage` counts them (the
  encounter's point in the zone, its time within the week's service days);
- hours of presence and the time-of-night matrix, from the raw fixes (see PRESENCE below);
- the previous week's covered share, passages, encounters and people, for the change;
- the covered share of the whole territory (all zones of the kind) over the last
  TREND_WEEKS weeks.

The query count is fixed (five statements, whatever the number of zones).

PRESENCE. Hours of presence in a zone = the sum, over the week's shifts, of the time between
consecutive kept fixes (accuracy <= MAX_ACCURACY_M, same service day) that the coverage
contract joins by a segment (at most MAX_GAP_S apart, at most the team's MAX_SPEED), each
such interval counting for the zone that holds its midpoint, in the hour band of its start
(local time). Time spent standing still at an encounter counts; a gap of several minutes
(phone in a pocket, metro) does not. Raw fixes are purged after POSITION_RETENTION_DAYS: the
presence of an older week is unknown (`presence_available` is false), not zero.

Reading every fix of the week makes presence the slow part of the report (seconds for a
week of Paris, where the rest takes a fraction of one): kept per zone, day and hour as the
fixes arrive, like the zone-day coverage, it would be a small GROUP BY here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import shapely
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from maraudes.days import service_day, service_day_bounds
from maraudes.models import Need, TeamMode
from zones.selectors import WHITE_EPSILON_M2

# --- Weeks ----------------------------------------------------------------------------------

WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
# Nothing was recorded before the project existed; the bound keeps date arithmetic (eight
# weeks of trend before the chosen one) far from date.min.
FIRST_YEAR = 2000


class ReportParamError(ValueError):
    """A week or zone kind a report cannot be made for; `message` is for a person."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def weeks_in_year(year: int) -> int:
    """52 or 53: 28 December is always in the last ISO week of its year."""
    return date(year, 12, 28).isocalendar().week


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def of(cls, day: date) -> IsoWeek:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @classmethod
    def parse(cls, raw: str) -> IsoWeek:
        text = raw.strip()
        match = WEEK_RE.match(text)
        if not match:
            raise ReportParamError(
                "week",
                _("« %(raw)s » n'est pas une semaine ISO : écrivez AAAA-Wss, par exemple 2026-W47.")
                % {"raw": raw},
            )
        year, week = int(match[1]), int(match[2])
        if year < FIRST_YEAR:
            raise ReportParamError(
                "week", _("Aucune donnée avant %(year)d.") % {"year": FIRST_YEAR}
            )
        weeks = weeks_in_year(year)
        if not 1 <= week <= weeks:
            raise ReportParamError(
                "week",
                _(
                    "L'année %(year)d compte %(weeks)d semaines ISO : la semaine %(week)d n'existe pas."
                )
                % {"year": year, "weeks": weeks, "week": week},
            )
        return cls(year, week)

    @property
    def first_day(self) -> date:
        """Monday: the first service day of the week."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def last_day(self) -> date:
        """Sunday: its night, to Monday 06:00, is the week's last."""
        return self.first_day + timedelta(days=6)

    def shifted(self, weeks: int) -> IsoWeek:
        return IsoWeek.of(self.first_day + timedelta(weeks=weeks))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def week_current(*, now: datetime | None = None) -> IsoWeek:
    """The week of tonight's service day (in progress)."""
    return IsoWeek.of(service_day(now or timezone.now()))


def week_last_complete(*, now: datetime | None = None) -> IsoWeek:
    return week_current(now=now).shifted(-1)


def week_param(raw: str | None, *, now: datetime | None = None) -> IsoWeek:
    """The week a person asked for: absent means the last complete week; a week that has
    not started yet is refused (the current one, in progress, is allowed)."""
    if raw is None or not raw.strip():
        return week_last_complete(now=now)
    week = IsoWeek.parse(raw)
    current = week_current(now=now)
    if week > current:
        raise ReportParamError(
            "week",
            _(
                "La semaine %(week)s (du %(first)s au %(last)s) n'a pas encore commencé : "
                "la semaine en cours est %(current)s."
            )
            % {
                "week": week,
                "first": f"{week.first_day:%d/%m/%Y}",
                "last": f"{week.last_day:%d/%m/%Y}",
                "current": current,
            },
        )
    return week


# The level planners read first when it exists, then coarser ones.
PREFERRED_KINDS = ("quartier", "arrondissement", "secteur", "sector")


def kind_param(raw: str | None, *, kinds: list[str]) -> str | None:
    """The zone kind asked for, or the preferred kind present; None when there is no zone."""
    if raw is None or not raw.strip():
        for kind in PREFERRED_KINDS:
            if kind in kinds:
                return kind
        return kinds[0] if kinds else None
    kind = raw.strip()
    if kind not in kinds:
        raise ReportParamError(
            "kind",
            _("Aucune zone de type « %(kind)s ». Types connus : %(known)s.")
            % {"kind": kind, "known": ", ".join(kinds) or _("aucun")},
        )
    return kind


# --- Small counts ---------------------------------------------------------------------------

# People counts of 1 or 2 in a zone-week are shown as "<3" to planners and in every export
# (DESIGN.md, "Privacy"). Zero is shown: nobody met is nobody to protect.
SMALL_COUNT_LIMIT = 3
SMALL_COUNT_LABEL = "<3"


def count_shown(n: int, *, protect: bool, people: int | None = None) -> int | str:
    """`n` as it may be shown. `people` is the people count `n` goes with when `n` counts
    something else (encounters): every encounter meets at least one person, so 2 encounters
    beside "<3" people would tell that 2 people were met; such a count is hidden too."""
    small = people if people is not None else n
    if protect and 0 < small < SMALL_COUNT_LIMIT:
        return SMALL_COUNT_LABEL
    return n


# --- The report -----------------------------------------------------------------------------

# Hour bands of the time-of-night matrix: band h is [h:00, h+1:00) local time.
HOUR_BANDS = (20, 21, 22, 23, 0, 1, 2, 3, 4, 5)
TREND_WEEKS = 8
# A change of covered share below half a point is "same".
SAME_SHARE = 0.005


@dataclass(frozen=True)
class NeedFigures:
    encounters: int = 0
    people: int = 0


@dataclass(frozen=True)
class WeekRow:
    """One zone's week, or the territory's (zone_id None) on the totals row."""

    zone_id: int | None
    code: str
    name: str
    area_m2: float
    covered_m2: float
    last_visit: date | None
    passages: int
    presence_s: float
    bands_s: tuple[float, ...]  # aligned with HOUR_BANDS
    other_s: float  # presence outside 20h-06h
    encounters: int
    people: int
    needs: dict[str, NeedFigures]
    previous_covered_m2: float
    previous_passages: int
    previous_encounters: int
    previous_people: int

    @property
    def white_m2(self) -> float:
        return max(self.area_m2 - self.covered_m2, 0.0)

    @property
    def covered_ratio(self) -> float:
        return min(self.covered_m2 / self.area_m2, 1.0) if self.area_m2 else 0.0

    @property
    def white_ratio(self) -> float:
        return 1.0 - self.covered_ratio if self.area_m2 else 0.0

    @property
    def previous_covered_ratio(self) -> float:
        return min(self.previous_covered_m2 / self.area_m2, 1.0) if self.area_m2 else 0.0

    @property
    def change(self) -> str:
        """'up', 'down' or 'same': the covered share against the previous week."""
        delta = self.covered_ratio - self.previous_covered_ratio
        if delta > SAME_SHARE:
            return "up"
        if delta < -SAME_SHARE:
            return "down"
        return "same"

    @property
    def presence_hours(self) -> float:
        return self.presence_s / 3600


@dataclass(frozen=True)
class TrendPoint:
    week: IsoWeek
    area_m2: float
    covered_m2: float

    @property
    def covered_ratio(self) -> float:
        return min(self.covered_m2 / self.area_m2, 1.0) if self.area_m2 else 0.0


@dataclass(frozen=True)
class WeeklyReport:
    week: IsoWeek
    kind: str | None
    rows: list[WeekRow]
    totals: WeekRow
    trend: list[TrendPoint]
    complete: bool  # the week's last night is over
    presence_available: bool  # the week's raw fixes are still kept
    needs: list[str] = field(default_factory=lambda: list(Need.values))


def _natural_key(code: str) -> tuple:
    """Quartier "9" before "10"; codes with letters keep their order."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", code)
        if part
    )


_ZONES_SQL = """
SELECT z.id, z.code, z.name, z.area_m2,
       (SELECT max(c.day) FROM zones_zonedaycoverage c
         WHERE c.zone_id = z.id AND c.day <= %(last_day)s),
       ST_AsBinary(z.geom)
FROM zones_zone z
WHERE z.kind = %(kind)s
"""

# Covered area per zone and week (k = 0 the oldest of the trend, TREND_WEEKS - 1 the chosen).
_COVERED_SQL = """
SELECT c.zone_id, (c.day - %(trend_first)s::date) / 7 AS k, ST_Area(ST_Union(c.geom))
FROM zones_zonedaycoverage c
JOIN zones_zone z ON z.id = c.zone_id
WHERE z.kind = %(kind)s AND c.day BETWEEN %(trend_first)s AND %(last_day)s
GROUP BY c.zone_id, k
"""

# Distinct shifts per zone and for the territory (zone NULL), previous (k = 0) and chosen
# (k = 1) weeks.
_PASSAGES_SQL = """
SELECT c.zone_id, (c.day - %(previous_first)s::date) / 7 AS k, count(DISTINCT s.id)
FROM zones_zonedaycoverage c
JOIN zones_zone z ON z.id = c.zone_id
CROSS JOIN LATERAL unnest(c.shift_ids) AS s(id)
WHERE z.kind = %(kind)s AND c.day BETWEEN %(previous_first)s AND %(last_day)s
GROUP BY GROUPING SETS ((c.zone_id, k), (k))
"""

# Encounters and people, in total (need NULL) and by need, per zone and for the territory
# (zone NULL: an encounter on the border of two zones is counted once), previous (k = 0) and
# chosen (k = 1) weeks.
_ENCOUNTERS_SQL = """
WITH e AS (
  SELECT e.id, e.people_count AS people, e.needs, z.id AS zone_id,
         CASE WHEN e.seen_at >= %(first_start)s THEN 1 ELSE 0 END AS k
  FROM maraudes_encounter e
  JOIN zones_zone z ON z.kind = %(kind)s AND ST_Intersects(z.geom, e.point)
  WHERE e.seen_at >= %(previous_start)s AND e.seen_at < %(last_end)s
), once AS (
  SELECT DISTINCT id, people, needs, k FROM e
)
SELECT zone_id, k, NULL::text, count(*), sum(people) FROM e GROUP BY zone_id, k
UNION ALL
SELECT zone_id, k, n, count(*), sum(people) FROM e, unnest(e.needs) n GROUP BY zone_id, k, n
UNION ALL
SELECT NULL, k, NULL::text, count(*), sum(people) FROM once GROUP BY k
UNION ALL
SELECT NULL, k, n, count(*), sum(people) FROM once, unnest(once.needs) n GROUP BY k, n
"""


# The week's joined intervals: midpoint, seconds, local hour of their start. The local time
# is converted once per fix (three conversions per row cost a second on the benchmark week);
# the end's service day is read on the start's wall clock plus the interval, which is exact
# here: an interval is at most MAX_GAP_S long, and no clock change happens near DAY_START.
_SEGMENTS_SQL = """
WITH f AS (
  SELECT p.shift_id, p.recorded_at AT TIME ZONE %(tz)s AS local,
         ST_X(p.point) AS x, ST_Y(p.point) AS y,
         date_part('epoch', lead(p.recorded_at) OVER w - p.recorded_at) AS dt,
         lead(ST_X(p.point)) OVER w AS x2, lead(ST_Y(p.point)) OVER w AS y2
  FROM maraudes_position p
  WHERE p.recorded_at >= %(first_start)s AND p.recorded_at < %(last_end)s
    AND p.accuracy <= %(max_accuracy)s
  WINDOW w AS (PARTITION BY p.shift_id ORDER BY p.recorded_at)
), speed AS (
  SELECT s.id, CASE WHEN tm.mode = %(vehicle)s THEN %(speed_vehicle)s
                    ELSE %(speed_foot)s END::float8 AS v
  FROM maraudes_shift s JOIN maraudes_team tm ON tm.id = s.team_id
)
SELECT (f.x + f.x2) / 2, (f.y + f.y2) / 2, f.dt, date_part('hour', f.local)
FROM f JOIN speed ON speed.id = f.shift_id
WHERE f.dt <= %(max_gap)s
  AND (f.x2 - f.x) ^ 2 + (f.y2 - f.y) ^ 2 <= (f.dt * speed.v) ^ 2
  AND (f.local - %(day_start)s)::date
      = (f.local + make_interval(secs => f.dt) - %(day_start)s)::date
"""


def _presence_by_zone(
    segments: list[tuple[float, float, float, float]], zones: list[tuple[int, bytes]]
) -> dict[int, dict[int, float]]:
    """Seconds per zone and local hour: each interval counts for the zones holding its
    midpoint (border included, as ST_Intersects).

    Done here rather than in SQL: testing half a million midpoints against prepared polygons
    with shapely takes a fraction of a second, where the same join in PostGIS (a GiST probe
    and an unprepared point-in-polygon test per midpoint) took several seconds on the
    benchmark week.
    """
    if not segments:
        return {}
    data = np.asarray(segments, dtype=float)
    mx, my, dt, hour = data[:, 0], data[:, 1], data[:, 2], data[:, 3].astype(int)
    result: dict[int, dict[int, float]] = {}
    for zone_id, wkb in zones:
        polygon = shapely.from_wkb(bytes(wkb))
        x0, y0, x1, y1 = polygon.bounds
        near = np.flatnonzero((mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1))
        if not near.size:
            continue
        shapely.prepare(polygon)
        inside = near[shapely.intersects_xy(polygon, mx[near], my[near])]
        if inside.size:
            seconds = np.bincount(hour[inside], weights=dt[inside], minlength=24)
            result[zone_id] = {h: float(s) for h, s in enumerate(seconds) if s}
    return result


def presence_available(week: IsoWeek, *, now: datetime | None = None) -> bool:
    """Whether the week's raw fixes are still kept (POSITION_RETENTION_DAYS)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.POSITION_RETENTION_DAYS)
    return service_day_bounds(week.first_day)[0] >= cutoff


def weekly_report(*, week: IsoWeek, kind: str | None, now: datetime | None = None) -> WeeklyReport:
    """The report of `week` for the zones of `kind` (see the module's docstring); no kind
    (no zone at all yet) gives an empty report."""
    now = now or timezone.now()
    previous = week.shifted(-1)
    trend_first = week.shifted(-(TREND_WEEKS - 1))
    with_presence = presence_available(week, now=now)
    params = {
        "kind": kind,
        "trend_first": trend_first.first_day,
        "previous_first": previous.first_day,
        "last_day": week.last_day,
        "previous_start": service_day_bounds(previous.first_day)[0],
        "first_start": service_day_bounds(week.first_day)[0],
        "last_end": service_day_bounds(week.last_day)[1],
        "max_accuracy": settings.MAX_ACCURACY_M,
        "max_gap": settings.MAX_GAP_S,
        "vehicle": TeamMode.VEHICLE.value,
        "speed_vehicle": settings.MAX_SPEED_VEHICLE,
        "speed_foot": settings.MAX_SPEED_FOOT,
        "srid": settings.SRID,
        "tz": settings.TIME_ZONE,
        "day_start": timedelta(
            hours=settings.DAY_START.hour,
            minutes=settings.DAY_START.minute,
            seconds=settings.DAY_START.second,
        ),
    }
    # One transaction: one snapshot for the five statements, and JIT off for them (compiling
    # these short-lived plans costs more than it saves: 0.5 s on the benchmark week).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_ZONES_SQL, params)
        zones = cursor.fetchall()
        cursor.execute(_COVERED_SQL, params)
        covered = {(zone_id, k): area for zone_id, k, area in cursor.fetchall()}
        cursor.execute(_PASSAGES_SQL, params)
        passages = {(zone_id, k): n for zone_id, k, n in cursor.fetchall()}
        cursor.execute(_ENCOUNTERS_SQL, params)
        encounters = {
            (zone_id, k, need): (n, int(people or 0))
            for zone_id, k, need, n, people in cursor.fetchall()
        }
        segments: list[tuple[float, float, float, float]] = []
        if with_presence:
            cursor.execute(_SEGMENTS_SQL, params)
            segments = cursor.fetchall()
    by_zone = _presence_by_zone(segments, [(zone[0], zone[5]) for zone in zones])

    current, before = TREND_WEEKS - 1, TREND_WEEKS - 2

    def row(
        zone_id: int | None,
        code: str,
        name: str,
        area: float,
        last_visit: date | None,
        covered_now: float,
        covered_before: float,
        hours: dict[int, float],
    ) -> WeekRow:
        bands = tuple(hours.get(h, 0.0) for h in HOUR_BANDS)
        total = sum(hours.values())
        return WeekRow(
            zone_id=zone_id,
            code=code,
            name=name,
            area_m2=area,
            covered_m2=covered_now,
            last_visit=last_visit,
            passages=passages.get((zone_id, 1), 0),
            presence_s=total,
            bands_s=bands,
            other_s=total - sum(bands),
            encounters=encounters.get((zone_id, 1, None), (0, 0))[0],
            people=encounters.get((zone_id, 1, None), (0, 0))[1],
            needs={
                need: NeedFigures(*encounters.get((zone_id, 1, need), (0, 0)))
                for need in Need.values
            },
            previous_covered_m2=covered_before,
            previous_passages=passages.get((zone_id, 0), 0),
            previous_encounters=encounters.get((zone_id, 0, None), (0, 0))[0],
            previous_people=encounters.get((zone_id, 0, None), (0, 0))[1],
        )

    rows = [
        row(
            zone_id,
            code,
            name,
            area,
            last_visit,
            covered.get((zone_id, current), 0.0),
            covered.get((zone_id, before), 0.0),
            by_zone.get(zone_id, {}),
        )
        for zone_id, code, name, area, last_visit, _wkb in zones
    ]
    rows.sort(key=lambda r: _natural_key(r.code))

    territory = sum(r.area_m2 for r in rows)
    city_hours: dict[int, float] = defaultdict(float)
    for hours in by_zone.values():
        for hour, seconds in hours.items():
            city_hours[hour] += seconds
    totals = row(
        None,
        "",
        _("Ensemble du territoire"),
        territory,
        max((r.last_visit for r in rows if r.last_visit), default=None),
        sum(r.covered_m2 for r in rows),
        sum(r.previous_covered_m2 for r in rows),
        city_hours,
    )
    trend = [
        TrendPoint(
            week=trend_first.shifted(k),
            area_m2=territory,
            covered_m2=sum(area for (_zone, kk), area in covered.items() if kk == k),
        )
        for k in range(TREND_WEEKS)
    ]
    return WeeklyReport(
        week=week,
        kind=kind,
        rows=rows,
        totals=totals,
        trend=trend,
        complete=week < week_current(now=now),
        presence_available=with_presence,
    )


# --- White zones of the week, for the map and the GeoJSON export ---------------------------


@dataclass(frozen=True)
class WeekWhiteZone:
    zone_id: int
    code: str
    name: str
    area_m2: float
    covered_m2: float
    last_visit: date | None
    passages: int
    geojson: str

    @property
    def white_m2(self) -> float:
        return max(self.area_m2 - self.covered_m2, 0.0)

    @property
    def white_ratio(self) -> float:
        return self.white_m2 / self.area_m2 if self.area_m2 else 0.0


_WHITE_SQL = """
SELECT z.id, z.code, z.name, z.area_m2, COALESCE(ST_Area(cov.u), 0),
       (SELECT max(c.day) FROM zones_zonedaycoverage c
         WHERE c.zone_id = z.id AND c.day <= %(last_day)s),
       COALESCE(cov.passages, 0),
       ST_AsGeoJSON(ST_Transform(ST_Multi(
         CASE WHEN cov.u IS NULL THEN z.geom
              ELSE ST_CollectionExtract(ST_Difference(z.geom, cov.u), 3) END), %(srid)s), 6)
FROM zones_zone z
LEFT JOIN LATERAL (
  SELECT ST_Union(c.geom) AS u,
         (SELECT count(DISTINCT s) FROM zones_zonedaycoverage c2, unnest(c2.shift_ids) s
           WHERE c2.zone_id = z.id AND c2.day BETWEEN %(first_day)s AND %(last_day)s) AS passages
  FROM zones_zonedaycoverage c
  WHERE c.zone_id = z.id AND c.day BETWEEN %(first_day)s AND %(last_day)s
) cov ON true
WHERE z.kind = %(kind)s
"""


def weekly_white_zones(*, week: IsoWeek, kind: str, srid: int) -> list[WeekWhiteZone]:
    """Zones of `kind` with a white part over `week`, the white part in `srid` as GeoJSON,
    largest white area first."""
    params = {"kind": kind, "first_day": week.first_day, "last_day": week.last_day, "srid": srid}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_WHITE_SQL, params)
        zones = [WeekWhiteZone(*row) for row in cursor.fetchall()]
    zones = [z for z in zones if z.white_m2 >= WHITE_EPSILON_M2]
    zones.sort(key=lambda z: (-z.white_m2, _natural_key(z.code)))
    return zones
