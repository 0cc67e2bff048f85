"""Cron arithmetic: fields, aliases, seconds, and daylight saving time in several zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskqueue.errors import ConfigError
from taskqueue.scheduling.cron import (
    ScheduleError,
    fire_times_between,
    latest_fire_times,
    next_fire_times,
    normalize_cron,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(instants: list[datetime], tz: str) -> list[str]:
    return [i.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M:%S %Z") for i in instants]


# -- expressions ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "normal"), [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("  */5   *  * * * ", "*/5 * * * *"),
    ("0 9 * * MON-FRI", "0 9 * * MON-FRI"),
    ("*/10 * * * * *", "*/10 * * * * *"),
])
def test_normalize(expr: str, normal: str) -> None:
    assert normalize_cron(expr) == normal


@pytest.mark.parametrize(("expr", "message"), [
    ("* * * *", "has 4 fields"),
    ("* * * * * * *", "has 7 fields"),
    ("61 * * * *", "invalid cron expression"),
    ("* 25 * * *", "invalid cron expression"),
    ("@fortnightly", "has 1 fields"),
])
def test_invalid_expressions_say_why(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        normalize_cron(expr)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_six_fields_put_seconds_first() -> None:
    runs = next_fire_times("*/20 * * * * *", "UTC", utc(2024, 1, 1, 12, 0, 5), 4)
    assert [r.strftime("%H:%M:%S") for r in runs] == ["12:00:20", "12:00:40", "12:01:00",
                                                       "12:01:20"]


def test_every_second_is_every_second() -> None:
    runs = next_fire_times("* * * * * *", "Europe/Paris", utc(2024, 6, 1, 0, 0, 0), 5)
    assert [(b - a).total_seconds() for a, b in zip(runs, runs[1:], strict=False)] == [1.0] * 4


def test_zone_shifts_the_instant() -> None:
    (paris,) = next_fire_times("30 9 * * *", "Europe/Paris", utc(2024, 1, 10), 1)
    (tokyo,) = next_fire_times("30 9 * * *", "Asia/Tokyo", utc(2024, 1, 10), 1)
    assert paris == utc(2024, 1, 10, 8, 30) and tokyo == utc(2024, 1, 10, 0, 30)


def test_unknown_zone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        next_fire_times("* * * * *", "Mars/Olympus", utc(2024, 1, 1), 1)


def test_last_day_of_month() -> None:
    runs = next_fire_times("0 12 L * *", "UTC", utc(2024, 1, 15), 3)
    assert [r.date().isoformat() for r in runs] == ["2024-01-31", "2024-02-29", "2024-03-31"]


# -- daylight saving time -------------------------------------------------------------------------
# Paris: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET.
# New York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.

@pytest.mark.parametrize(("tz", "expr", "after", "expected"), [
    # spring forward: 02:30 does not exist; it runs once, shifted by the gap (PEP 495)
    ("Europe/Paris", "30 2 * * *", utc(2024, 3, 29, 12),
     ["03-30 02:30:00 CET", "03-31 03:30:00 CEST", "04-01 02:30:00 CEST"]),
    ("America/New_York", "30 2 * * *", utc(2024, 3, 8, 12),
     ["03-09 02:30:00 EST", "03-10 03:30:00 EDT", "03-11 02:30:00 EDT"]),
    # fall back: 02:30 (Paris) / 01:30 (New York) happen twice; a daily job runs once, first
    ("Europe/Paris", "30 2 * * *", utc(2024, 10, 25, 12),
     ["10-26 02:30:00 CEST", "10-27 02:30:00 CEST", "10-28 02:30:00 CET"]),
    ("America/New_York", "30 1 * * *", utc(2024, 11, 1, 12),
     ["11-02 01:30:00 EDT", "11-03 01:30:00 EDT", "11-04 01:30:00 EST"]),
])
def test_daily_job_runs_once_on_dst_days(tz: str, expr: str, after: datetime,
                                         expected: list[str]) -> None:
    assert local(next_fire_times(expr, tz, after, 3), tz) == expected


@pytest.mark.parametrize(("tz", "after", "expected"), [
    ("Europe/Paris", utc(2024, 10, 26, 22, 0),     # 00:00 CEST
     ["10-27 00:30:00 CEST", "10-27 01:30:00 CEST", "10-27 02:30:00 CEST",
      "10-27 02:30:00 CET", "10-27 03:30:00 CET"]),
    ("America/New_York", utc(2024, 11, 3, 4, 0),   # 00:00 EDT
     ["11-03 00:30:00 EDT", "11-03 01:30:00 EDT", "11-03 01:30:00 EST",
      "11-03 02:30:00 EST", "11-03 03:30:00 EST"]),
])
def test_hourly_job_runs_in_both_repeated_hours(tz: str, after: datetime,
                                                expected: list[str]) -> None:
    assert local(next_fire_times("30 * * * *", tz, after, 5), tz) == expected


@pytest.mark.parametrize(("tz", "after"), [
    ("Europe/Paris", utc(2024, 3, 30, 23, 0)),
    ("Europe/Paris", utc(2024, 10, 26, 23, 0)),
    ("America/New_York", utc(2024, 3, 10, 5, 0)),
    ("America/New_York", utc(2024, 11, 3, 4, 0)),
])
def test_intervals_keep_real_spacing_across_transitions(tz: str, after: datetime) -> None:
    runs = next_fire_times("*/5 * * * *", tz, after, 60)  # five hours around the change
    gaps = {(b - a) for a, b in zip(runs, runs[1:], strict=False)}
    assert gaps == {timedelta(minutes=5)}


def test_hourly_job_skips_the_missing_hour_once() -> None:
    runs = next_fire_times("30 * * * *", "America/New_York", utc(2024, 3, 10, 6, 0), 3)
    assert local(runs, "America/New_York") == ["03-10 01:30:00 EST", "03-10 03:30:00 EDT",
                                               "03-10 04:30:00 EDT"]


def test_half_hour_dst_zone() -> None:
    """Lord Howe shifts by 30 minutes; a 02:15 daily job still runs once a day."""
    runs = next_fire_times("15 2 * * *", "Australia/Lord_Howe", utc(2024, 10, 4), 4)
    days = [r.astimezone(ZoneInfo("Australia/Lord_Howe")).date() for r in runs]
    assert len(set(days)) == 4


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "0 * * * *", "*/20 1-3 * * *", "0 0 * * 0"])
def test_a_year_of_fire_times_strictly_increases(tz: str, expr: str) -> None:
    runs = fire_times_between(expr, tz, utc(2024, 1, 1), utc(2025, 1, 1), 10_000)
    assert all(a < b for a, b in zip(runs, runs[1:], strict=False))
    if expr == "30 2 * * *":
        assert len(runs) == 366  # once a day, every day of the leap year


def test_latest_fire_times_walk_backwards() -> None:
    after, until = utc(2024, 3, 25), utc(2024, 4, 3)
    forward = fire_times_between("30 2 * * *", "Europe/Paris", after, until, 100)
    assert latest_fire_times("30 2 * * *", "Europe/Paris", after, until, 3) == forward[-3:]
    assert latest_fire_times("30 2 * * *", "Europe/Paris", after, until, 100) == forward
    assert latest_fire_times("0 0 1 1 *", "UTC", utc(2024, 6, 1), utc(2024, 7, 1), 5) == []


def test_a_year_of_seconds_back_is_cheap() -> None:
    runs = latest_fire_times("* * * * * *", "UTC", utc(2020, 1, 1), utc(2024, 1, 1), 100)
    assert len(runs) == 100 and runs[-1] == utc(2024, 1, 1)
