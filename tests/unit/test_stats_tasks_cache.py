"""``task_metrics`` keeps decoded hours and the sums of the settled ones between requests:
whatever the store goes through (hours folded again with a later ``through``, new hours,
entries removed or expired, minutes not folded yet, filters), its answer equals a plain
recomputation from everything stored (against a real SQLite store)."""

from __future__ import annotations

import random
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskqueue.drivers import open_driver
from taskqueue.drivers.base import Driver
from taskqueue.observability.stats import KIND, TaskStats, _parse, unfolded
from taskqueue.observability.stats_rollup import (
    DETAIL_KIND,
    HOUR_KIND,
    MINUTE_KIND,
    STATE_KIND,
)
from taskqueue.observability.stats_tasks import RANGES, task_metrics

HOUR0 = 1_800_000_000 // 3600 * 3600
ALL = "\x00all"
KINDS = {HOUR_KIND: 60, DETAIL_KIND: 5, MINUTE_KIND: 1}  # minutes per bucket


def figures(rng: random.Random) -> dict[str, Any]:
    out = TaskStats({"completed": rng.randrange(0, 50), "failed": rng.randrange(0, 5),
                     "retried": rng.randrange(0, 3)})
    for _ in range(rng.randrange(0, 6)):
        out.run.add(rng.random() * rng.choice((0.01, 1.0, 30.0)))
        out.wait.add(rng.random())
    return out.to_json()


def queues(rng: random.Random) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for queue in rng.sample(["q0", "q1", "q2"], rng.randrange(1, 4)):
        for task in rng.sample(["a", "b", "c"], rng.randrange(1, 4)):
            out.setdefault(queue, {})[task] = figures(rng)
    return out


def put_folded(driver: Driver, kind: str, hour: int, through: int, rng: random.Random) -> None:
    size = KINDS[kind]
    if kind == HOUR_KIND:
        body: dict[str, Any] = {"queues": queues(rng)}
    else:
        body = {"buckets": {str(m): queues(rng)
                            for m in range(hour * 60, through + 1, size) if rng.random() < 0.8}}
    driver.registry_put(kind, str(hour), {"v": 1, "hour": hour, "through": through, **body},
                        ttl_seconds=30 * 86400)


def new_token(driver: Driver) -> None:
    driver.registry_put(STATE_KIND, "state", {"owner": "t", "seq": 1,
                                              "token": uuid.uuid4().hex}, 30 * 86400)


