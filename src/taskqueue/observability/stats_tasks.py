"""Per-task metrics over time: throughput, failure rate and run/wait time p50/p95 per task name,
read from the statistics the recorders store and the rollup keeps (see :mod:`stats` and
:mod:`stats_rollup`).

The last hour reads the recorders' own minute entries; six hours read the rolled-up 5-minute
buckets, longer ranges the hour buckets, each plus the minutes not folded into them yet.
Buckets are then summed into the range's step; histograms merge bucket by bucket, so a
percentile over a step or the whole range is as good as one over a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.observability.stats import BUCKET_SECONDS, KIND, TaskStats, _parse
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


def _add(into: dict[Key, TaskStats], key: Key, figures: TaskStats) -> None:
    into.setdefault(key, TaskStats()).merge(figures)


def _folded(entries: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    return {int(e["hour"]): e for e in entries if "hour" in e and "through" in e}


def load(driver: Driver, start: float, step: int) -> dict[Key, TaskStats]:
    """Every stored figure since ``start``, summed per ``step`` seconds, queue and task:
    hour buckets for steps of an hour, 5-minute buckets for steps of 5 minutes, and the
    recorders' minute entries not folded into those yet (all of them for 1-minute steps)."""
    kind, size = ((HOUR_KIND, HOUR) if step >= HOUR else
                  (DETAIL_KIND, DETAIL_SECONDS) if step >= DETAIL_SECONDS else (None, 0))
    rolled = _folded(driver.registry_list(kind)) if kind else {}
    out: dict[Key, TaskStats] = {}
    for hour, entry in rolled.items():
        buckets = ([(hour * HOUR, entry["queues"])] if kind == HOUR_KIND else
                   [(int(m) * BUCKET_SECONDS, q) for m, q in entry["buckets"].items()])
        for seconds, queues in buckets:
            if seconds + size > start:
                for queue, tasks in queues.items():
                    for task, raw in tasks.items():
                        _add(out, (int(seconds // step) * step, queue, task),
                             TaskStats.from_json(raw))
    fresh = [e for e in driver.registry_list(KIND)
             if isinstance(e.get("minute"), int) and (e["minute"] + 1) * BUCKET_SECONDS > start
             and _not_folded(e["minute"], rolled)]
    for (minute, queue, task), figures in _parse(fresh).items():
        _add(out, (minute * BUCKET_SECONDS // step * step, queue, task), figures)
    return out


def _not_folded(minute: int, rolled: Mapping[int, Mapping[str, Any]]) -> bool:
    into = rolled.get(minute * BUCKET_SECONDS // HOUR)
    return into is None or minute > int(into["through"])


def _point(t: int, figures: TaskStats | None) -> dict[str, Any]:
    figures = figures or TaskStats()
    done, failed = figures.counts.get("completed", 0), figures.counts.get("failed", 0)
    return {"t": t, "completed": done, "failed": failed,
            "retried": figures.counts.get("retried", 0),
            "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
            "run_p50": figures.run.quantile(0.5), "run_p95": figures.run.quantile(0.95)}


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
    for (t, q, task), figures in load(driver, first, step).items():
        if t >= first and (queue is None or q == queue) and (name is None or task == name):
            grouped.setdefault((q, task), {})[t] = figures
    minutes = max(now - first, 60.0) / 60
    steps = range(first, last + step, step)
    tasks = [_task(q, task, points, steps, minutes)
             for (q, task), points in grouped.items()]
    tasks.sort(key=lambda r: (-(r["completed"] + r["failed"]), r["queue"], r["name"]))
    every: dict[int, TaskStats] = {}
    for points in grouped.values():
        for t, figures in points.items():
            every.setdefault(t, TaskStats()).merge(figures)
    return {"range": window, "step": step, "from": first, "to": now, "tasks": tasks,
            "all": _task("*", "*", every, steps, minutes),
            "ranges": list(RANGES),
            "retention": {"minutes_seconds": 3600.0, "five_minutes_seconds": DETAIL_RETENTION,
                          "hours_seconds": HOUR_RETENTION}}
