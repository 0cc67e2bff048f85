"""``push_many`` on every backend: a large batch stores, for each job, the record a single push
of the same call stores (envelope, encryption, compression, every option), and a job that
cannot be made late in the batch stores nothing at all. On PostgreSQL the batch's jobs are
made a slice at a time while the COPY of the previous slice is under way, so a failure there
comes after rows were already sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from taskqueue import QueueManager, task
from taskqueue.codec import generate_key
from taskqueue.drivers import JobFilter
from taskqueue.errors import PayloadError, PayloadTooLarge
from taskqueue.jobs.definition import Call
from taskqueue.jobs.states import State


@task(name="push_many.add", priority=7, tags=["t1", "t2"])
def add(a: Any, b: Any = 0) -> None: ...


@task(name="push_many.other", queue="other", max_attempts=2, timeout=9)
def other(text: str) -> None: ...


@pytest.fixture
def manager(store_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(store_url, encryption_key=generate_key(), max_payload=20_000)
    yield m
    m.close()


def _batch() -> list[Call]:
    """Runs of two tasks and of different options, some bodies large enough to compress."""
    return ([add.s(i, b=-i) for i in range(300)]
            + [other.s(f"x{i}") for i in range(5)]
            + [add.s(i, "word " * 400).set(batch_id="b1", priority=3) for i in range(200)]
            + [add.s(i) for i in range(20)])


def _stored(record: Any) -> tuple[Any, ...]:
    return (record.queue_name, record.name, record.state, record.priority, record.attempts,
            record.max_attempts, record.timeout_seconds, record.delay_seconds, record.tags,
            record.dependencies, record.idempotency_key, record.batch_id)


def test_a_large_batch_stores_what_single_pushes_store(manager: QueueManager) -> None:
    calls = _batch()
    ids = manager.push_many(calls)
    assert len(ids) == len(set(ids)) == len(calls)
    assert manager.driver.count(JobFilter(states=(State.PENDING,))) == len(calls)
    # the first job of each run, pushed on its own
    alone = {index: manager.require(manager.push(calls[index])) for index in (0, 300, 305, 505)}
    for index, (call, job_id) in enumerate(zip(calls, ids, strict=True)):
        record = manager.require(job_id)
        first = max(i for i in alone if i <= index)
        # the call's arguments, and what the envelope adds from the options (as alone)
        expected = {**manager.decode(alone[first]), "args": call.body["args"]}
        if "kwargs" in call.body:
            expected["kwargs"] = call.body["kwargs"]
        assert manager.decode(record) == expected, index
        assert _stored(record) == _stored(alone[first]), index
        assert record.payload[:4] == alone[first].payload[:4], "the same envelope header"
        assert isinstance(record.created_at, datetime)


def test_a_bad_job_late_in_a_large_batch_stores_nothing(manager: QueueManager) -> None:
    calls = [add.s(i) for i in range(900)] + [add.s(float("nan"))] + [add.s(1)]
    with pytest.raises(PayloadError, match=r"args\[0\] is nan"):
        manager.push_many(calls)
    assert manager.driver.count(JobFilter()) == 0
    too_large = [add.s(i) for i in range(700)] + [add.s(1, list(range(9000)))]
    with pytest.raises(PayloadTooLarge):
        manager.push_many(too_large)
    assert manager.driver.count(JobFilter()) == 0
    assert all(s.counts.get(State.PENDING, 0) == 0 for s in manager.driver.stats().values())
    assert len(manager.push_many(calls[:900])) == 900  # the store is usable afterwards
    assert manager.driver.count(JobFilter()) == 900


def test_a_large_batch_is_announced_and_counted_job_by_job(manager: QueueManager) -> None:
    seen: list[str] = []
    manager.events.subscribe(lambda event: seen.append(event.job_id), "job.enqueued")
    handles = manager.push_many([add.s(i) for i in range(700)] + [other.s("x")]
                                + [add.s(i) for i in range(5)])
    assert seen == list(handles)
    manager.stats_recorder.flush()
    counts: Counter[tuple[str, str]] = Counter()
    for minute in manager.stats_recorder._minutes.values():  # a minute may end meanwhile
        for queue, tasks in minute.items():
            for name, figures in tasks.items():
                counts[queue, name] += figures.counts.get("enqueued", 0)
    assert counts == {("default", "push_many.add"): 705, ("other", "push_many.other"): 1}
