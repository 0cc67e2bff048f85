"""The long history of the job statistics: closed minutes rolled up, merged across sources.

The recorders of :mod:`taskqueue.observability.stats` keep one entry per (minute, process) for
an hour: that is the last hour, minute by minute. Once a minute, one process at a time (a TTL
lock, ``stats:rollup``) folds the minutes that have closed into two kinds of registry entries,
one per hour, merged across processes::

    kind "stats-hour", key "<hour>", TTL 8 days:
        {"v": 1, "hour": 484354, "through": <last minute folded in>, "queues": {...}}
    kind "stats-5min", key "<hour>", TTL 6 hours after the hour's last write:
        {"v": 1, "hour": 484354, "through": ..., "buckets": {"<first minute>": {"<queue>": ...}}}

``queues`` has the shape of a minute entry's (counts and the two fixed-bucket histograms per
task), so hours merge like minutes do and percentiles come from the same buckets. ``through``
makes a fold idempotent: a minute is folded into an entry only if it is later than the
entry's ``through``, and both are written in one ``registry_put``. Storage is bounded however
long the store lives and however many workers come and go: at most ~200 hour entries and
7 minute-detail entries, each as large as the number of (queue, task) pairs, not of jobs.

Folding reads every minute entry but decodes only those not folded yet, so a fold with nothing
new costs the listing, not the parsing.

A minute counts as closed one full minute after it ended (recorders flush every few seconds).
A recorder that flushes a minute later than that (a store outage longer than a minute) still
shows in the live hour, but that late part is not folded into the long history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.observability.stats import BUCKET_SECONDS, KIND, TaskStats, _parse

log = logging.getLogger("taskqueue.stats")

HOUR_KIND = "stats-hour"
DETAIL_KIND = "stats-5min"
#: Seconds per bucket of the six-hour detail.
DETAIL_SECONDS = 300
LOCK = "stats:rollup"
HOUR = 3600
#: How long hourly buckets are kept (the issue asks for at least 7 days; one more for margin).
HOUR_RETENTION = 8 * 86400.0
#: How long the 5-minute buckets are kept (after their hour's last fold).
DETAIL_RETENTION = 6 * 3600.0
ROLLUP_INTERVAL = 60.0
CLOSE_LAG = 1  # minutes after its end before a minute is folded

Cells = dict[tuple[int, str, str], TaskStats]  # (minute or hour start minute, queue, task)


def closed_minute(now: float) -> int:
    """The last minute that is final at ``now``."""
    return int(now // BUCKET_SECONDS) - 1 - CLOSE_LAG


def _queues_json(cells: Mapping[tuple[str, str], TaskStats]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for (queue, task), figures in cells.items():
        out.setdefault(queue, {})[task] = figures.to_json()
    return out


def _queues_cells(raw: Mapping[str, Any]) -> dict[tuple[str, str], TaskStats]:
    return {(str(q), str(t)): TaskStats.from_json(figures)
            for q, tasks in raw.items() for t, figures in tasks.items()}


def rollup(driver: Driver, now: float | None = None) -> int:
    """Fold the closed minutes into the hour entries; return how many entries were written.
    Call it from one process at a time (see :func:`rollup_if_leader`)."""
    now = time.time() if now is None else now
    closed = closed_minute(now)
    totals = {int(e["hour"]): e for e in driver.registry_list(HOUR_KIND) if "hour" in e}
    details = {int(e["hour"]): e for e in driver.registry_list(DETAIL_KIND) if "hour" in e}
    fresh = [e for e in driver.registry_list(KIND)
             if _unfolded(e, closed, totals) or _unfolded(e, closed, details)]
    per_hour: dict[int, dict[int, Cells]] = {}
    for (minute, queue, task), figures in _parse(fresh).items():
        hours = per_hour.setdefault(minute * BUCKET_SECONDS // HOUR, {})
        hours.setdefault(minute, {})[(minute, queue, task)] = figures
    written = 0
    for hour, minutes in sorted(per_hour.items()):
        through = min(closed, (hour + 1) * HOUR // BUCKET_SECONDS - 1)
        written += _fold_total(driver, hour, minutes, totals.get(hour), through)
        written += _fold_detail(driver, hour, minutes, details.get(hour), through)
    return written


def _unfolded(entry: Mapping[str, Any], closed: int,
              folded: Mapping[int, Mapping[str, Any]]) -> bool:
    """Is this minute entry closed and not folded yet into ``folded`` (hour -> entry)?"""
    minute = entry.get("minute")
    if not isinstance(minute, int) or minute > closed:
        return False
    into = folded.get(minute * BUCKET_SECONDS // HOUR)
    return into is None or minute > int(into.get("through", -1))


def _fold_total(driver: Driver, hour: int, minutes: dict[int, Cells],
                entry: Mapping[str, Any] | None, through: int) -> int:
    done = int(entry["through"]) if entry else -1
    fresh = [cells for minute, cells in minutes.items() if minute > done]
    if not fresh:
        return 0
    merged = _queues_cells(entry["queues"]) if entry else {}
    for cells in fresh:
        for (_, queue, task), figures in cells.items():
            merged.setdefault((queue, task), TaskStats()).merge(figures)
    driver.registry_put(HOUR_KIND, str(hour), {"v": 1, "hour": hour, "through": through,
                                               "queues": _queues_json(merged)},
                        ttl_seconds=HOUR_RETENTION)
    return 1


def _fold_detail(driver: Driver, hour: int, minutes: dict[int, Cells],
                 entry: Mapping[str, Any] | None, through: int) -> int:
    done = int(entry["through"]) if entry else -1
    fresh = {minute: cells for minute, cells in minutes.items() if minute > done}
    if not fresh:
        return 0
    kept: dict[str, Any] = dict(entry["buckets"]) if entry else {}
    per_bucket = DETAIL_SECONDS // BUCKET_SECONDS
    changed: dict[str, dict[tuple[str, str], TaskStats]] = {}
    for minute, cells in fresh.items():
        key = str(minute // per_bucket * per_bucket)
        if key not in changed:
            changed[key] = _queues_cells(kept.get(key, {}))
        for (_, queue, task), figures in cells.items():
            changed[key].setdefault((queue, task), TaskStats()).merge(figures)
    kept.update({key: _queues_json(cells) for key, cells in changed.items()})
    driver.registry_put(DETAIL_KIND, str(hour), {"v": 1, "hour": hour, "through": through,
                                                 "buckets": kept},
                        ttl_seconds=DETAIL_RETENTION)
    return 1


def rollup_if_leader(driver: Driver, owner: str, now: float | None = None) -> int | None:
    """Take (or renew) the rollup lock and fold; None when another process holds it."""
    if not driver.lock_acquire(LOCK, owner, 3 * ROLLUP_INTERVAL):
        return None
    return rollup(driver, now)
