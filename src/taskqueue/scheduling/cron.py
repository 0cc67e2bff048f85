"""Cron arithmetic in a time zone: which instants a cron expression fires at.

Expressions have 5 fields (``minute hour day-of-month month day-of-week``) or 6 with a leading
seconds field (``second minute hour dom month dow``, as in Quartz, Spring and sidekiq-cron), or
are one of the aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
croniter does the field arithmetic on *wall-clock* times; this module maps each wall-clock time
to real instants in the schedule's IANA zone, which is where daylight saving time matters:

* **Gap** (spring forward, e.g. 02:00-02:59 does not exist in Paris on the last Sunday of
  March): a wall time inside the gap fires once, shifted forward by the gap's length (02:30 ->
  03:30), as :pep:`495` maps such times. If that instant is also a regular fire time (an hourly
  job at :30 already fires at 03:30) it fires once, not twice.
* **Repeat** (fall back, e.g. 02:00-02:59 happens twice in Paris on the last Sunday of October):
  a job with a fixed hour (``30 2 * * *``) fires once, at the first occurrence. A job whose hour
  field is ``*`` (every minute, every 5 minutes, hourly) follows real time and fires in both
  occurrences, so "every 5 minutes" never pauses for an hour.

Every instant returned is a timezone-aware UTC datetime; the sequence is strictly increasing.

croniter (and the dateutil it brings) is imported on the first cron computation, not with this
module: a worker imports the scheduling middleware without paying for it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from taskqueue.errors import ConfigError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from croniter import croniter

#: The largest shift of a wall clock at a DST or zone change we look around for.
_MARGIN = timedelta(hours=3)

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ConfigError):
    """A cron expression, a schedule phrase, a time zone or a schedule definition is wrong."""


#: (name, largest step that can repeat) per field, seconds first: a step of ``*/N`` past the
#: field's span (``*/61`` minutes) would quietly mean "only at 0".
_FIELDS = (("second", 59), ("minute", 59), ("hour", 23), ("day-of-month", 30), ("month", 11),
           ("day-of-week", 6))


def normalize_cron(expr: str) -> str:
    """Validate a cron expression and return it with aliases expanded and spaces collapsed.

    Refused with a one-line :class:`ScheduleError`: a wrong number of fields, values croniter
    rejects, steps beyond a field's range (``*/61`` minutes) and dates that never occur
    (``0 0 31 2 *``, the 31st of February)."""
    return _normalize(" ".join(expr.split()), expr)


@lru_cache(maxsize=512)
def _normalize(text: str, expr: str) -> str:
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ScheduleError(f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
                            "(minute hour day month weekday), 6 (with leading seconds) or an "
                            f"alias ({', '.join(ALIASES)})")
    _check_steps(expr, fields)
    try:
        walls = _walls(text, datetime(2000, 1, 1))
    except (ValueError, KeyError) as exc:
        raise ScheduleError(f"invalid cron expression {expr!r}: {exc}") from None
    try:
        walls.get_next(datetime)
    except ValueError:  # croniter's CroniterBadDateError: no matching date in decades
        raise ScheduleError(f"cron expression {expr!r} never fires: no date matches its "
                            "day-of-month and month fields (e.g. the 31st of February)") from None
    return text


def _check_steps(expr: str, fields: list[str]) -> None:
    """Refuse ``/N`` steps larger than the field's span."""
    named = _FIELDS if len(fields) == 6 else _FIELDS[1:]
    for (name, largest), value in zip(named, fields, strict=True):
        for part in value.split(","):
            _, slash, step = part.partition("/")
            if slash and step.isdigit() and not 1 <= int(step) <= largest:
                raise ScheduleError(f"cron expression {expr!r}: step /{step} in the {name} "
                                    f"field is out of range (1-{largest})")


