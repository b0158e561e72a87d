from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from maraudes.days import WindowError, days_window, service_day, service_day_bounds

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("local", "day"),
    [
        (datetime(2026, 11, 20, 20, 0), date(2026, 11, 20)),
        (datetime(2026, 11, 20, 23, 59), date(2026, 11, 20)),
        (datetime(2026, 11, 21, 0, 30), date(2026, 11, 20)),
        (datetime(2026, 11, 21, 5, 59), date(2026, 11, 20)),
        (datetime(2026, 11, 21, 6, 0), date(2026, 11, 21)),
        # The night of the October clock change: 05:30 CET is still Saturday's night.
        (datetime(2026, 10, 25, 5, 30), date(2026, 10, 24)),
        (datetime(2026, 3, 29, 5, 30), date(2026, 3, 28)),
    ],
)
def test_a_night_is_one_service_day(local, day):
    assert service_day(local.replace(tzinfo=PARIS)) == day


def test_it_reads_utc_times_in_paris_time():
    # 04:30 UTC in November is 05:30 in Paris: still the previous night.
    assert service_day(datetime(2026, 11, 21, 4, 30, tzinfo=UTC)) == date(2026, 11, 20)


def test_the_october_night_lasts_25_hours():
    start, end = service_day_bounds(date(2026, 10, 24))
    # Aware datetimes in one zone subtract on the wall clock: compare instants in UTC.
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 25 * 3600
    assert start.astimezone(PARIS).hour == end.astimezone(PARIS).hour == 6


def test_a_window_defaults_to_the_last_seven_days():
    first, last = days_window(None, "2026-11-20")
    assert (first, last) == (date(2026, 11, 14), date(2026, 11, 20))


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("2026-11-21", "2026-11-20", "from"),
        ("2025-01-01", "2026-11-20", "to"),
        ("20/11/2026", "2026-11-20", "from"),
        ("2026-11-20", "2026-11-31", "to"),
    ],
)
def test_bad_windows_name_the_field(raw_from, raw_to, field):
    with pytest.raises(WindowError) as error:
        days_window(raw_from, raw_to)
    assert error.value.field == field
