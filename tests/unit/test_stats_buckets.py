"""The stored statistics' arithmetic: buckets, percentiles, windows, merging of sources."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from taskqueue.jobs.ids import uuid7
from taskqueue.observability import events as ev
from taskqueue.observability.stats import (
    BOUNDS,
    Histogram,
    History,
    StatsRecorder,
    TaskStats,
    bucket_index,
    id_time,
    wait_seconds,
)


def test_bounds_grow_by_at_most_one_and_a_half() -> None:
    assert BOUNDS[0] == 0.001 and BOUNDS[-1] >= 3600
    assert all(b / a <= 1.5 + 1e-9 for a, b in zip(BOUNDS, BOUNDS[1:], strict=False))
    assert bucket_index(0.0) == 0 and bucket_index(0.001) == 0
    assert bucket_index(0.0011) == 1 and bucket_index(10**6) == len(BOUNDS)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantiles_are_within_one_bucket(q: float) -> None:
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-2, 1.2) for _ in range(5000))
    hist = Histogram()
    for v in values:
        hist.add(v)
    exact = values[int(q * len(values)) - 1]
    estimate = hist.quantile(q)
    assert estimate is not None and exact / 1.5 <= estimate <= exact * 1.5


def test_quantiles_are_clamped_to_what_was_seen() -> None:
    hist = Histogram()
    for v in (0.3, 0.301, 0.302):
        hist.add(v)
    assert hist.quantile(0.99) == pytest.approx(0.302)
    assert hist.quantile(0.01) == pytest.approx(0.3, abs=0.01)
    assert Histogram().quantile(0.5) is None
    assert Histogram().summary()["avg"] is None


def test_histogram_round_trips_through_json() -> None:
    hist = Histogram()
    for v in (0.002, 0.2, 20.0, 99999.0):
        hist.add(v)
    again = Histogram.from_json(hist.to_json())
    assert again.buckets == hist.buckets and again.high == hist.high
    assert again.total == pytest.approx(hist.total) and again.low == hist.low


def entry(minute: int, source: str, queue: str, task: str, **counts: int) -> dict[str, object]:
    return {"v": 1, "minute": minute, "source": source,
            "queues": {queue: {task: TaskStats(dict(counts)).to_json()}}}


def test_windows_weigh_the_bucket_on_their_edge() -> None:
    now = 1000 * 60 + 30.0          # 30 s into minute 1000
    history = History.from_entries([
        entry(1000, "a", "q", "t", completed=10),   # current minute: fully inside 1m
        entry(999, "a", "q", "t", completed=60),    # half inside the last minute
        entry(996, "b", "q", "t", completed=5, failed=5),
        entry(900, "b", "q", "t", completed=1000),  # outside even the hour
    ], now=now)
    one, five, hour = (history.figures("q")[k] for k in ("1m", "5m", "1h"))
    assert one["completed"] == 40 and one["completed_per_min"] == pytest.approx(40)
    assert five["completed"] == 75 and five["failed"] == 5
    assert five["failure_rate"] == pytest.approx(5 / 80)
    assert hour["completed"] == 75
    assert history.figures("other")["1h"]["completed"] == 0
    assert history.figures("other")["1h"]["success_rate"] is None


def test_sources_and_tasks_are_merged() -> None:
    history = History.from_entries([entry(5, "a", "q", "t1", completed=2),
                                    entry(5, "b", "q", "t1", completed=3),
                                    entry(5, "b", "q", "t2", failed=1),
                                    {"garbage": True}], now=5 * 60 + 1)
    assert history.figures(None)["1m"]["completed"] == 5
    totals = history.task_totals()
    assert totals[("q", "t1")].counts == {"completed": 5}
    assert totals[("q", "t2")].counts == {"failed": 1}


def test_wait_time_comes_from_the_uuid7_id_or_ready_at() -> None:
    job_id = uuid7()
    created = id_time(job_id)
    assert created is not None
    first = ev.Event(ev.JOB_STARTED, job_id=job_id, attempt=1, queue="q", at=created + 2.5)
    assert wait_seconds(first) == pytest.approx(2.5, abs=0.002)
    retry = ev.Event(ev.JOB_STARTED, job_id=job_id, attempt=2, queue="q", at=created + 9)
    assert wait_seconds(retry) is None
    due = ev.Event(ev.JOB_STARTED, job_id=job_id, attempt=2, queue="q", at=created + 9,
                   fields={"ready_at": created + 8})
    assert wait_seconds(due) == pytest.approx(1.0)
    assert id_time("not-a-uuid") is None


class Recording:
    """A stand-in store for the recorder: only the registry verb it uses."""

    name = "memory"

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, object]] = {}
        self.fail = False

    def registry_put(self, kind: str, key: str, data: dict[str, object],
                     ttl_seconds: float) -> None:
        if self.fail:
            raise OSError("store down")
        self.entries[f"{kind}/{key}"] = data

    def before_close(self, callback: object) -> None:
        pass


def test_recorder_keeps_data_until_a_flush_succeeds() -> None:
    store = Recording()
    recorder = StatsRecorder(store, flush_interval=3600)  # type: ignore[arg-type]
    recorder.on_event(ev.Event(ev.JOB_COMPLETED, job_id="x", name="t", queue="q",
                               duration=0.5))
    recorder.on_event(ev.Event(ev.JOB_SNOOZED, job_id="x", name="t", queue="q"))  # not counted
    store.fail = True
    assert recorder.flush() == 0
    store.fail = False
    assert recorder.flush() == 1
    assert recorder.flush() == 0  # nothing changed since
    (data,) = store.entries.values()
    cell = data["queues"]["q"]["t"]  # type: ignore[index]
    assert cell["counts"] == {"completed": 1}
    recorder.close()


def test_many_adds_at_once_equal_the_adds_one_by_one() -> None:
    values = [0.0004, 0.0011, 0.2, 0.2, 3.0, 99999.0, -0.5]
    one_by_one, at_once = Histogram(), Histogram()
    for v in values:
        one_by_one.add(v)
    at_once.add_many(values)
    assert at_once.buckets == one_by_one.buckets
    assert (at_once.low, at_once.high) == (one_by_one.low, one_by_one.high) == (0.0, 99999.0)
    assert at_once.total == pytest.approx(one_by_one.total)
    at_once.add_many([])
    assert at_once.buckets == one_by_one.buckets


def _cells(store: Recording) -> dict[int, dict[str, Any]]:
    return {data["minute"]: data["queues"]["q"]["t"]  # type: ignore[index]
            for data in store.entries.values()}


def test_starts_and_ends_count_in_their_own_minute_across_its_end() -> None:
    """A worker's starts and ends are taken in together; each still lands in the minute it
    happened in, also when one run of them spans the end of a minute."""
    store = Recording()
    recorder = StatsRecorder(store, flush_interval=3600)  # type: ignore[arg-type]
    end = (time.time() // 60 + 1) * 60  # the end of this minute, epoch seconds
    for i in range(10):  # five just before the minute's end, five just after
        at = end - 0.05 + i * 0.01
        recorder.started("q", "t", 0.002, at)
        recorder.finished("completed", "q", "t", 0.004, at + 0.001)
    recorder.finished("lost", "q", "t", None, end + 1.0)
    recorder.flush()
    before, after = int(end // 60) - 1, int(end // 60)
    cells = _cells(store)
    assert sorted(cells) == [before, after]
    assert cells[before]["counts"] == {"completed": 5}
    assert cells[after]["counts"] == {"completed": 5, "lost": 1}
    for cell in cells.values():
        assert sum(cell["wait"][3].values()) == 5 and sum(cell["run"][3].values()) == 5
    recorder.close()


def test_no_start_or_end_is_lost_when_threads_record_at_once() -> None:
    """Job threads (--concurrency) record without a lock; the inbox loses none of theirs."""
    import threading

    store = Recording()
    recorder = StatsRecorder(store, flush_interval=3600)  # type: ignore[arg-type]
    at = time.time()

    def record() -> None:
        for _ in range(3000):
            recorder.started("q", "t", 0.001, at)
            recorder.finished("completed", "q", "t", 0.002, at)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):  # flushes while they record
        recorder.flush()
    for t in threads:
        t.join()
    recorder.flush()
    (cell,) = _cells(store).values()
    assert cell["counts"] == {"completed": 12000}
    assert sum(cell["wait"][3].values()) == 12000 and sum(cell["run"][3].values()) == 12000
    recorder.close()
