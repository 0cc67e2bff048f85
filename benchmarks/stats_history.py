"""Micro-benchmark of the per-task statistics history (folding and reading), on SQLite.

    PYTHONPATH=src python -m benchmarks.stats_history [--processes 10] [--tasks 40] [--repeat 5]

The store holds 7 days of hour buckets and 6 hours of 5-minute buckets (written directly, as
the rollup writes them) and an hour of minutes from ``--processes`` recorders, each with
``--tasks`` (queue, task) pairs a minute. Timed, as medians of ``--repeat`` runs (CPU and wall):

* full fold: the first fold of that hour of minutes (a process that just took the lock);
* no-op fold: a fold with nothing closed (the running minutes of every process stored);
* steady fold: every process adds a minute, then the fold of the minute that closed (the
  once-a-minute cost in the lock holder; ``--processes 2 --tasks 10`` for a small site);
* reads: ``task_metrics`` over 1h/6h/24h/7d (``/api/tasks/metrics``) and ``History.load``
  (the dashboard overview, ``QueueManager.stats()``);
* ``on_event``: the per-job recording cost.

Run it with an older ``src/`` on PYTHONPATH for a before/after comparison: it uses only what
both keep (recorders, ``rollup_if_leader`` or a ``Rollup`` folder, the readers).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskqueue.drivers import open_driver
from taskqueue.drivers.base import Driver
from taskqueue.observability import events as ev
from taskqueue.observability import stats_rollup
from taskqueue.observability.stats import History, StatsRecorder, TaskStats
from taskqueue.observability.stats_tasks import task_metrics

DAY = 86400


def cells(tasks: int, scale: int = 1) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for i in range(tasks):
        figures = TaskStats({"completed": 50 * scale, "failed": scale, "enqueued": 51 * scale})
        for j in range(12):
            figures.run.add(0.001 * (j + 1) * (i + 1))
            figures.wait.add(0.01 * (j + 1))
        out.setdefault(f"q{i % 4}", {})[f"app.task{i}"] = figures.to_json()
    return out


def record_minute(recorder: StatsRecorder, minute: int, tasks: int) -> None:
    at = minute * 60 + 1.0
    for i in range(tasks):
        queue, name = f"q{i % 4}", f"app.task{i}"
        recorder.on_event(ev.Event(ev.JOB_STARTED, "j", name, queue, attempt=2, at=at,
                                   fields={"ready_at": at - 0.05}))
        recorder.on_event(ev.Event(ev.JOB_COMPLETED, "j", name, queue, attempt=1,
                                   duration=0.01 * (i + 1), at=at + 0.5))


def fill_history(driver: Driver, before_minute: int, tasks: int) -> None:
    """Hour entries for 7 days and 5-minute entries for 6 hours, all before ``before_minute``."""
    last_hour = before_minute * 60 // 3600 - 1
    hourly = cells(tasks, scale=60)
    for hour in range(last_hour - 7 * 24, last_hour + 1):
        driver.registry_put(stats_rollup.HOUR_KIND, str(hour),
                            {"v": 1, "hour": hour, "through": (hour + 1) * 60 - 1,
                             "queues": hourly}, ttl_seconds=8 * DAY)
    five = cells(tasks, scale=5)
    for hour in range(last_hour - 5, last_hour + 1):
        buckets = {str(hour * 60 + k * 5): five for k in range(12)}
        driver.registry_put(stats_rollup.DETAIL_KIND, str(hour),
                            {"v": 1, "hour": hour, "through": (hour + 1) * 60 - 1,
                             "buckets": buckets}, ttl_seconds=6 * 3600)


def timed(fn: Callable[[], Any], repeat: int,
          before: Callable[[], Any] | None = None) -> tuple[float, float]:
    """Median (CPU ms, wall ms) of ``repeat`` calls (``before`` runs untimed before each)."""
    cpu, wall = [], []
    for _ in range(repeat):
        if before is not None:
            before()
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def folder(driver: Driver) -> Callable[[float], Any]:
    """A fold in the lock holder: the new ``Rollup`` (kept between folds) where it exists."""
    made = getattr(stats_rollup, "Rollup", None)
    if made is not None:
        kept = made(driver, "bench")
        return lambda now: kept.if_leader(now)
    return lambda now: stats_rollup.rollup_if_leader(driver, "bench", now)


def run(processes: int, tasks: int, repeat: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        driver = open_driver(f"sqlite:///{Path(tmp) / 'q.db'}")
        base = int(time.time() // 60) - 8 - repeat  # minutes base..: ended, in real time
        fill_history(driver, base - 60, tasks)
        recorders = [StatsRecorder(driver, flush_interval=3600, retention=3 * 3600)
                     for _ in range(processes)]
        for minute in range(base - 60, base + 2):  # the last two stay open at the first fold
            for recorder in recorders:
                record_minute(recorder, minute, tasks)
                recorder.flush()
        fold = folder(driver)
        out["full fold (an hour of minutes, new leader)"] = timed(
            lambda: fold((base + 1) * 60 + 1), 1)
        out["no-op fold (nothing closed)"] = timed(lambda: fold((base + 1) * 60 + 1), repeat)
        minutes = iter(range(base + 2, base + 2 + repeat))
        current = [base + 1]

        def next_minute() -> None:  # every process records a minute; one more closes
            current[0] = next(minutes)
            for recorder in recorders:
                record_minute(recorder, current[0], tasks)
                recorder.flush()

        out["steady fold (one new minute of every process)"] = timed(
            lambda: fold(current[0] * 60 + 1), repeat, before=next_minute)
        for window in ("1h", "6h", "24h", "7d"):
            out[f"task_metrics {window}"] = timed(lambda w=window: task_metrics(driver, w),
                                                  repeat)
        out["History.load + figures (overview)"] = timed(
            lambda: History.load(driver).figures(None), repeat)
        recorder = recorders[0]
        event = ev.Event(ev.JOB_COMPLETED, "j", "app.task1", "q1", attempt=1, duration=0.01)
        n = 20000
        per = timed(lambda: [recorder.on_event(event) for _ in range(n)], repeat)
        out[f"on_event x {n}"] = per
        for recorder in recorders:
            recorder.close()
        driver.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stats_history")
    p.add_argument("--processes", type=int, default=10)
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    for label, (cpu, wall) in run(args.processes, args.tasks, args.repeat).items():
        print(f"{label:55s} cpu {cpu:9.1f} ms   wall {wall:9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
