"""The overview's figures: counts, throughput, latency percentiles and chart series.

Counts and per-queue figures come from ``QueueManager.stats()``. Rates and wait/run-time
percentiles come from the per-minute statistics the workers store
(:mod:`taskqueue.observability.stats`); when none are stored yet (no worker ran in the last
hour, or statistics are off) they are derived instead: throughput from the store's
``completed_last_minute`` and percentiles from a sample of the latest completed jobs
(``started_at - created_at`` and ``completed_at - started_at``).

Charts: the last hour is read from the stored minutes; the last day from points the dashboard
itself keeps in the registry (kind ``dashboard_minute``, one per minute, 25 h TTL), written
from those minutes as they complete, so they survive a dashboard restart and are shared by
every dashboard instance.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from taskqueue.drivers.base import Driver, JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager
from taskqueue.observability.stats import BUCKET_SECONDS, History

SERIES_KIND = "dashboard_minute"
SERIES_TTL = 25 * 3600.0
SAMPLE = 200
COUNTED = ("completed", "failed", "enqueued")


def snapshot(manager: QueueManager, history: History | None = None) -> dict[str, Any]:
    stats = manager.stats()
    workers = manager.driver.registry_list("worker")
    paused = set(manager.paused_queues())
    totals = stats["totals"]
    windows = totals.get("history") or {}
    latency = _latency(windows, manager)
    queues = []
    for name, q in stats["queues"].items():
        one_minute = (q.get("history") or {}).get("1m") or {}
        queues.append({"name": name, **{s.value: q[s.value] for s in State},
                       "paused": name in paused, "oldest_pending_age": q.get("oldest_pending_age"),
                       "completed_per_min": one_minute.get("completed_per_min",
                                                           q.get("completed_last_minute")),
                       "failed_per_min": one_minute.get("failed_per_min")})
    for name in sorted(paused - set(stats["queues"])):
        queues.append({"name": name, **{s.value: 0 for s in State}, "paused": True})
    return {
        "generated_at": time.time(), "backend": stats["backend"],
        "totals": {s.value: totals[s.value] for s in State},
        "throughput": _throughput(windows, totals),
        "windows": {k: {f: v.get(f) for f in ("completed", "failed", "enqueued", "retried",
                                                "failure_rate", "completed_per_min")}
                    for k, v in windows.items()},
        "latency": latency,
        "oldest_pending_age": totals.get("oldest_pending_age"),
        "queues": queues,
        "workers": {"count": len(workers),
                    "busy": sum(1 for w in workers if w.get("current_jobs"))},
        "series": minute_series(history or History.load(manager.driver), minutes=60),
    }


def _throughput(windows: dict[str, Any], totals: dict[str, Any]) -> dict[str, Any]:
    one = windows.get("1m") or {}
    if one.get("completed") or one.get("failed") or one.get("enqueued"):
        return {"completed_per_min": one["completed_per_min"],
                "failed_per_min": one["failed_per_min"],
                "enqueued_per_min": one["enqueued_per_min"], "source": "stats"}
    return {"completed_per_min": totals.get("completed_last_minute", 0),
            "failed_per_min": None, "enqueued_per_min": None, "source": "store"}


def _latency(windows: dict[str, Any], manager: QueueManager) -> dict[str, Any]:
    for label in ("5m", "1h"):
        figures = windows.get(label) or {}
        run, wait = figures.get("run_time") or {}, figures.get("wait_time") or {}
        if run.get("count") or wait.get("count"):
            return {"window": label, "source": "stats", "run": _pcts(run), "wait": _pcts(wait)}
    recent = manager.search(JobFilter(states=(State.COMPLETED,), limit=SAMPLE))
    return {"window": f"last {len(recent)} completed", "source": "sample",
            **sample_latency(recent)}


def _pcts(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in ("count", "p50", "p95", "p99")}


def sample_latency(records: Sequence[JobRecord]) -> dict[str, Any]:
    """Run and wait percentiles of finished jobs, from their timestamps."""
    run = [(r.completed_at - r.started_at).total_seconds() for r in records
           if r.completed_at and r.started_at]
    wait = [(r.started_at - r.created_at).total_seconds() for r in records if r.started_at]
    return {"run": percentiles(run), "wait": percentiles(wait)}


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    data = sorted(max(0.0, v) for v in values)
    if not data:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    if len(data) == 1:
        return {"count": 1, "p50": data[0], "p95": data[0], "p99": data[0]}
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {"count": len(data), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def minute_series(history: History, minutes: int = 60) -> list[dict[str, Any]]:
    """Per-minute counts (all queues) for the last ``minutes`` minutes, oldest first."""
    current = int(history.now // BUCKET_SECONDS)
    points = {m: dict.fromkeys(COUNTED, 0) for m in range(current - minutes + 1, current + 1)}
    for (minute, _, _), figures in history.cells.items():
        point = points.get(minute)
        if point is not None:
            for key in COUNTED:
                point[key] += figures.counts.get(key, 0)
    return [{"t": m * BUCKET_SECONDS, **p} for m, p in sorted(points.items())]


class DaySeries:
    """Per-minute points kept for a day in the registry, written as minutes complete."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._written: set[int] = set()
        self._depth: dict[int, int] = {}
        self._lock = threading.Lock()

    def record(self, history: History, depth: int) -> None:
        """Remember the waiting-job count of this minute; store the minutes that completed."""
        current = int(history.now // BUCKET_SECONDS)
        with self._lock:
            self._depth[current] = max(depth, self._depth.get(current, 0))
            todo = [p for p in minute_series(history, 60)
                    if p["t"] // BUCKET_SECONDS < current
                    and p["t"] // BUCKET_SECONDS not in self._written]
            for point in todo:
                minute = int(point["t"] // BUCKET_SECONDS)
                self.driver.registry_put(SERIES_KIND, str(minute),
                                         {**point, "depth": self._depth.get(minute)},
                                         ttl_seconds=SERIES_TTL)
                self._written.add(minute)
            for old in [m for m in self._depth if m < current - 90]:
                del self._depth[old]

    def load(self, bucket_minutes: int = 15, now: float | None = None) -> list[dict[str, Any]]:
        """The last 24 hours in ``bucket_minutes`` buckets: counts summed, depth at its max."""
        now = time.time() if now is None else now
        width = bucket_minutes * BUCKET_SECONDS
        first = int((now - 24 * 3600) // width)
        buckets: dict[int, dict[str, Any]] = {
            b: {"t": b * width, **dict.fromkeys(COUNTED, 0), "depth": None}
            for b in range(first, int(now // width) + 1)}
        for entry in self.driver.registry_list(SERIES_KIND):
            bucket = buckets.get(int(float(entry.get("t", 0)) // width))
            if bucket is None:
                continue
            for key in COUNTED:
                bucket[key] += int(entry.get(key) or 0)
            depth = entry.get("depth")
            if isinstance(depth, int):
                bucket["depth"] = max(depth, bucket["depth"] or 0)
        return [buckets[b] for b in sorted(buckets)]
