"""What happens after a job reaches a final state, whoever settled it (worker, supervisor,
lease rescuer, a user's cancel): dependents are settled, batch callbacks fire, recurring jobs
schedule their next run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskqueue.jobs.states import State
from taskqueue.workflows import batch as batches
from taskqueue.workflows.dependencies import settle_dependents
from taskqueue.workflows.recurring import schedule_next

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.workflows.protocol import WorkflowClient

log = logging.getLogger("taskqueue.workflows")


def after_finish(manager: WorkflowClient, job: JobRecord, body: dict[str, Any] | None,
                 options: dict[str, Any], state: State, reason: str = "") -> None:
    """Run the follow-ups of ``job`` having become ``state`` (completed/failed/cancelled)."""
    if state in (State.FAILED, State.CANCELLED):
        settle_dependents(manager, job.id, bool(options.get("continue_on_failure")),
                          reason or f"{job.name} {state.value}")
    if job.batch_id:
        batches.job_finished(manager, job.batch_id, state)
    every = options.get("every")
    if every and body is not None and state in (State.COMPLETED, State.FAILED):
        try:
            schedule_next(manager, job, body, float(every))
        except Exception:  # noqa: BLE001 - a broken follow-up must not kill the worker
            log.exception("could not schedule the next run of recurring job %s", job.id)

