"""One action on many jobs at store speed, with the effects the single-job actions have.

``QueueManager.retry``, ``cancel``, ``set_priority`` and ``delete`` act on one job, one round
trip (or several) each. ``apply_many`` hands the store a page of ids at a time
(``Driver.apply_many``: one statement or script per page) and then does, per page, what the
single action does after its store call:

* ``cancel``: a ``job.cancelled`` event per job cancelled; the pending dependents of each
  cancelled job are cancelled too, transitively (``settle_dependents``, same reason text); each
  batch the jobs belong to counts them as finished (callbacks fire as after ``cancel``);
* ``retry``, ``priority``, ``delete``: nothing more (the single actions do nothing more either).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskqueue.drivers.base import BULK_MAX, BULK_STATES, JobFilter
from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.states import State
from taskqueue.observability.events import JOB_CANCELLED, Event
from taskqueue.workflows import batch as batches
from taskqueue.workflows.dependencies import settle_dependents

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.workflows.protocol import WorkflowClient

#: Ids read back per query when a cancel looks for dependents and batches.
READ_PAGE = 500


def apply_many(manager: WorkflowClient, action: str, job_ids: Sequence[str], *,
               reason: str = "cancelled", by: str | None = None,
               priority: int | str | None = None) -> list[str]:
    """Do ``action`` (retry, cancel, priority, delete) to every job of ``job_ids`` that is in
    a state it applies to (``BULK_STATES``); return the ids changed, in the order given."""
    if action not in BULK_STATES:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(BULK_STATES)}")
    level = validate_priority(priority) if action == "priority" and priority is not None \
        else None
    text = f"{reason} (by {by})" if by else reason
    ids = list(dict.fromkeys(job_ids))
    changed: list[str] = []
    for start in range(0, len(ids), BULK_MAX):
        done = manager.driver.apply_many(action, ids[start:start + BULK_MAX], reason=text,
                                         priority=level)
        if action == "cancel" and done:
            _after_cancel(manager, done, text)
        changed.extend(done)
    return changed


def _after_cancel(manager: WorkflowClient, ids: list[str], text: str) -> None:
    records = _records(manager, ids)
    found = {record.id: record for record in records}
    for job_id in ids:   # with task and queue: the statistics history counts them
        record = found.get(job_id)
        name, queue = (record.name, record.queue_name) if record else (None, None)
        manager.events.emit(Event(JOB_CANCELLED, job_id, name, queue, error=text))
    for parent in _parents(manager, ids):
        settle_dependents(manager, parent, run_anyway=False, reason=text)
    finished: Counter[str] = Counter()
    for record in records:
        if record.batch_id:
            finished[record.batch_id] += 1
    for batch_id, count in finished.items():
        batches.job_finished(manager, batch_id, State.CANCELLED, count)


def _parents(manager: WorkflowClient, ids: list[str]) -> list[str]:
    """Those of ``ids`` that some job depends on (one index lookup finds none in the common
    case), in the order given."""
    children = manager.driver.dependents(ids)
    if not children:
        return []
    wanted = set(ids)
    found = {dep for record in _records(manager, children) for dep in record.dependencies
             if dep in wanted}
    return [job_id for job_id in ids if job_id in found]


def _records(manager: WorkflowClient, ids: Sequence[str]) -> list[JobRecord]:
    out: list[JobRecord] = []
    for start in range(0, len(ids), READ_PAGE):
        chunk = tuple(ids[start:start + READ_PAGE])
        out.extend(manager.driver.search(JobFilter(ids=chunk, limit=len(chunk))))
    return out
