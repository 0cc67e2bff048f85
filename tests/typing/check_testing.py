"""An application's tests, with the helpers and the pytest plugin's fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from taskqueue import QueueManager, WorkerSummary, task
from taskqueue.testing import (
    EnqueuedJob,
    EnqueueRecorder,
    drain,
    inline,
    isolated_manager,
    recorder,
)


@task(queue="emails")
def send_welcome(user_id: int) -> None: ...


def test_helpers(tmp_path: Path) -> None:
    with isolated_manager(tmp_path / "queue.db") as manager, recorder(manager) as enqueued:
        send_welcome.delay(1)
        job: EnqueuedJob = enqueued.assert_enqueued(send_welcome, args=[1], queue="emails")
        assert job.delay == 0
        enqueued.assert_not_enqueued("other.task")
        summary: WorkerSummary = drain(manager, include_delayed=True)
        assert summary.completed == 1
        with inline(manager):
            send_welcome.delay(2)


def test_fixtures(taskqueue_manager: QueueManager,
                  taskqueue_drain: Callable[..., WorkerSummary],
                  taskqueue_enqueued: EnqueueRecorder) -> None:
    send_welcome.delay(3)
    assert taskqueue_enqueued.names() == [send_welcome.name]
    assert taskqueue_drain().completed == 1
