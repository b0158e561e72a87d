"""The planner's weekly report page (/rapports/, issue 6).

Rendered on the server, tables and trend chart included, so that it prints and reads without
JavaScript; reports.js only sorts the table and draws the white zones on the Leaflet map. The
exports are the API's (api.reports): one implementation of the CSV and the GeoJSON.

Small counts: a planner never receives a people count of 1 or 2 (the page says "<3", even in
the attributes used for sorting); a coordinator sees the exact figure on screen, and "<3" on
paper (the print stylesheet swaps them), since a printed report leaves the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from maraudes.models import Need
from maraudes.numbers import local_number
from maraudes.roles import AGGREGATES, COORDINATION, user_has_role
from zones.reports import (
    HOUR_BANDS,
    SMALL_COUNT_LABEL,
    IsoWeek,
    NeedFigures,
    ReportParamError,
    WeeklyReport,
    WeekRow,
    count_shown,
    kind_param,
    week_current,
    week_param,
    weekly_report,
)
from zones.selectors import WHITE_EPSILON_M2, zone_kinds

WEEK_CHOICES = 52
KIND_LABELS = {
    "quartier": "Quartiers",
    "arrondissement": "Arrondissements",
    "secteur": "Secteurs",
    "sector": "Secteurs",
}


# --- Formatting (French first: decimal comma, grouped thousands) ----------------------------


def num(value: float, digits: int = 0) -> str:
    return local_number(value, digits, grouping=True)


def pct(ratio: float) -> str:
    return f"{num(ratio * 100, 1 if 0 < ratio < 0.1 else 0)}\u00a0%"


def duration(seconds: float) -> str:
    """<1 min, 45 min, 1 h 05, 12 h."""
    minutes = round(seconds / 60)
    if minutes == 0 and seconds > 0:
        return "<1\u00a0min"
    if minutes < 60:
        return f"{minutes}\u00a0min"
    hours, rest = divmod(minutes, 60)
    return f"{hours}\u00a0h\u00a0{rest:02d}" if rest else f"{hours}\u00a0h"


def week_label(week: IsoWeek) -> str:
    return _("Semaine %(n)d de %(year)d") % {"n": week.week, "year": week.year}


def week_short(week: IsoWeek) -> str:
    return _("semaine %(n)d") % {"n": week.week}


def week_choice_label(week: IsoWeek) -> str:
    """Semaine 47 · 16 nov. → 22 nov. 2026"""
    return _("Semaine %(n)d · du %(first)s au %(last)s") % {
        "n": week.week,
        "first": formats.date_format(week.first_day, "j b"),
        "last": formats.date_format(week.last_day, "j b Y"),
    }


def week_span(week: IsoWeek) -> str:
    return _("du %(first)s au %(last)s") % {
        "first": formats.date_format(week.first_day, "l j F"),
        "last": formats.date_format(week.last_day, "l j F Y"),
    }


@dataclass(frozen=True)
class Count:
    """A count as shown: on screen, on paper, and the value the table sorts by. `people` is
    the people count it goes with (itself for a people count): 1 or 2 hides it."""

    screen: str
    paper: str
    sort: int

    @classmethod
    def of(cls, n: int, *, exact: bool, people: int | None = None) -> Count:
        shown = count_shown(n, protect=True, people=people)
        protected = num(shown) if isinstance(shown, int) else shown
        if exact:
            return cls(screen=num(n), paper=protected, sort=n)
        # Sorts among the small counts without telling 1 from 2.
        return cls(
            screen=protected, paper=protected, sort=1 if protected == SMALL_COUNT_LABEL else n
        )

    @property
    def differs(self) -> bool:
        return self.screen != self.paper


# --- What the template shows ----------------------------------------------------------------

CHANGE_LABELS = {"up": "en hausse", "down": "en baisse", "same": "stable"}
CHANGE_ARROWS = {"up": "▲", "down": "▼", "same": "="}


def _change(row: WeekRow) -> dict:
    points = (row.covered_ratio - row.previous_covered_ratio) * 100
    sign = "+" if points > 0 else ("−" if points < 0 else "±")
    return {
        "key": row.change,
        "arrow": CHANGE_ARROWS[row.change],
        "label": CHANGE_LABELS[row.change],
        "points": f"{sign}{num(abs(points), 1)}\u00a0pt",
        "sort": f"{points:.3f}",
        "previous": pct(row.previous_covered_ratio),
    }


def _row(row: WeekRow, *, exact: bool) -> dict:
    return {
        "code": row.code,
        "name": row.name,
        "covered": pct(row.covered_ratio),
        "covered_sort": f"{row.covered_ratio:.6f}",
        "white_ha": num(row.white_m2 / 10_000, 1),
        "white_sort": f"{row.white_m2:.1f}",
        "area_ha": num(row.area_m2 / 10_000, 1),
        "last_visit": row.last_visit,
        "last_visit_sort": row.last_visit.isoformat() if row.last_visit else "",
        "passages": row.passages,
        "presence": duration(row.presence_s),
        "presence_sort": f"{row.presence_s:.0f}",
        "encounters": Count.of(row.encounters, exact=exact, people=row.people),
        "people": Count.of(row.people, exact=exact),
        "change": _change(row),
    }


def _heat(seconds: float, peak: float) -> dict:
    level = min(seconds / peak, 1.0)
    return {
        "text": duration(seconds) if seconds > 0 else "",
        "level": f"{level:.2f}",
        "dark": level > 0.55,
        "title": duration(seconds),
    }


def _night(report: WeeklyReport) -> dict:
    """The zone × hour band matrix, shaded by the share of the busiest cell."""
    rows = [*report.rows]
    peak = max((s for r in rows for s in (*r.bands_s, r.other_s)), default=0.0) or 1.0
    has_other = any(r.other_s >= 60 for r in rows)

    def cells(row: WeekRow) -> list[dict]:
        values = list(row.bands_s) + ([row.other_s] if has_other else [])
        return [_heat(s, peak) for s in values]

    city_peak = max((*report.totals.bands_s, report.totals.other_s), default=0.0) or 1.0
    total_values = list(report.totals.bands_s) + ([report.totals.other_s] if has_other else [])
    return {
        "bands": [f"{h:02d}h" for h in HOUR_BANDS] + ([_("autres")] if has_other else []),
        "rows": [{"code": r.code, "name": r.name, "cells": cells(r)} for r in rows],
        "totals": [_heat(s, city_peak) for s in total_values],
    }


def _needs(report: WeeklyReport, *, exact: bool) -> dict:
    """People (and encounters) by need, for the zones where someone was met."""
    # Needs seen this week, in the model's order.
    present = [
        (value, str(label))
        for value, label in Need.choices
        if report.totals.needs[value].encounters
    ]

    def cell(figures: NeedFigures) -> Count:
        """People and, in brackets, encounters ("7 (5)"); "<3" alone when protected."""
        exact_text = f"{num(figures.people)} ({num(figures.encounters)})"
        if not figures.encounters:
            return Count(screen="·", paper="·", sort=0)
        if count_shown(figures.people, protect=True) == SMALL_COUNT_LABEL:
            shown = exact_text if exact else SMALL_COUNT_LABEL
            return Count(screen=shown, paper=SMALL_COUNT_LABEL, sort=0)
        return Count(screen=exact_text, paper=exact_text, sort=0)

    def cells(row: WeekRow) -> list[Count]:
        return [cell(row.needs[value]) for value, _label in present]

    return {
        "columns": [{"code": value, "label": label} for value, label in present],
        "rows": [
            {"code": r.code, "name": r.name, "cells": cells(r)} for r in report.rows if r.encounters
        ],
        "totals": cells(report.totals),
    }


# The trend chart's frame, in SVG user units (scaled to the page width by CSS).
CHART_W, CHART_H = 480, 300
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 58, 18, 26, 34


def _trend(report: WeeklyReport) -> dict:
    points = report.trend
    inner_w = CHART_W - CHART_LEFT - CHART_RIGHT
    inner_h = CHART_H - CHART_TOP - CHART_BOTTOM
    step = inner_w / max(len(points) - 1, 1)
    drawn = []
    for i, point in enumerate(points):
        x = CHART_LEFT + i * step
        y = CHART_TOP + (1 - point.covered_ratio) * inner_h
        drawn.append(
            {
                "x": f"{x:.1f}",
                "y": f"{y:.1f}",
                "label": f"S{point.week.week}",
                "value": pct(point.covered_ratio),
                "title": f"{week_label(point.week)} ({week_span(point.week)}) : "
                f"{pct(point.covered_ratio)}",
                "current": point.week == report.week,
            }
        )
    line = " ".join(f"{p['x']},{p['y']}" for p in drawn)
    bottom = f"{CHART_TOP + inner_h:.1f}"
    area = f"{drawn[0]['x']},{bottom} {line} {drawn[-1]['x']},{bottom}" if drawn else ""
    grid = [
        {"y": f"{CHART_TOP + (1 - v) * inner_h:.1f}", "label": f"{round(v * 100)}\u00a0%"}
        for v in (0, 0.25, 0.5, 0.75, 1)
    ]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "right": CHART_W - CHART_RIGHT,
        "label_y": CHART_H - 12,
        "points": drawn,
        "line": line,
        "area": area,
        "grid": grid,
        "first": week_label(points[0].week) if points else "",
        "last": week_label(points[-1].week) if points else "",
    }


def _week_choices(selected: str | None, *, now: datetime) -> list[dict]:
    current = week_current(now=now)
    choices = []
    for back in range(WEEK_CHOICES):
        week = current.shifted(-back)
        label = week_choice_label(week)
        if back == 0:
            label += " " + _("(en cours)")
        choices.append({"value": str(week), "label": label})
    if selected and selected not in {c["value"] for c in choices}:
        try:  # an older week asked in the URL stays selectable; a wrong one is not offered
            week = IsoWeek.parse(selected)
        except ReportParamError:
            return choices
        choices.append({"value": str(week), "label": week_choice_label(week)})
    return choices


def _links(week: IsoWeek, kind: str | None) -> dict:
    query = {"week": str(week), **({"kind": kind} if kind else {})}
    api = reverse("report-weekly")
    return {
        "excel": f"{api}?{urlencode({**query, 'format': 'csv', 'dialect': 'excel-fr'})}",
        "csv": f"{api}?{urlencode({**query, 'format': 'csv'})}",
        "json": f"{api}?{urlencode(query)}",
        "geojson": f"{reverse('report-weekly-white-zones')}?{urlencode(query)}",
        "geojson_name": f"zones-blanches-{week}-{kind or 'zones'}.geojson",
        "zones": f"{reverse('zones')}?{urlencode({'kind': kind} if kind else {})}",
    }


def _page(request: HttpRequest, kinds: list[str], *, now: datetime) -> dict:
    return {
        "kinds": [{"value": k, "label": KIND_LABELS.get(k, k.capitalize())} for k in kinds],
        "week_choices": _week_choices(request.GET.get("week"), now=now),
    }


@login_required
def weekly_report_page(request: HttpRequest) -> HttpResponse:
    if not user_has_role(request.user, AGGREGATES):
        return render(request, "frontend/reports/forbidden.html", status=403)
    now = timezone.now()
    kinds = zone_kinds()
    context = _page(request, kinds, now=now)
    try:
        week = week_param(request.GET.get("week"), now=now)
        kind = kind_param(request.GET.get("kind"), kinds=kinds)
    except ReportParamError as exc:
        context |= {
            "error": exc.message,
            "selected_week": request.GET.get("week", ""),
            "selected_kind": request.GET.get("kind", ""),
        }
        return render(request, "frontend/reports/weekly.html", context, status=400)

    exact = user_has_role(request.user, COORDINATION)
    report = weekly_report(week=week, kind=kind, now=now)
    totals = _row(report.totals, exact=exact)
    context |= {
        "report": report,
        "selected_week": str(week),
        "selected_kind": kind or "",
        "kind_label": KIND_LABELS.get(kind or "", kind or ""),
        "week_title": week_label(week),
        "week_span": week_span(week),
        "previous_week": week.shifted(-1),
        "previous_label": week_label(week.shifted(-1)),
        "previous_short": week_short(week.shifted(-1)),
        "previous_encounters": Count.of(
            report.totals.previous_encounters, exact=exact, people=report.totals.previous_people
        ),
        "next_week": week.shifted(1) if week < week_current(now=now) else None,
        "next_label": week_label(week.shifted(1)),
        "exact": exact,
        "rows": [_row(r, exact=exact) for r in report.rows],
        "totals": totals,
        "white_zone_count": sum(1 for r in report.rows if r.white_m2 >= WHITE_EPSILON_M2),
        "night": _night(report),
        "needs": _needs(report, exact=exact),
        "trend": _trend(report),
        "links": _links(week, kind),
        "generated_at": now,
        "radius_foot": num(settings.COVERAGE_RADIUS_FOOT),
        "radius_vehicle": num(settings.COVERAGE_RADIUS_VEHICLE),
        "max_gap": num(settings.MAX_GAP_S),
    }
    return render(request, "frontend/reports/weekly.html", context)
