"""The Scheduled and Retrying views: jobs waiting for a due time, soonest first.

* **scheduled**: pending jobs whose due time (``available_at``) is still ahead (pushed with a
  delay or an ``eta``);
* **retrying**: jobs waiting for their next attempt after a failure.

The store indexes jobs by state and id, not by due time, so the view walks the newest ``scan``
jobs of the state (keyset pages, newest first), keeps those due later, and sorts them by due
time; it says when the walk stopped before the end. "Run now" makes a scheduled job due at once
(``replace_payload`` with its own payload and no delay, which only a pending job accepts).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskqueue.drivers.base import JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager

VIEWS = {"scheduled": State.PENDING, "retrying": State.RETRYING}
PAGE = 1000


def due_jobs(manager: QueueManager, view: str, *, queues: tuple[str, ...] = (),
             limit: int = 200, scan: int = 10_000) -> dict[str, Any]:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}")
    now = manager.driver.now()
    criteria = JobFilter(queues=queues, states=(VIEWS[view],), newest_first=True)
    found: list[JobRecord] = []
    scanned, after, complete = 0, None, False
    while scanned < scan:
        size = min(PAGE, scan - scanned)
        page = manager.search(replace(criteria, after_id=after, limit=size))
        scanned += len(page)
        found.extend(r for r in page if view == "retrying" or r.available_at > now)
        if len(page) < size:
            complete = True
            break
        after = page[-1].id
    found.sort(key=lambda r: (r.available_at, r.id))
    return {"view": view, "now": now.timestamp(), "scanned": scanned, "complete": complete,
            "total": len(found), "jobs": [_row(r) for r in found[:limit]]}


def _row(record: JobRecord) -> dict[str, Any]:
    lines = (record.exception or "").strip().splitlines()
    return {"id": record.id, "name": record.name, "queue": record.queue_name,
            "state": record.state.value, "priority": record.priority,
            "attempts": record.attempts, "max_attempts": record.max_attempts,
            "due_at": record.available_at.timestamp(),
            "created_at": record.created_at.timestamp(), "error": lines[-1] if lines else None}


def run_now(manager: QueueManager, record: JobRecord) -> bool:
    """Make a scheduled (pending, not yet due) job due now; False if it is not one any more."""
    if record.state is not State.PENDING:
        return False
    return manager.on_primary().driver.replace_payload(record.id, record.payload, 0)
