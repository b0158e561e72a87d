"""Service days: a night from 20:00 to 05:00 is one day (DESIGN.md, "Coverage model").

A moment belongs to the local date (TIME_ZONE) of its local time minus DAY_START. The
subtraction is on the wall clock, so the October and March clock changes do not move the
boundary: it stays at 06:00 local.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


def _tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _day_start() -> timedelta:
    start = settings.DAY_START
    return timedelta(hours=start.hour, minutes=start.minute, seconds=start.second)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_microseconds(moment: datetime) -> int:
    """An aware moment as whole microseconds since the Unix epoch: exact, and free of PEP
    495's trap (a local time in the October clock change's repeated hour never equals a UTC
    datetime); PostgreSQL gives the same number for a timestamptz with
    `(extract(epoch FROM t) * 1000000)::int8`."""
    return (moment - _EPOCH) // _MICROSECOND


def from_epoch_microseconds(instant: int) -> datetime:
    """epoch_microseconds' inverse, in UTC."""
    return _EPOCH + timedelta(microseconds=instant)


def service_day(moment: datetime) -> date:
    local = moment.astimezone(_tz())
    return (local.replace(tzinfo=None) - _day_start()).date()


def service_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a service day as aware datetimes: local DAY_START to the next one."""
    tz = _tz()
    start = datetime.combine(day, datetime.min.time()) + _day_start()
    end = start + timedelta(days=1)
    return start.replace(tzinfo=tz), end.replace(tzinfo=tz)


def service_day_sql(column: str) -> str:
    """The same rule in SQL, for grouping raw fixes by day in the database."""
    start = settings.DAY_START
    return (
        f"(({column} AT TIME ZONE '{settings.TIME_ZONE}') "
        f"- interval '{start.hour} hours {start.minute} minutes {start.second} seconds')::date"
    )


MAX_WINDOW_DAYS = 366


class WindowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def days_window(
    raw_from: str | None, raw_to: str | None, *, default_days: int = 7
) -> tuple[date, date]:
    """Parse a `from`/`to` pair of service days (YYYY-MM-DD, both included).

    Missing `to` is today's service day; missing `from` is `default_days` before `to`.
    """

    def parse(name: str, raw: str) -> date:
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            raise WindowError(name, f"« {raw} » n'est pas une date AAAA-MM-JJ.") from None

    day_to = parse("to", raw_to) if raw_to else service_day(timezone.now())
    day_from = parse("from", raw_from) if raw_from else day_to - timedelta(days=default_days - 1)
    if day_from > day_to:
        raise WindowError("from", f"from ({day_from}) est après to ({day_to}).")
    if (day_to - day_from).days + 1 > MAX_WINDOW_DAYS:
        raise WindowError(
            "to", f"La période dépasse {MAX_WINDOW_DAYS} jours ; réduisez l'intervalle."
        )
    return day_from, day_to
