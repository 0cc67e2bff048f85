"""Per-task metrics over time: throughput, failure rate and run/wait time p50/p95 per task name,
read from the statistics the recorders store and the rollup keeps (see :mod:`stats` and
:mod:`stats_rollup`).

The last hour reads the recorders' own minute entries; six hours read the rolled-up 5-minute
buckets, longer ranges the hour buckets, each plus the minutes not folded into them yet.
Buckets are then summed into the range's step; histograms merge bucket by bucket, so a
percentile over a step or the whole range is as good as one over a minute.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.observability.stats import (
    BUCKET_SECONDS,
    KIND,
    MINUTE_KIND,
    TaskStats,
    _parse,
    folded_through,
    unfolded,
)
from taskqueue.observability.stats_rollup import (
    DETAIL_KIND,
    DETAIL_RETENTION,
    DETAIL_SECONDS,
    HOUR,
    HOUR_KIND,
    HOUR_RETENTION,
)

#: label -> (seconds covered, seconds per point)
RANGES: dict[str, tuple[int, int]] = {"1h": (3600, 60), "6h": (6 * 3600, 300),
                                      "24h": (86400, 3600), "7d": (7 * 86400, 3600)}
Key = tuple[int, str, str]  # (bucket start, epoch seconds; queue; task)


def _add(into: dict[Key, TaskStats], owned: set[Key], key: Key, figures: TaskStats) -> None:
    """Sum ``figures`` into ``into[key]``. The first figures of a key are kept as they are
    (they may be shared, decoded once for many requests); a second one merges into a copy."""
    have = into.get(key)
    if have is None:
        into[key] = figures
        return
    if key not in owned:
        owned.add(key)
        have = into[key] = _copy(have)
    have.merge(figures)


def _copy(figures: TaskStats) -> TaskStats:
    out = TaskStats()
    out.merge(figures)
    return out


#: The queue and task name of the figures of every task together (see ``load``).
ALL = "\x00all"


def load(driver: Driver, start: float, step: int, every: bool = False
         ) -> dict[Key, TaskStats]:
    """Every stored figure since ``start``, summed per ``step`` seconds, queue and task (the
    figures may be shared with later calls: read them, never change them):
    hour buckets for steps of an hour, 5-minute buckets for steps of 5 minutes, folded
    minutes otherwise, and the recorders' minute entries not folded into those yet.
    ``every``: also the sum of all tasks per step, under the queue and task name ``ALL``."""
    kind, size = ((HOUR_KIND, HOUR) if step >= HOUR else
                  (DETAIL_KIND, DETAIL_SECONDS) if step >= DETAIL_SECONDS else
                  (MINUTE_KIND, BUCKET_SECONDS))
    recorded = driver.registry_list(KIND)  # before the folded kind: see ``stats.unfolded``
    rolled = [e for e in driver.registry_list(kind) if "hour" in e and "through" in e]
    out: dict[Key, TaskStats] = {}
    owned: set[Key] = set()
    for entry in rolled:
        for seconds, queue, task, figures in _cells(driver, kind, entry):
            if seconds + size > start and (every or queue != ALL):
                _add(out, owned, (seconds // step * step, queue, task), figures)
    fresh = unfolded(recorded, folded_through(rolled), since=start)
    for (minute, queue, task), figures in _parse(fresh).items():
        t = minute * BUCKET_SECONDS // step * step
        _add(out, owned, (t, queue, task), figures)
        if every:
            _add(out, owned, (t, ALL, ALL), figures)
    return out


Cells = list[tuple[int, str, str, TaskStats]]
#: Decoded folded entries per store, by (kind, hour, through): an entry whose ``through`` has
#: not moved holds the same figures, so a reader decodes each hour once, not at every request.
_DECODED: weakref.WeakKeyDictionary[Driver, dict[tuple[str, int, int], Cells]] = \
    weakref.WeakKeyDictionary()
_DECODED_LOCK = threading.Lock()
#: Decoded entries kept per store (8 days of hours, 6 hours of 5-minute buckets and more).
DECODED_MAX = 512


def _cells(driver: Driver, kind: str, entry: Mapping[str, Any]) -> Cells:
    hour, through = int(entry["hour"]), int(entry["through"])
    with _DECODED_LOCK:
        try:
            cache = _DECODED.setdefault(driver, {})
        except TypeError:  # a store object that cannot be weakly referenced: no caching
            cache = {}
        found = cache.get((kind, hour, through))
    if found is not None:
        return found
    buckets = ([(hour * HOUR, entry["queues"])] if kind == HOUR_KIND else
               [(int(m) * BUCKET_SECONDS, q) for m, q in entry["buckets"].items()])
    cells: Cells = []
    for seconds, queues in buckets:
        together = TaskStats()
        for queue, tasks in queues.items():
            for task, raw in tasks.items():
                figures = TaskStats.from_json(raw)
                together.merge(figures)
                cells.append((seconds, str(queue), str(task), figures))
        cells.append((seconds, ALL, ALL, together))
    with _DECODED_LOCK:
        for key in [k for k in cache if k[:2] == (kind, hour)]:
            del cache[key]  # the same hour folded up to an earlier minute
        while len(cache) >= DECODED_MAX:
            del cache[next(iter(cache))]
        cache[(kind, hour, through)] = cells
    return cells


_EMPTY_POINT: dict[str, Any] = {"completed": 0, "failed": 0, "retried": 0,
                                "failure_rate": None, "run_p50": None, "run_p95": None}
#: A point's figures by the id of the (finished, never changed again) figures they come from,
#: the figures kept with them so the id stays theirs: hours decoded once are summarised once.
_POINTS: dict[int, tuple[TaskStats, dict[str, Any]]] = {}
POINTS_MAX = 50_000


def _point(t: int, figures: TaskStats | None) -> dict[str, Any]:
    if figures is None:
        return {"t": t, **_EMPTY_POINT}
    known = _POINTS.get(id(figures))
    if known is not None and known[0] is figures:
        return {"t": t, **known[1]}
    done, failed = figures.counts.get("completed", 0), figures.counts.get("failed", 0)
    p50, p95 = figures.run.quantiles((0.5, 0.95))
    point = {"completed": done, "failed": failed, "retried": figures.counts.get("retried", 0),
             "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
             "run_p50": p50, "run_p95": p95}
    with _DECODED_LOCK:
        while len(_POINTS) >= POINTS_MAX:
            del _POINTS[next(iter(_POINTS))]
        _POINTS[id(figures)] = (figures, point)
    return {"t": t, **point}


def _task(queue: str, task: str, points: dict[int, TaskStats], steps: range,
          minutes: float) -> dict[str, Any]:
    total = TaskStats()
    for figures in points.values():
        total.merge(figures)
    done, failed = total.counts.get("completed", 0), total.counts.get("failed", 0)
    return {"queue": queue, "name": task,
            **{k: total.counts.get(k, 0) for k in ("enqueued", "completed", "failed",
                                                    "retried", "cancelled", "lost")},
            "throughput_per_min": round((done + failed) / minutes, 3),
            "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
            "run_time": total.run.summary(), "wait_time": total.wait.summary(),
            "series": [_point(t, points.get(t)) for t in steps]}


def task_metrics(driver: Driver, window: str = "24h", *, queue: str | None = None,
                 name: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Per-task figures over ``window`` (one of :data:`RANGES`), with a series per step, and
    ``all``: the same over every task shown (percentiles from the merged histograms)."""
    if window not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    seconds, step = RANGES[window]
    now = time.time() if now is None else now
    last = int(now // step) * step
    first = last - (seconds // step - 1) * step
    grouped: dict[tuple[str, str], dict[int, TaskStats]] = {}
    unfiltered = queue is None and name is None
    every: dict[int, TaskStats] = {}
    for (t, q, task), figures in load(driver, first, step, every=unfiltered).items():
        if t < first:
            continue
        if q == ALL:
            every[t] = figures
        elif (queue is None or q == queue) and (name is None or task == name):
            grouped.setdefault((q, task), {})[t] = figures
    minutes = max(now - first, 60.0) / 60
    steps = range(first, last + step, step)
    tasks = [_task(q, task, points, steps, minutes)
             for (q, task), points in grouped.items()]
    tasks.sort(key=lambda r: (-(r["completed"] + r["failed"]), r["queue"], r["name"]))
    if not unfiltered:  # the sums kept per bucket cover every task: add the ones shown
        for points in grouped.values():
            for t, figures in points.items():
                every.setdefault(t, TaskStats()).merge(figures)
    return {"range": window, "step": step, "from": first, "to": now, "tasks": tasks,
            "all": _task("*", "*", every, steps, minutes),
            "ranges": list(RANGES),
            "retention": {"minutes_seconds": 3600.0, "five_minutes_seconds": DETAIL_RETENTION,
                          "hours_seconds": HOUR_RETENTION}}
