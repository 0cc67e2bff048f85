"""Interval schedules: a cron expression thinned to every Nth period, for what cron cannot say.

Cron steps restart at each boundary: ``*/7`` minutes fires at :56 and then :00, four minutes
later, and there is no cron for "every other day" or "every 2 weeks". Such a schedule is kept as
a *base* cron expression (when in the period it fires: every minute, at 9:00 each day, on
Mondays at 9:00) plus a :class:`Period` (``count`` and ``unit``) counted from an *anchor*, the
moment the schedule was created:

* ``second``, ``minute``, ``hour``: real elapsed time, so every 7 minutes is 7 real minutes
  apart across hours, days and DST changes (the anchor is floored to the unit);
* ``day``, ``week`` (Monday to Sunday), ``month``: calendar periods in the schedule's zone.

A base fire time is kept when the number of periods between the anchor and it is a multiple of
``count``. With no period the functions here are those of :mod:`taskqueue.scheduling.cron`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Final

from taskqueue.scheduling import cron
from taskqueue.scheduling.cron import ScheduleError

__all__ = ["PERIOD_UNITS", "Period", "fire_times_between", "latest_fire_times",
           "next_fire_times"]

#: Units a period may count, and their length in seconds for the real-time ones.
PERIOD_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 0, "week": 0, "month": 0}


@dataclass(frozen=True)
class Period:
    """Keep every ``count``-th ``unit`` from ``anchor`` (an aware instant)."""

    count: int
    unit: str
    anchor: datetime

    def __post_init__(self) -> None:
        if self.unit not in PERIOD_UNITS:
            raise ScheduleError(f"period unit {self.unit!r} is not one of "
                                f"{', '.join(PERIOD_UNITS)}")
        if self.count < 2:
            raise ScheduleError(f"a period repeats every 2 or more {self.unit}s, not "
                                f"{self.count}")
        if self.anchor.tzinfo is None:
            raise ScheduleError("a period's anchor must be timezone-aware")

    @classmethod
    def starting(cls, count: int, unit: str, at: datetime) -> Period:
        """A period anchored at ``at``, floored to the unit for the real-time units."""
        size = PERIOD_UNITS.get(unit)
        if size:
            seconds = int(at.astimezone(UTC).timestamp()) // size * size
            at = datetime.fromtimestamp(seconds, UTC)
        return cls(count, unit, at.astimezone(UTC))

    def keeps(self, instant: datetime, tz: str) -> bool:
        """True when ``instant`` falls in a kept period."""
        return self._index(instant, tz) % self.count == 0

    def _index(self, instant: datetime, tz: str) -> int:
        size = PERIOD_UNITS[self.unit]
        if size:
            return int((instant - self.anchor).total_seconds() // size)
        zone = cron.zone(tz)
        day, start = instant.astimezone(zone).date(), self.anchor.astimezone(zone).date()
        if self.unit == "day":
            return (day - start).days
        if self.unit == "week":
            return (_monday(day) - _monday(start)).days // 7
        return (day.year * 12 + day.month) - (start.year * 12 + start.month)

    def describe(self) -> str:
        return f"every {self.count} {self.unit}s from {self.anchor.isoformat()}"


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def fire_times_between(expr: str, tz: str, after: datetime, until: datetime, limit: int,
                       period: Period | None = None) -> list[datetime]:
    """Fire instants in ``(after, until]``, at most ``limit`` (the earliest)."""
    if period is None:
        return cron.fire_times_between(expr, tz, after, until, limit)
    found: list[datetime] = []
    for instant in cron.iter_fire_times(expr, tz, after):
        if instant > until or len(found) >= limit:
            break
        if period.keeps(instant, tz):
            found.append(instant)
    return found


def next_fire_times(expr: str, tz: str, after: datetime, count: int,
                    period: Period | None = None) -> list[datetime]:
    """The next ``count`` fire instants after ``after``."""
    if period is None:
        return cron.next_fire_times(expr, tz, after, count)
    kept = (t for t in cron.iter_fire_times(expr, tz, after) if period.keeps(t, tz))
    return list(islice(kept, count))


def latest_fire_times(expr: str, tz: str, after: datetime, until: datetime, limit: int,
                      period: Period | None = None) -> list[datetime]:
    """The latest ``limit`` fire instants in ``(after, until]``, oldest first."""
    if period is None:
        return cron.latest_fire_times(expr, tz, after, until, limit)
    # Enough base times to hold ``limit`` kept ones: a base fires at least once per unit for the
    # real-time units and days, up to 7 a week, up to 31 a month.
    per_period = {"day": 1, "week": 7, "month": 31}.get(period.unit, 1)
    wide = cron.latest_fire_times(expr, tz, after, until, limit * period.count * per_period)
    return [t for t in wide if period.keeps(t, tz)][-limit:] if limit > 0 else []
