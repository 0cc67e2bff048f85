"""Schedules across both DST changes of three zones, as the scheduler meets them: tick by tick.

A fire-time list computed in one go was always right; the scheduler, though, asks "what is due
after the last run?" once a tick, and in the repeated hour of the autumn change a question asked
at 02:45 (first time) used to miss 02:00 (second time), a later instant: a lost run and a 30-minute
hole for ``*/15`` in Berlin. These tests drive ``due_runs`` (what ``Scheduler.run_once`` calls) and
``next_fire_times`` from every few minutes of both DST nights, and count runs and gaps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskqueue.scheduling.cron import fire_times_between, next_fire_times
from taskqueue.scheduling.scheduler import due_runs
from taskqueue.scheduling.schedules import Schedule
from taskqueue.scheduling.timing import Period

#: zone -> (spring-forward day, fall-back day) in 2027; Sydney's autumn is in April.
DST_DAYS = {
    "Europe/Berlin": ("2027-03-28", "2027-10-31"),
    "America/New_York": ("2027-03-14", "2027-11-07"),
    "Australia/Sydney": ("2027-10-03", "2027-04-04"),
}
CASES = [(tz, day) for tz, days in DST_DAYS.items() for day in days]
#: expression -> real-time spacing; the hour field is ``*``, so they follow real time all night.
INTERVALS = {"*/15 * * * *": 15, "0 * * * *": 60, "*/5 * * * *": 5}


def window(tz: str, day: str) -> tuple[datetime, datetime]:
    """Three hours either side of the zone's offset change on ``day``."""
    zone = ZoneInfo(tz)
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=14)
    while moment.astimezone(zone).utcoffset() == (moment + STEP).astimezone(zone).utcoffset():
        moment += STEP
    return moment - timedelta(hours=3), moment + timedelta(hours=3)


STEP = timedelta(minutes=15)


def ticked(expr: str, tz: str, start: datetime, end: datetime, tick: float) -> list[datetime]:
    """Every run the scheduler enqueues between ``start`` and ``end``, ticking every ``tick`` s
    with a grace of one tick (so nothing counts as missed), recording the last fire as
    ``Scheduler`` does. Real schedulers tick every second with 60 s of grace; the arithmetic
    is the same, and coarse ticks keep the test fast."""
    schedule = replace(Schedule.create("s", "t", cron=expr, timezone=tz), since=start)
    runs: list[datetime] = []
    now = start
    while now < end:
        now += timedelta(seconds=tick)
        due, skipped = due_runs(schedule, now, tick)
        assert not skipped, (now, skipped)
        runs += due
        if due:
            schedule = replace(schedule, last_fire=due[-1])
    return runs


@pytest.mark.parametrize(("tz", "day"), CASES)
@pytest.mark.parametrize("expr", ["*/15 * * * *", "0 * * * *", "*/5 * * * *"])
def test_scheduler_ticks_lose_no_run_on_dst_days(tz: str, day: str, expr: str) -> None:
    start, end = window(tz, day)
    runs = ticked(expr, tz, start, end, 240.0)
    spacing = timedelta(minutes=INTERVALS[expr])
    gaps = [(a.isoformat(), b.isoformat()) for a, b in zip(runs, runs[1:], strict=False)
            if b - a != spacing]
    assert gaps == [], f"{expr} in {tz} on {day}: holes or doubles {gaps[:3]}"
    assert len(runs) == 6 * 3600 // spacing.seconds, len(runs)
    assert len(set(runs)) == len(runs), "no run twice"
    assert runs == fire_times_between(expr, tz, start, end, 10_000), "same as computed at once"


@pytest.mark.parametrize(("tz", "day"), CASES)
@pytest.mark.parametrize("expr", ["*/15 * * * *", "*/7 * * * *", "30 2 * * *"])
def test_next_run_from_any_minute_is_the_next_in_the_list(tz: str, day: str, expr: str) -> None:
    start, end = window(tz, day)
    every = fire_times_between(expr, tz, start, end + timedelta(days=2), 10_000)
    after = start + timedelta(seconds=13)
    while after < end:
        expected = next(t for t in every if t > after)
        assert next_fire_times(expr, tz, after, 1) == [expected], (expr, tz, after)
        after += timedelta(minutes=7)


def test_the_reported_berlin_hole_is_filled() -> None:
    """The issue's numbers: */15 gave 23 runs on 2027-10-31 00:00Z-06:00Z with 00:45 -> 01:15."""
    start = datetime(2027, 10, 30, 23, 59, tzinfo=UTC)
    runs = ticked("*/15 * * * *", "Europe/Berlin", start, start + timedelta(hours=2), 60.0)
    assert datetime(2027, 10, 31, 1, 0, tzinfo=UTC) in runs
    assert len(runs) == 8
    new_york = ticked("*/5 * * * *", "America/New_York", datetime(2027, 11, 7, 5, tzinfo=UTC),
                      datetime(2027, 11, 7, 7, tzinfo=UTC), 60.0)
    assert datetime(2027, 11, 7, 6, 0, tzinfo=UTC) in new_york and len(new_york) == 24


@pytest.mark.parametrize(("tz", "day"), [("Europe/Berlin", "2027-10-31"),
                                          ("Australia/Sydney", "2027-10-03")])
def test_interval_schedule_ticks_every_7_real_minutes_through_dst(tz: str, day: str) -> None:
    """An interval cron cannot express (every 7 minutes) runs through the scheduler's ticks
    7 real minutes apart across hour boundaries and the DST change, with none lost."""
    start, end = window(tz, day)
    schedule = Schedule.create("s", "t", every="every 7 minutes", timezone=tz)
    schedule = replace(schedule, since=start, period=Period.starting(7, "minute", start))
    runs: list[datetime] = []
    now = start
    while now < end:
        now += timedelta(seconds=240)
        due, _ = due_runs(schedule, now, 240.0)
        runs += due
        if due:
            schedule = replace(schedule, last_fire=due[-1])
    assert {b - a for a, b in zip(runs, runs[1:], strict=False)} == {timedelta(minutes=7)}
    assert len(runs) == 6 * 60 // 7


@pytest.mark.parametrize(("tz", "day"), CASES)
def test_fixed_hour_schedules_fire_once_on_dst_nights(tz: str, day: str) -> None:
    """A fixed wall time fires exactly once through the ticks: shifted forward in the gap,
    at its first occurrence in the repeat (02:30 and 01:30 cover both zones' change hours)."""
    start, end = window(tz, day)
    for expr in ("30 2 * * *", "30 1 * * *"):
        runs = ticked(expr, tz, start - timedelta(hours=20), end + timedelta(hours=1), 600.0)
        assert len(runs) == 1, (expr, runs)
        assert runs == fire_times_between(expr, tz, start - timedelta(hours=20),
                                          end + timedelta(hours=1), 10)
