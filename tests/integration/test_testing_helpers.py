"""taskqueue.testing: the helpers users' test suites rely on, on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskqueue import Job, QueueManager, State, chain, default_manager, task
from taskqueue.testing import drain, inline, isolated_manager, recorder

ran: list[object] = []


@task(name="helpers.add", queue="math")
def add(a: int, b: int) -> int:
    ran.append((a, b))
    return a + b


@task(name="helpers.async_double")
async def async_double(n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


@task(name="helpers.boom", max_attempts=2, retry_backoff=0.05, retry_jitter=False)
def boom(n: int) -> None:
    raise ValueError(f"boom {n}")


class Greet(Job):
    name = "helpers.Greet"

    def handle(self) -> str:
        ran.append(self.data)
        return "hello"


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[QueueManager]:
    ran.clear()
    with isolated_manager(tmp_path / "queue.db") as m:
        yield m


def test_isolated_manager_is_the_default_meanwhile(tmp_path: Path) -> None:
    with isolated_manager(tmp_path / "a.db") as first:
        assert default_manager() is first
        with isolated_manager(tmp_path / "b.db") as second:
            assert default_manager() is second
        assert default_manager() is first


def test_recorder_sees_names_args_queue_delay(manager: QueueManager) -> None:
    with recorder(manager) as enqueued:
        add.push([1, 2], delay=timedelta(minutes=1), priority="high", tags=["x"])
        add.delay(3, 4)
        Greet({"to": "ada"}).dispatch()
        add.push([5, 6], idempotency_key="once")
        add.push([5, 6], idempotency_key="once")  # a duplicate: not enqueued again
    assert enqueued.names() == ["helpers.add", "helpers.add", "helpers.Greet", "helpers.add"]
    job = enqueued.assert_enqueued(add, args=[1, 2], queue="math", delay=60, priority=10)
    assert job.tags == ("x",)
    enqueued.assert_enqueued(add, args=(3, 4), delay=0)
    enqueued.assert_enqueued("helpers.Greet", data={"to": "ada"}, queue="default")
    enqueued.assert_enqueued(add, args=[5, 6], count=1)
    enqueued.assert_not_enqueued(boom)
    with pytest.raises(AssertionError, match=r"helpers.add\(3, 4\) on 'math'"):
        enqueued.assert_enqueued(add, args=[9, 9])
    with pytest.raises(AssertionError, match="expected no job"):
        enqueued.assert_not_enqueued(Greet)
    with pytest.raises(TypeError, match="no field 'colour'"):
        enqueued.find(add, colour="red")


def test_drain_runs_what_is_ready(manager: QueueManager) -> None:
    later = add.push([1, 1], delay=3600)
    Greet({"n": 1}).dispatch()
    now = async_double.delay(21)
    summary = drain(manager)
    assert (summary.processed, summary.completed) == (2, 2)
    assert now.wait(0) == 42
    assert later.state is State.PENDING
    assert drain(manager, include_delayed=True).completed == 1
    assert later.wait(0) == 2


def test_drain_waits_out_retries_or_raises(manager: QueueManager) -> None:
    first = boom.delay(1)
    summary = drain(manager)
    assert (summary.retried, summary.failed) == (1, 1)
    assert first.state is State.FAILED
    boom.delay(2)
    with pytest.raises(ValueError, match="boom 2"):
        drain(manager, raise_errors=True)


def test_drain_runs_follow_up_jobs(manager: QueueManager) -> None:
    chain(add.s(1, 2), add.s(3, 4))  # pushed on the default manager: this one
    drain(manager)
    assert ran == [(1, 2), (3, 4)]


def test_inline_runs_jobs_as_they_are_pushed(manager: QueueManager) -> None:
    with inline(manager):
        handle = add.delay(2, 3)
        assert handle.state is State.COMPLETED
        assert add.push([1, 1], delay=600).wait(0) == 2  # delayed ones too
        with pytest.raises(ValueError, match="boom 7"):
            boom.delay(7)
    assert add.delay(1, 1).state is State.PENDING  # the block ended


def test_inline_without_raising_lets_retries_run(manager: QueueManager) -> None:
    with inline(manager, raise_errors=False):
        handle = boom.delay(1)
    assert handle.state is State.FAILED
    assert handle.record().attempts == 2


def test_inline_from_async_code(manager: QueueManager) -> None:
    async def endpoint() -> int:
        handle = await async_double.adelay(5)
        result: int = handle.wait(0)
        return result

    with inline(manager):
        assert asyncio.run(endpoint()) == 10
