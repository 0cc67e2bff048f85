"""The executor's soft timeout shares one interval timer across jobs; these prove that an
alarm armed for one job neither fires early in the next nor is lost, and the cheap paths of
the context and the event bus behave like the full ones."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from taskqueue.errors import JobCancelled, JobTimeout
from taskqueue.jobs.context import JobContext
from taskqueue.jobs.definition import Task
from taskqueue.observability.events import JOB_COMPLETED, JOB_STARTED, Event, EventBus
from taskqueue.worker.executor import Executor, Kind, disarm_alarm


def sleeper(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return "slept"


async def async_sleeper(seconds: float = 0.0) -> str:
    import asyncio

    await asyncio.sleep(seconds)
    return "slept"


SLEEP = Task(sleeper, name="tests.executor.sleep", defaults={})
ASYNC_SLEEP = Task(async_sleeper, name="tests.executor.async_sleep", defaults={})


def ctx(timeout: float, job_id: str = "job") -> JobContext:
    return JobContext(job_id=job_id, name="t", queue="q", attempt=1, max_attempts=1,
                      timeout=timeout)


def body(seconds: float) -> dict[str, Any]:
    return {"args": [seconds], "kwargs": {}}


@pytest.fixture
def executor() -> Any:
    ex = Executor()
    yield ex
    ex.close()
    disarm_alarm()


def test_short_timeout_job_then_longer_job_is_not_cut_short(executor: Executor) -> None:
    # The first job arms the timer for 0.2 s and returns at once; the alarm still fires
    # during the second job, which must keep running until its own deadline.
    assert executor.run(SLEEP, body(0), ctx(0.2)).kind is Kind.OK
    outcome = executor.run(SLEEP, body(0.5), ctx(5.0))
    assert outcome.kind is Kind.OK, outcome.error
    assert outcome.result == "slept"


def test_short_deadline_after_a_long_one_still_fires(executor: Executor) -> None:
    assert executor.run(SLEEP, body(0), ctx(60.0)).kind is Kind.OK
    started = time.monotonic()
    outcome = executor.run(SLEEP, body(5.0), ctx(0.3))
    assert outcome.kind is Kind.ERROR
    assert isinstance(outcome.error, JobTimeout)
    assert 0.25 <= time.monotonic() - started < 2.0


def test_many_short_jobs_then_a_hanging_one_times_out_on_time(executor: Executor) -> None:
    for _ in range(200):
        assert executor.run(SLEEP, body(0), ctx(0.4)).kind is Kind.OK
    started = time.monotonic()
    outcome = executor.run(SLEEP, body(5.0), ctx(1.0))
    assert isinstance(outcome.error, JobTimeout)
    assert 0.9 <= time.monotonic() - started < 2.5


def test_interrupt_from_another_thread_stops_the_job(executor: Executor) -> None:
    c = ctx(30.0)
    threading.Timer(0.2, lambda: c._interrupt and c._interrupt(JobCancelled("stop"))).start()
    started = time.monotonic()
    outcome = executor.run(SLEEP, body(5.0), c)
    assert outcome.kind is Kind.CANCELLED
    assert time.monotonic() - started < 2.0


def test_async_tasks_are_recognised_once_and_run(executor: Executor) -> None:
    assert executor.run(ASYNC_SLEEP, body(0), ctx(5.0)).result == "slept"
    assert executor.run(SLEEP, body(0), ctx(5.0)).result == "slept"
    assert executor.run(ASYNC_SLEEP, body(0), ctx(5.0)).result == "slept"


def test_context_cancel_event_is_created_on_demand_and_shared() -> None:
    c = ctx(1.0)
    assert not c.is_cancelled
    c.check_cancelled()
    event = c.cancelled
    assert c.cancelled is event
    event.set()
    assert c.is_cancelled
    with pytest.raises(JobCancelled):
        c.check_cancelled()


def test_event_bus_reports_who_listens() -> None:
    bus = EventBus()
    assert not bus.wants(JOB_STARTED)
    seen: list[Event] = []
    stop = bus.subscribe(seen.append, JOB_COMPLETED)
    assert bus.wants(JOB_COMPLETED) and not bus.wants(JOB_STARTED)
    stop_all = bus.subscribe(seen.append)
    assert bus.wants(JOB_STARTED)
    stop_all()
    stop()
    assert not bus.wants(JOB_COMPLETED)


def test_memory_warning_ignores_warm_up_and_reports_steady_growth(
        caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    from taskqueue import QueueManager
    from taskqueue.worker.runner import Worker, WorkerOptions

    manager = QueueManager.from_url(f"sqlite:///{tmp_path / 'q.db'}")
    worker = Worker(manager, WorkerOptions(memory_limit_mb=500))
    worker.summary.rss_start_mb = 30.0

    def at(done: int, rss: float) -> None:
        worker.summary.processed = done
        worker._watch_memory_trend(rss)

    caplog.set_level("WARNING", logger="taskqueue.worker")
    at(220, 36.0)  # +6 MB during warm-up: caches and buffers, not a leak
    at(1300, 36.3)
    at(2400, 36.4)
    assert "a leak?" not in caplog.text
    at(3500, 42.0)  # then +5 MB per 1,000 jobs
    assert "a leak?" in caplog.text and "per 1000 jobs" in caplog.text
    manager.close()
