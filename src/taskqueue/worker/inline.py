"""Sync jobs: ``task.run_now(...)`` / ``job.dispatch_sync()`` run in the caller's process.

The job is stored like any other, then reserved by id and run by a worker object in this
process: the same middleware, retries (the caller waits out the backoff), state records and
events. If another worker happens to take it first, the caller simply waits for its result.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from taskqueue.jobs.states import FINISHED
from taskqueue.worker.runner import Worker, WorkerOptions

if TYPE_CHECKING:
    from taskqueue.client import Client
    from taskqueue.jobs.definition import Call, Job


def run_now(manager: Client, job: Job | Call, *, timeout: float = 3600.0,
            **options: Any) -> Any:
    handle = manager.push(job, **options)
    worker = Worker(manager, WorkerOptions(queues=[handle.record().queue_name]))
    deadline = time.monotonic() + timeout
    worker.heartbeat.start()
    try:
        while time.monotonic() < deadline:
            record = manager.require(handle)
            if record.state in FINISHED:
                break
            reserved = manager.driver.reserve_job(worker.worker_id, handle, worker.lease)
            if reserved is not None:
                worker.process_reserved(reserved)
                continue
            wait = (record.available_at - manager.driver.now()).total_seconds()
            time.sleep(min(max(wait, 0.01), 0.5))
    finally:
        worker.heartbeat.stop()
        worker.executor.close()
    return manager.result(handle, timeout=max(0.0, deadline - time.monotonic()))
