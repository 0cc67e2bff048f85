"""Batches: many jobs pushed in one round trip under one id, with progress and callbacks.

Callbacks are plain jobs pushed with an idempotency key derived from the batch id, so each runs
exactly once however many workers notice the batch finishing at the same moment:
``on_failure`` at the first job that fails for good, ``on_complete`` when every job completed.
Both receive a ``batch`` keyword argument (tasks) or ``data["batch"]`` (Job classes): the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from taskqueue.drivers import JobFilter
from taskqueue.jobs.definition import Call, Job
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.states import State

if TYPE_CHECKING:
    from taskqueue.workflows.protocol import WorkflowClient

FOREVER = 100 * 365 * 24 * 3600.0
UNFINISHED = (State.PENDING, State.PROCESSING, State.RETRYING)


@dataclass(frozen=True, slots=True)
class BatchStatus:
    id: str
    name: str
    total: int
    pending: int
    processing: int
    retrying: int
    completed: int
    failed: int
    cancelled: int

    @property
    def finished(self) -> bool:
        return self.pending + self.processing + self.retrying == 0

    @property
    def progress(self) -> float:
        done = self.completed + self.failed + self.cancelled
        return 100.0 * done / self.total if self.total else 100.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finished": self.finished, "progress": self.progress}


def _kind(batch_id: str) -> str:
    return f"batch:{batch_id}"


def _spec(job: Job | Call | None) -> dict[str, Any] | None:
    if job is None:
        return None
    call = job.to_call() if isinstance(job, Job) else job
    return {"name": call.name, "body": call.body, "options": call.options}


def create(manager: WorkflowClient, jobs: Sequence[Job | Call], name: str,
           on_complete: Job | Call | None, on_failure: Job | Call | None,
           **options: Any) -> str:
    """Push ``jobs`` as one batch; return the batch id."""
    batch_id = uuid7()
    meta = {"id": batch_id, "name": name, "total": len(jobs), "on_complete": _spec(on_complete),
            "on_failure": _spec(on_failure)}
    manager.driver.registry_put(_kind(batch_id), batch_id, meta, FOREVER)
    manager.push_many(jobs, batch_id=batch_id, **options)
    return batch_id


def meta(manager: WorkflowClient, batch_id: str) -> dict[str, Any] | None:
    entries = manager.driver.registry_list(_kind(batch_id))
    return entries[0] if entries else None


def status(manager: WorkflowClient, batch_id: str) -> BatchStatus | None:
    info = meta(manager, batch_id)
    if info is None:
        return None
    counts = {s: manager.driver.count(JobFilter(batch_id=batch_id, states=(s,))) for s in State}
    return BatchStatus(batch_id, str(info["name"]), int(info["total"]),
                       counts[State.PENDING], counts[State.PROCESSING], counts[State.RETRYING],
                       counts[State.COMPLETED], counts[State.FAILED], counts[State.CANCELLED])


def cancel(manager: WorkflowClient, batch_id: str, reason: str) -> int:
    """Cancel every unfinished job of the batch; return how many were cancelled."""
    criteria = JobFilter(batch_id=batch_id, states=UNFINISHED, limit=1_000_000)
    return sum(manager.cancel(job.id, reason) for job in manager.search(criteria))


def job_finished(manager: WorkflowClient, batch_id: str, state: State, count: int = 1) -> None:
    """Called whenever a job of the batch finishes (``count`` jobs, all in ``state``, after a
    bulk action): fire the callbacks that are due.

    A store counter of finished jobs keeps this O(1) per job: the full status is read only
    once the counter reaches the batch size (a retried job may count twice, so the status,
    not the counter, decides)."""
    info = meta(manager, batch_id)
    if info is None:
        return
    if state == State.FAILED and info.get("on_failure"):
        _fire(manager, info, "on_failure")
    finished = manager.driver.counter_incr(f"batch:{batch_id}:finished", count, FOREVER)
    if info.get("on_complete") and finished >= int(info["total"]):
        current = status(manager, batch_id)
        if current and current.finished and current.completed == current.total:
            _fire(manager, info, "on_complete", current)


def _fire(manager: WorkflowClient, info: dict[str, Any], which: str,
          current: BatchStatus | None = None) -> None:
    spec = info[which]
    current = current or status(manager, info["id"])
    body = dict(spec["body"])
    report = current.to_dict() if current else {"id": info["id"]}
    if "data" in body and "args" not in body and isinstance(body["data"], dict):
        body["data"] = {**body["data"], "batch": report}
    else:
        body["kwargs"] = {**body.get("kwargs", {}), "batch": report}
    options = {**spec["options"], "idempotency_key": f"batch:{info['id']}:{which}"}
    manager.push(Call(spec["name"], body, options))
