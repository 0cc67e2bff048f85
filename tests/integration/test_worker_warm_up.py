"""A standby worker does its first maintenance pass and pause check while it waits (issue #17:
a recycle loses no time to them once it is told to start)."""

from __future__ import annotations

from typing import Any

from taskqueue import QueueManager
from taskqueue.worker.runner import Worker, WorkerOptions
from tests.apps import sample_tasks as t


def counting(obj: Any, name: str, calls: list[str]) -> None:
    """Count the calls of one method of ``obj`` (the real method still runs)."""
    real = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)


def test_warmed_up_worker_reserves_first_and_maintains_at_its_interval(
        manager: QueueManager) -> None:
    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    calls: list[str] = []
    counting(worker.driver, "recover_expired", calls)
    counting(manager, "paused_queues", calls)
    counting(worker.driver, "reserve", calls)
    worker.warm_up()
    assert calls == ["recover_expired", "paused_queues"]
    calls.clear()
    summary = worker.run()
    assert summary.completed == 1
    assert calls[0] == "reserve"  # the loop's first round goes straight to the store's jobs
    assert "recover_expired" not in calls  # next pass after maintenance_interval (5 s)


def test_without_warm_up_the_first_round_maintains_before_reserving(
        manager: QueueManager) -> None:
    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    calls: list[str] = []
    counting(worker.driver, "recover_expired", calls)
    counting(worker.driver, "reserve", calls)
    assert worker.run().completed == 1
    assert calls[:2] == ["recover_expired", "reserve"]