def _walls(expr: str, start: datetime) -> croniter:
    """croniter over wall-clock times from ``start`` (seconds first in 6-field expressions)."""
    from croniter import croniter

    return croniter(expr, start, second_at_beginning=True)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Paris``), or a ScheduleError."""
    from zoneinfo import ZoneInfoNotFoundError  # zoneinfo reads sysconfig: load when needed

    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as "
                            "'Europe/Paris', 'America/New_York' or 'UTC'") from None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def iter_fire_times(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Fire instants strictly after ``after`` (aware), in increasing order, without end."""
    expr, zinfo = normalize_cron(expr), zone(tz)
    follows_real_time = _hour_field(expr) == "*"
    start_wall = after.astimezone(zinfo).replace(tzinfo=None)
    if not (_steady(start_wall - _MARGIN, zinfo) and _steady(start_wall, zinfo)):
        # Near an offset change a wall time before ``after``'s may map to a later instant: in
        # the repeated hour, 02:00 (second time) comes after 02:45 (first time). Start early.
        start_wall -= _MARGIN
    walls = _walls(expr, start_wall)
    pending: list[datetime] = []
    last = after
    while True:
        wall = walls.get_next(datetime)
        first, *others = _instants(wall, zinfo, follows_real_time)
        for instant in (first, *others):
            heapq.heappush(pending, instant)
        settled = first if _steady(wall, zinfo) else first - _MARGIN
        while pending and pending[0] <= settled:  # nothing still to come is earlier
            instant = heapq.heappop(pending)
            if instant > last:
                last = instant
                yield instant


def next_fire_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire instants after ``after``."""
    times = iter_fire_times(expr, tz, after)
    return [next(times) for _ in range(count)]


def fire_times_between(expr: str, tz: str, after: datetime, until: datetime,
                       limit: int) -> list[datetime]:
    """Fire instants in ``(after, until]``, at most ``limit`` of them (the earliest)."""
    found: list[datetime] = []
    for instant in iter_fire_times(expr, tz, after):
        if instant > until or len(found) >= limit:
            break
        found.append(instant)
    return found


def latest_fire_times(expr: str, tz: str, after: datetime, until: datetime,
                      limit: int) -> list[datetime]:
    """The latest ``limit`` fire instants in ``(after, until]``, oldest first.

    Walks backwards from ``until``, so a long gap costs ``limit`` steps, not the whole span.
    """
    expr, zinfo = normalize_cron(expr), zone(tz)
    follows_real_time = _hour_field(expr) == "*"
    start_wall = until.astimezone(zinfo).replace(tzinfo=None) + timedelta(seconds=1)
    if not _steady(start_wall, zinfo):
        start_wall += _MARGIN
    walls = _walls(expr, start_wall)
    found: set[datetime] = set()
    while len(found) < limit + 2:  # two spare: DST can reorder neighbours
        try:
            wall = walls.get_prev(datetime)
        except Exception:  # noqa: BLE001 - croniter gives up before year 1 or so
            break
        instants = _instants(wall, zinfo, follows_real_time)
        if instants[-1] <= after - _MARGIN:
            break
        found.update(i for i in instants if after < i <= until)
    return sorted(found)[-limit:] if limit > 0 else []


def _instants(wall: datetime, zinfo: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The real instants (UTC) of a naive wall-clock time in ``zinfo``: one, or two in a repeat
    when ``both_folds``. A time in a gap maps forward by the gap's length (PEP 495, fold=0)."""
    early = wall.replace(tzinfo=zinfo, fold=0)
    late = wall.replace(tzinfo=zinfo, fold=1)
    first = early.astimezone(UTC)
    if both_folds and early.utcoffset() != late.utcoffset() and _exists(wall, zinfo):
        return sorted({first, late.astimezone(UTC)})
    return [first]


def _steady(wall: datetime, zinfo: ZoneInfo) -> bool:
    """True when the zone's offset does not change in the next few hours of wall time: then
    later wall times map to later instants, and whatever is already known can be emitted."""
    later = wall + _MARGIN
    return wall.replace(tzinfo=zinfo).utcoffset() == later.replace(tzinfo=zinfo).utcoffset()


def _exists(wall: datetime, zinfo: ZoneInfo) -> bool:
    """False for a wall-clock time skipped by a gap."""
    round_trip = wall.replace(tzinfo=zinfo).astimezone(UTC).astimezone(zinfo)
    return round_trip.replace(tzinfo=None) == wall


def _hour_field(expr: str) -> str:
    fields = expr.split(" ")
    return fields[2] if len(fields) == 6 else fields[1]


def describe_zone_offset(instant: datetime, tz: str) -> str:
    """``2024-03-31 03:30:00 CEST (+02:00)``: an instant as people in ``tz`` read it."""
    local = instant.astimezone(zone(tz))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({offset[:3]}:{offset[3:]})"