def reference(driver: Driver, window: str, queue: str | None, name: str | None,
              now: float) -> dict[str, Any]:
    """``task_metrics`` computed plainly: every entry decoded, every sum made, nothing kept."""
    seconds, step = RANGES[window]
    last = int(now // step) * step
    first = last - (seconds // step - 1) * step
    kind, size = ((HOUR_KIND, 3600) if step >= 3600 else
                  (DETAIL_KIND, 300) if step >= 300 else (MINUTE_KIND, 60))
    every = queue is None and name is None
    recorded = driver.registry_list(KIND)
    rolled = sorted((e for e in driver.registry_list(kind) if "hour" in e and "through" in e),
                    key=lambda e: int(e["hour"]))
    out: dict[tuple[int, str, str], TaskStats] = {}

    def add(key: tuple[int, str, str], stats: TaskStats) -> None:
        out.setdefault(key, TaskStats()).merge(stats)

    for entry in rolled:
        buckets = ([(int(entry["hour"]) * 3600, entry["queues"])] if kind == HOUR_KIND else
                   [(int(m) * 60, q) for m, q in entry["buckets"].items()])
        for start, qs in buckets:
            together = TaskStats()
            cells = []
            for q, tasks in qs.items():
                for task, raw in tasks.items():
                    stats = TaskStats.from_json(raw)
                    together.merge(stats)
                    cells.append((q, task, stats))
            cells.append((ALL, ALL, together))
            for q, task, stats in cells:
                if start + size > first and (every or q != ALL):
                    add((start // step * step, q, task), stats)
    through = {int(e["hour"]): int(e["through"]) for e in rolled}
    for (minute, q, task), stats in _parse(unfolded(recorded, through, since=first)).items():
        t = minute * 60 // step * step
        add((t, q, task), stats)
        if every:
            add((t, ALL, ALL), stats)
    grouped: dict[tuple[str, str], dict[int, TaskStats]] = {}
    all_points: dict[int, TaskStats] = {}
    for (t, q, task), stats in out.items():
        if t < first:
            continue
        if q == ALL:
            all_points[t] = stats
        elif (queue is None or q == queue) and (name is None or task == name):
            grouped.setdefault((q, task), {})[t] = stats
    minutes = max(now - first, 60.0) / 60
    steps = range(first, last + step, step)

    def point(t: int, stats: TaskStats | None) -> dict[str, Any]:
        if stats is None:
            return {"t": t, "completed": 0, "failed": 0, "retried": 0, "failure_rate": None,
                    "run_p50": None, "run_p95": None}
        done, failed = stats.counts.get("completed", 0), stats.counts.get("failed", 0)
        p50, p95 = stats.run.quantiles((0.5, 0.95))
        return {"t": t, "completed": done, "failed": failed,
                "retried": stats.counts.get("retried", 0),
                "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
                "run_p50": p50, "run_p95": p95}

    def row(q: str, task: str, points: dict[int, TaskStats]) -> dict[str, Any]:
        total = TaskStats()
        for stats in points.values():
            total.merge(stats)
        done, failed = total.counts.get("completed", 0), total.counts.get("failed", 0)
        return {"queue": q, "name": task,
                **{k: total.counts.get(k, 0) for k in ("enqueued", "completed", "failed",
                                                        "retried", "cancelled", "lost")},
                "throughput_per_min": round((done + failed) / minutes, 3),
                "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
                "run_time": total.run.summary(), "wait_time": total.wait.summary(),
                "series": [point(t, points.get(t)) for t in steps]}

    tasks = sorted((row(q, task, points) for (q, task), points in grouped.items()),
                   key=lambda r: (-(r["completed"] + r["failed"]), r["queue"], r["name"]))
    if not every:
        for points in grouped.values():
            for t, stats in points.items():
                all_points.setdefault(t, TaskStats()).merge(stats)
    return {"tasks": tasks, "all": row("*", "*", all_points)}


OPS = st.sampled_from(["refold", "new hour", "minute", "remove", "expire old", "later",
                       "drop token"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), ops=st.lists(OPS, min_size=1, max_size=6))
def test_cached_metrics_equal_a_plain_recomputation(seed: int, ops: list[str]) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        driver = open_driver(f"sqlite:///{Path(tmp) / 'q.db'}")
        try:
            run_ops(driver, rng, ops)
        finally:
            driver.close()


def run_ops(driver: Driver, rng: random.Random, ops: list[str]) -> None:
    now = float(HOUR0 + 200 * 3600 + rng.randrange(3600))
    newest = int(now // 3600)

    def hour_end(hour: int) -> int:
        return (hour + 1) * 60 - 1

    def fold(kind: str, hour: int) -> None:
        """Fold ``hour`` (again): a later ``through`` than stored, as the rollup does (the
        same (hour, through) always holds the same figures)."""
        done = {int(e["hour"]): int(e["through"]) for e in driver.registry_list(kind)}
        low = max(hour * 60, done.get(hour, -1) + 1)
        last = min(hour_end(hour), int(now // 60) - 2)
        if low <= last:
            put_folded(driver, kind, hour, rng.randrange(low, last + 1), rng)

    for hour in range(newest - 8 * 24, newest + 1):  # 8 days, some hours missing
        if rng.random() < 0.7:
            fold(HOUR_KIND, hour)
    for hour in range(newest - 6, newest + 1):
        for kind in (DETAIL_KIND, MINUTE_KIND):
            fold(kind, hour)
    new_token(driver)

    def recorder_minute() -> None:
        minute = int(now // 60) - rng.randrange(0, 90)
        driver.registry_put(KIND, f"{minute}:{rng.randrange(3)}",
                            {"minute": minute, "source": "s", "queues": queues(rng)}, 86400)

    for _ in range(rng.randrange(0, 4)):
        recorder_minute()
    check(driver, now, rng)
    for op in ops:
        kind = rng.choice(list(KINDS))
        hours = sorted(int(e["hour"]) for e in driver.registry_list(kind))
        if op == "refold" and hours:  # a later ``through`` for some hour, often the newest
            fold(kind, rng.choice([hours[-1], rng.choice(hours)]))
            new_token(driver)
        elif op == "new hour":
            now += 3600
            newest = int(now // 3600)
            for k in KINDS:
                fold(k, newest - 1)
                fold(k, newest)
            new_token(driver)
        elif op == "minute":
            recorder_minute()
        elif op == "remove" and hours:
            driver.registry_remove(kind, str(rng.choice(hours)))
            new_token(driver)
        elif op == "expire old":  # gone from the store, but older than every window
            for hour in hours:
                if hour * 3600 < now - 7 * 86400 - 3600:
                    driver.registry_remove(kind, str(hour))
        elif op == "later":  # time moves on, nothing folded
            now += rng.choice((60, 300, 3600))
        elif op == "drop token":
            driver.registry_remove(STATE_KIND, "state")
            fold(rng.choice(list(KINDS)), newest)
        check(driver, now, rng)


def check(driver: Driver, now: float, rng: random.Random) -> None:
    for window in RANGES:
        queue, name = rng.choice(((None, None), (None, None), ("q1", None), (None, "b"),
                                  ("q0", "a")))
        want = reference(driver, window, queue, name, now)
        for _ in range(2):  # the second from what the first kept
            got = task_metrics(driver, window, queue=queue, name=name, now=now)
            assert {"tasks": got["tasks"], "all": got["all"]} == want, (window, queue, name)
