"""The planner's weekly report (issue 6): coverage per zone over one ISO week of service days.

Pure reads. A week is the ISO week of *service days* (maraudes.days): Monday 06:00 to the next
Monday 06:00, local time, so the night from Sunday 20:00 to Monday 05:00 belongs to Sunday's
week, and the clock changes move nothing.

Per zone of one kind, the report gives:

- covered and white area over the week's seven service days, as `zones.selectors.zones_coverage`
  computes it for a 7-day window: the zone minus its weekly white part kept ready by the
  services (zones.models.ZoneWeekWhite, the row whose last day is the week's Sunday); without
  that row (the week still running, whose Sunday is past the services' horizon), the union of
  the week's zone-days;
- last visit (latest service day up to the week's Sunday that covered part of the zone) and
  passages (distinct shifts that entered the zone during the week), from the zone-days;
- encounters and people met, in total and by need, as `zones_coverage` counts them (the
  encounter's point in the zone, its time within the week's service days);
- hours of presence and the time-of-night matrix, from the presence kept per zone, shift,
  day and hour (zones.models.ZonePresence, see PRESENCE below);
- the previous week's covered share, passages, encounters and people, for the change;
- the covered share of the whole territory (all zones of the kind) over the last
  TREND_WEEKS weeks, from the same weekly white parts.

The query count is fixed (five statements, whatever the number of zones and fixes), and
nothing reads raw fixes; geometries are unioned only for a week whose weekly rows are not kept
yet (the current one): a past week of Paris takes tens of milliseconds.

PRESENCE. Hours of presence in a zone = the sum, over the week's shifts, of the time between
consecutive kept fixes of a service day (accuracy <= MAX_ACCURACY_M) that the coverage
contract joins by a segment (at most MAX_GAP_S apart, at most the team's MAX_SPEED), each
such interval counting for every zone that holds its midpoint, in the hour band of its start
(local time). Time spent standing still at an encounter counts; a gap of several minutes
(phone in a pocket, metro) does not. It is kept as the fixes arrive (zones.presence), so it
outlives the raw fixes' purge after POSITION_RETENTION_DAYS, like the coverage.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from maraudes.days import service_day, service_day_bounds
from maraudes.models import Need
from zones.models import WEEK_DAYS
from zones.selectors import WHITE_EPSILON_M2, WhiteShare

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
class WeekRow(WhiteShare):
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
    def covered_ratio(self) -> float:
        return min(self.covered_m2 / self.area_m2, 1.0) if self.area_m2 else 0.0

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
         WHERE c.zone_id = z.id AND c.day <= %(last_day)s)
FROM zones_zone z
WHERE z.kind = %(kind)s
"""

