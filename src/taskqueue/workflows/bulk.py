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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskqueue.drivers.base import BULK_MAX, BULK_STATES
from taskqueue.jobs.priority import validate_priority
from taskqueue.workflows.dependencies import (
    cancelled_follow_ups,
    records_of,
    settle_dependents,
)

if TYPE_CHECKING:
    from taskqueue.workflows.protocol import WorkflowClient


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
    cancelled_follow_ups(manager, dict.fromkeys(ids, text))
    for parent in _parents(manager, ids):
        settle_dependents(manager, parent, run_anyway=False, reason=text)


def _parents(manager: WorkflowClient, ids: list[str]) -> list[str]:
    """Those of ``ids`` that some job depends on (one index lookup finds none in the common
    case), in the order given."""
    children = manager.driver.dependents(ids)
    if not children:
        return []
    wanted = set(ids)
    found = {dep for record in records_of(manager, children) for dep in record.dependencies
             if dep in wanted}
    return [job_id for job_id in ids if job_id in found]
