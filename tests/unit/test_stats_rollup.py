"""The long statistics history: minutes of many recorders folded into hours, idempotently,
and read back per task (against a real SQLite store)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from taskqueue.drivers import open_driver
from taskqueue.drivers.base import Driver
from taskqueue.observability import events as ev
from taskqueue.observability.stats import KIND, History, StatsRecorder
from taskqueue.observability.stats_rollup import (
    DETAIL_KIND,
    HOUR_KIND,
    MINUTE_KIND,
    Rollup,
    closed_minute,
    rollup,
    rollup_if_leader,
)
from taskqueue.observability.stats_tasks import task_metrics

HOUR0 = 1_800_000_000 // 3600 * 3600  # an hour boundary, epoch seconds


@pytest.fixture()
def driver(tmp_path: Path) -> Iterator[Driver]:
    opened = open_driver(f"sqlite:///{tmp_path / 'q.db'}")
    yield opened
    opened.close()


def record(recorder: StatsRecorder, at: float, task: str, outcome: str, duration: float,
           queue: str = "default") -> None:
    kind = {"completed": ev.JOB_COMPLETED, "failed": ev.JOB_FAILED}[outcome]
    recorder.on_event(ev.Event(kind, "job", task, queue, attempt=1, duration=duration, at=at))


@pytest.fixture()
def recorders(driver: Driver) -> Iterator[list[StatsRecorder]]:
    """Two recorders (two processes) whose flusher never wakes: the tests flush by hand."""
    made = [StatsRecorder(driver, flush_interval=3600, retention=10 * 86400) for _ in range(2)]
    yield made
    for recorder in made:
        recorder.close()


def test_only_closed_minutes_are_folded_and_a_second_fold_adds_nothing(driver: Driver,
        recorders: list[StatsRecorder]) -> None:
    a, b = recorders
    for i in range(10):  # minutes 0..9 of the hour, two processes
        record(a, HOUR0 + i * 60 + 1, "send", "completed", 0.010)
        record(b, HOUR0 + i * 60 + 2, "send", "failed", 0.200)
    a.flush(), b.flush()
    now = HOUR0 + 8 * 60 + 30  # minute 8 is running, 7 ended 30 s ago: 0..6 are closed
    assert closed_minute(now) == HOUR0 // 60 + 6
    assert rollup(driver, now) == 3  # the hour's entries: minutes, 5-minute buckets, total
    [hour] = driver.registry_list(HOUR_KIND)
    figures = hour["queues"]["default"]["send"]
    assert figures["counts"] == {"completed": 7, "failed": 7}
    assert rollup(driver, now) == 0  # nothing new closed: idempotent
    assert rollup(driver, HOUR0 + 11 * 60) == 3  # minutes 7..9 now closed
    [hour] = driver.registry_list(HOUR_KIND)
    assert hour["queues"]["default"]["send"]["counts"] == {"completed": 10, "failed": 10}
    [detail] = driver.registry_list(DETAIL_KIND)  # minutes 0-4 and 5-9 of the hour
    assert sorted(detail["buckets"]) == [str(HOUR0 // 60), str(HOUR0 // 60 + 5)]
    assert detail["buckets"][str(HOUR0 // 60 + 5)]["default"]["send"]["counts"] == {
        "completed": 5, "failed": 5}


def test_task_metrics_read_folded_and_unfolded_minutes_without_double_counting(
        driver: Driver, recorders: list[StatsRecorder]) -> None:
    a = recorders[0]
    for i in range(20):
        record(a, HOUR0 + i * 60 + 5, "send", "completed", 0.010)
        record(a, HOUR0 + i * 60 + 6, "resize", "completed", 2.0, queue="images")
    record(a, HOUR0 + 7 * 60, "resize", "failed", 3.0, queue="images")
    a.flush()
    now = HOUR0 + 20 * 60 + 10
    before = task_metrics(driver, "1h", now=now)
    rollup(driver, HOUR0 + 10 * 60)  # half of the minutes folded, the rest still raw
    for window in ("1h", "6h", "24h", "7d"):
        data = task_metrics(driver, window, now=now)
        by_name = {t["name"]: t for t in data["tasks"]}
        assert by_name["send"]["completed"] == 20
        assert by_name["resize"]["completed"] == 20 and by_name["resize"]["failed"] == 1
        assert by_name["resize"]["failure_rate"] == round(1 / 21, 4)
    assert [t["completed"] for t in before["tasks"]] == [20, 20]
    data = task_metrics(driver, "1h", now=now)
    resize = next(t for t in data["tasks"] if t["name"] == "resize")
    assert 1.5 <= resize["run_time"]["p50"] <= 2.5  # within a bucket of 2 s
    assert 2.0 <= resize["run_time"]["p95"] <= 3.0
    assert len(resize["series"]) == 60 and data["step"] == 60
    assert sum(p["completed"] for p in resize["series"]) == 20
    every = data["all"]  # both tasks together: counts add up, percentiles from both histograms
    assert (every["completed"], every["failed"], every["run_time"]["count"]) == (40, 1, 41)
    assert every["run_time"]["p50"] < 2.5 and len(every["series"]) == 60
    assert task_metrics(driver, "1h", name="send", now=now)["tasks"][0]["name"] == "send"
    assert task_metrics(driver, "1h", queue="nope", now=now)["tasks"] == []


def test_the_hour_history_outlives_the_minutes(driver: Driver,
                                               recorders: list[StatsRecorder]) -> None:
    a = recorders[0]
    record(a, HOUR0 + 5, "send", "completed", 0.5)
    a.flush()
    rollup(driver, HOUR0 + 3600)
    for kind in (KIND, MINUTE_KIND, DETAIL_KIND):  # as if their TTLs ran out
        for entry in driver.registry_list(kind):
            key = f"{entry['minute']}:{entry['source']}" if kind == KIND else str(entry["hour"])
            driver.registry_remove(kind, key)
    three_days_later = HOUR0 + 3 * 86400
    assert task_metrics(driver, "24h", now=three_days_later)["tasks"] == []
    week = task_metrics(driver, "7d", now=three_days_later)
    assert [(t["name"], t["completed"]) for t in week["tasks"]] == [("send", 1)]
    assert len(week["tasks"][0]["series"]) == 168 and week["step"] == 3600


def test_one_process_folds_at_a_time(driver: Driver, recorders: list[StatsRecorder]) -> None:
    a = recorders[0]
    record(a, HOUR0 + 5, "send", "completed", 0.5)
    a.flush()
    assert rollup_if_leader(driver, "one", HOUR0 + 600) == 3
    assert rollup_if_leader(driver, "two", HOUR0 + 600) is None
    assert rollup_if_leader(driver, "one", HOUR0 + 600) == 0


def test_an_unknown_range_is_refused(driver: Driver) -> None:
    with pytest.raises(ValueError, match="range must be one of"):
        task_metrics(driver, "3w")


def test_six_hours_read_the_5_minute_buckets_once_the_minutes_expire(
        driver: Driver, recorders: list[StatsRecorder]) -> None:
    a = recorders[0]
    for i in range(12):
        record(a, HOUR0 + i * 60 + 1, "send", "completed", 0.05)
    a.flush()
    rollup(driver, HOUR0 + 20 * 60)
    for entry in driver.registry_list(KIND):  # the recorders' hour has passed
        driver.registry_remove(KIND, f"{entry['minute']}:{entry['source']}")
    later = HOUR0 + 3 * 3600
    assert task_metrics(driver, "1h", now=later)["tasks"] == []
    six = task_metrics(driver, "6h", now=later)
    [task] = six["tasks"]
    assert task["completed"] == 12 and six["step"] == 300
    assert [p["completed"] for p in task["series"] if p["completed"]] == [5, 5, 2]


def folded_kinds(driver: Driver) -> dict[str, list[dict[str, object]]]:
    return {kind: driver.registry_list(kind) for kind in (MINUTE_KIND, DETAIL_KIND, HOUR_KIND)}


class Listings:
    """The store, counting which kinds were listed (a spy, the store itself is real)."""

    def __init__(self, driver: Driver) -> None:
        self.driver, self.listed = driver, Counter[str]()

    def __getattr__(self, name: str) -> object:
        return getattr(self.driver, name)

    def registry_list(self, kind: str) -> list[dict[str, object]]:
        self.listed[kind] += 1
        return self.driver.registry_list(kind)


def test_folding_minute_by_minute_equals_one_fold_of_everything(tmp_path: Path) -> None:
    """Two stores get the same minutes (two processes, 90 minutes across an hour boundary):
    one is folded once at the end, the other after every minute by a kept ``Rollup`` --
    with another process folding in between now and then, and a recorder rewriting a
    folded minute -- and both end with the same entries."""
    stores = [open_driver(f"sqlite:///{tmp_path / name}.db") for name in ("once", "steps")]
    once, steps = stores
    spy = Listings(steps)
    kept = Rollup(cast(Driver, spy), "kept")
    writers = {d: [StatsRecorder(d, flush_interval=3600, retention=10 * 86400)
                   for _ in range(2)] for d in stores}
    try:
        for i in range(90):
            at = HOUR0 + 1800 + i * 60
            for a, b in writers.values():
                record(a, at + 1, "send", "completed", 0.01 * (i % 7 + 1))
                record(b, at + 2, f"task{i % 3}", "failed" if i % 5 else "completed", 2.0,
                       queue="other")
                a.flush(), b.flush()
            now = at + 60 + 61  # this minute is closed
            if i % 20 == 13:
                assert rollup(steps, now) >= 1  # another process folds meanwhile
            else:
                kept.run(now)
            if i == 40:  # a late write of a minute already folded is dropped, never added
                late = StatsRecorder(steps, flush_interval=3600, retention=10 * 86400)
                record(late, HOUR0 + 1800 + 5, "send", "completed", 9.0)
                late.flush()
                late.close()
        end = HOUR0 + 1800 + 95 * 60
        rollup(once, end)
        kept.run(end)
        assert folded_kinds(steps) == folded_kinds(once)
        assert steps.registry_list(KIND) == [] == once.registry_list(KIND)
        for window in ("1h", "6h", "24h"):
            assert task_metrics(steps, window, now=end) == task_metrics(once, window, now=end)
        hours_listed = spy.listed[HOUR_KIND]
        assert 1 <= hours_listed <= 6  # once at the start, and after each other process's fold
        before = spy.listed[HOUR_KIND]
        assert kept.run(end) == 0 and kept.run(end + 60) == 0  # nothing new: no hour listed
        assert spy.listed[HOUR_KIND] == before
    finally:
        for made in writers.values():
            for recorder in made:
                recorder.close()
        for driver in stores:
            driver.close()


class FoldsWhileRead(Listings):
    """A reader's store on which another process folds right after the first listing."""

    def __init__(self, driver: Driver, now: float) -> None:
        super().__init__(driver)
        self.now, self.folded = now, False

    def registry_list(self, kind: str) -> list[dict[str, object]]:
        listed = super().registry_list(kind)
        if not self.folded:
            self.folded = True
            assert rollup(self.driver, self.now) == 3
        return listed


def test_a_fold_during_a_read_neither_hides_nor_doubles_minutes(
        driver: Driver, recorders: list[StatsRecorder]) -> None:
    a, b = recorders
    for i in range(6):
        record(a, HOUR0 + i * 60 + 1, "send", "completed", 0.5)
        record(b, HOUR0 + i * 60 + 2, "send", "failed", 0.5)
    a.flush(), b.flush()
    now = HOUR0 + 6 * 60 + 1  # minutes 0..4 close
    expected = {k: v.counts for k, v in History.load(driver, now).cells.items()}
    assert sum(c["completed"] for c in expected.values()) == 6
    read = History.load(cast(Driver, FoldsWhileRead(driver, now)), now)
    assert {k: v.counts for k, v in read.cells.items()} == expected
    assert task_metrics(driver, "1h", now=now)["all"]["completed"] == 6