# Covered area per zone and week (k = 0 the oldest of the trend, TREND_WEEKS - 1 the chosen):
# the zone's area minus its weekly white part, as zones.selectors.zones_coverage reads it for
# a 7-day window. A week is Monday to Sunday, so its row is the one ending on its Sunday;
# without it, the area of the union of the week's zone-days (none: nothing covered).
_COVERED_SQL = """
SELECT z.id, (s.day - %(trend_last)s::date) / 7 AS k,
       CASE WHEN w.zone_id IS NOT NULL THEN GREATEST(z.area_m2 - w.white_m2, 0)
            ELSE COALESCE(ST_Area(cov.u), 0) END
FROM zones_zone z
CROSS JOIN unnest(%(sundays)s::date[]) AS s(day)
LEFT JOIN zones_zoneweekwhite w ON w.zone_id = z.id AND w.last_day = s.day
LEFT JOIN LATERAL (
  SELECT ST_Union(c.geom) AS u FROM zones_zonedaycoverage c
  WHERE w.zone_id IS NULL AND c.zone_id = z.id
    AND c.day BETWEEN s.day - %(week_back)s::int AND s.day
) cov ON true
WHERE z.kind = %(kind)s
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
# chosen (k = 1) weeks. Encounters are counted per zone and set of needs first, then per need:
# a few hundred rows to unnest instead of one per encounter (half the time with a realistic
# week of encounters). Each zone is tested against the encounters in its box in turn, so that
# PostGIS prepares its polygon once.
_ENCOUNTERS_SQL = """
WITH e AS MATERIALIZED (
  SELECT e.id, e.people_count AS people, e.needs, z.id AS zone_id,
         CASE WHEN e.seen_at >= %(first_start)s THEN 1 ELSE 0 END AS k
  FROM maraudes_encounter e
  JOIN zones_zone z ON z.kind = %(kind)s AND ST_Intersects(z.geom, e.point)
  WHERE e.seen_at >= %(previous_start)s AND e.seen_at < %(last_end)s
), g AS (
  SELECT zone_id, k, needs, count(*) AS n, sum(people) AS people
  FROM e GROUP BY zone_id, k, needs
  UNION ALL
  SELECT NULL, k, needs, count(*), sum(people)
  FROM (SELECT DISTINCT ON (id) k, needs, people FROM e ORDER BY id) once
  GROUP BY k, needs
)
SELECT g.zone_id, g.k, n.need, sum(g.n)::bigint, sum(g.people)::bigint
FROM g CROSS JOIN LATERAL unnest(array_prepend(NULL::varchar, g.needs)) AS n(need)
GROUP BY g.zone_id, g.k, n.need
"""

# Seconds of presence per zone and local hour over the week's service days (PRESENCE).
_PRESENCE_SQL = """
SELECT p.zone_id, p.hour, sum(p.seconds)
FROM zones_zonepresence p
JOIN zones_zone z ON z.id = p.zone_id
WHERE z.kind = %(kind)s AND p.day BETWEEN %(first_day)s AND %(last_day)s
GROUP BY p.zone_id, p.hour
"""


def weekly_report(*, week: IsoWeek, kind: str | None, now: datetime | None = None) -> WeeklyReport:
    """The report of `week` for the zones of `kind` (see the module's docstring); no kind
    (no zone at all yet) gives an empty report."""
    now = now or timezone.now()
    previous = week.shifted(-1)
    trend_first = week.shifted(-(TREND_WEEKS - 1))
    params = {
        "kind": kind,
        "trend_last": trend_first.last_day,
        "sundays": [trend_first.shifted(k).last_day for k in range(TREND_WEEKS)],
        "week_back": WEEK_DAYS - 1,
        "previous_first": previous.first_day,
        "first_day": week.first_day,
        "last_day": week.last_day,
        "previous_start": service_day_bounds(previous.first_day)[0],
        "first_start": service_day_bounds(week.first_day)[0],
        "last_end": service_day_bounds(week.last_day)[1],
    }
    # One transaction: one snapshot for the five reads (JIT is off on every connection,
    # maraudes.settings).
    with transaction.atomic(), connection.cursor() as cursor:
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
        cursor.execute(_PRESENCE_SQL, params)
        by_zone: dict[int, dict[int, float]] = defaultdict(dict)
        for zone_id, hour, seconds in cursor.fetchall():
            by_zone[zone_id][hour] = seconds

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
        for zone_id, code, name, area, last_visit in zones
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
    )


# --- White zones of the week, for the map and the GeoJSON export ---------------------------


@dataclass(frozen=True)
class WeekWhiteZone(WhiteShare):
    zone_id: int
    code: str
    name: str
    area_m2: float
    covered_m2: float
    last_visit: date | None
    passages: int
    geojson: str


# The week's white part of each zone is its weekly white part kept by the services
# (zones.models.ZoneWeekWhite, the row ending on the week's Sunday), as for the report's
# covered area; without it, the zone minus the union of the week's zone-days (all of it when
# nothing covered it).
_WHITE_SQL = """
SELECT z.id, z.code, z.name, z.area_m2,
       CASE WHEN w.zone_id IS NOT NULL THEN GREATEST(z.area_m2 - w.white_m2, 0)
            ELSE COALESCE(ST_Area(cov.u), 0) END,
       (SELECT max(c.day) FROM zones_zonedaycoverage c
         WHERE c.zone_id = z.id AND c.day <= %(last_day)s),
       (SELECT count(DISTINCT s) FROM zones_zonedaycoverage c, unnest(c.shift_ids) s
         WHERE c.zone_id = z.id AND c.day BETWEEN %(first_day)s AND %(last_day)s),
       ST_AsGeoJSON(ST_Transform(ST_Multi(CASE
         WHEN w.zone_id IS NOT NULL THEN w.geom
         WHEN cov.u IS NULL THEN z.geom
         ELSE ST_Difference(z.geom, cov.u) END), %(srid)s), 6)
FROM zones_zone z
LEFT JOIN zones_zoneweekwhite w ON w.zone_id = z.id AND w.last_day = %(last_day)s
LEFT JOIN LATERAL (
  SELECT ST_Union(c.geom) AS u FROM zones_zonedaycoverage c
  WHERE w.zone_id IS NULL AND c.zone_id = z.id
    AND c.day BETWEEN %(first_day)s AND %(last_day)s
) cov ON true
WHERE z.kind = %(kind)s
"""


def weekly_white_zones(*, week: IsoWeek, kind: str, srid: int) -> list[WeekWhiteZone]:
    """Zones of `kind` with a white part over `week`, the white part in `srid` as GeoJSON,
    largest white area first."""
    params = {"kind": kind, "first_day": week.first_day, "last_day": week.last_day, "srid": srid}
    with connection.cursor() as cursor:
        cursor.execute(_WHITE_SQL, params)
        zones = [WeekWhiteZone(*row) for row in cursor.fetchall()]
    zones = [z for z in zones if z.white_m2 >= WHITE_EPSILON_M2]
    zones.sort(key=lambda z: (-z.white_m2, _natural_key(z.code)))
    return zones
