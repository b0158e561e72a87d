"""The planner's weekly report on the benchmark week (issue 6): `report_week_p50_ms`.

From bench/run.py, once the week is loaded (after step 4, the database analysed):

    from bench.report import bench_report
    results |= bench_report(first_night=scenario.nights[0])

On its own, against a database that already holds a benchmark week (never the dev one):

    python -m bench.report --database-url postgis://postgres@127.0.0.1:54329/maraudes_bench

What is timed is what GET /api/v1/reports/weekly/ does for the 80 quartiers, minus HTTP:
`weekly_report` (five reads: zones with their last visit, eight weeks of covered area from
the weekly white parts, passages, encounters, presence from the rows kept as the fixes
arrived) and its JSON form, as of the Monday after the week, as a planner would ask. The
figure for the white-zone GeoJSON of the map is given beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

RUNS = 5


def _p50_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def bench_report(*, first_night: date, runs: int = RUNS, kind: str = "quartier") -> dict:
    """Time the weekly report of the ISO week holding `first_night`; Django must be set up."""
    from zoneinfo import ZoneInfo

    from django.conf import settings

    from api.reports import report_as_dict
    from zones.reports import IsoWeek, weekly_report, weekly_white_zones

    week = IsoWeek.of(first_night)
    monday_after = week.last_day + timedelta(days=1)
    as_of = datetime.combine(monday_after, clock(12), tzinfo=ZoneInfo(settings.TIME_ZONE))

    def timed(function) -> list[float]:
        function()  # warm the caches once
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            function()
            times.append(time.perf_counter() - t0)
        return times

    full = timed(lambda: report_as_dict(weekly_report(week=week, kind=kind, now=as_of)))
    white = timed(lambda: weekly_white_zones(week=week, kind=kind, srid=4326))
    report = weekly_report(week=week, kind=kind, now=as_of)
    return {
        "report_week_p50_ms": _p50_ms(full),
        "report_week_max_ms": round(max(full) * 1000, 1),
        "report_week_white_zones_p50_ms": _p50_ms(white),
        "report_week_runs": runs,
        "report_week": str(week),
        "report_week_zones": len(report.rows),
        "report_week_covered_ratio": round(report.totals.covered_ratio, 4),
        "report_week_presence_hours": round(report.totals.presence_hours, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from bench.run import django_setup
    from bench.scenario import DEFAULT_FIRST_NIGHT

    parser = argparse.ArgumentParser(description="The weekly report on a loaded benchmark week.")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--first-night", type=date.fromisoformat, default=DEFAULT_FIRST_NIGHT)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    django_setup(args.database_url)
    results = bench_report(first_night=args.first_night, runs=args.runs)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
