"""The Scheduled and Retrying views: jobs waiting for a due time, soonest first.

* **scheduled**: pending jobs whose due time (``available_at``) is still ahead (pushed with a
  delay or an ``eta``, or snoozed);
* **retrying**: jobs waiting for their next attempt after a failure.

The store answers both from its index of due times (``Driver.due``: ``ORDER BY available_at,
id`` over a partial index on SQLite and PostgreSQL, the state's sorted set on Redis), a page at
a time with a keyset cursor (the due time and id of the last job shown), and counts them
(``Driver.count_due``). "Run now" makes a scheduled job due at once (``replace_payload`` with
its own payload and no delay, which only a pending job accepts).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from taskqueue.drivers.base import DueFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager

VIEWS = {"scheduled": State.PENDING, "retrying": State.RETRYING}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_jobs(manager: QueueManager, view: str, *, queues: tuple[str, ...] = (),
             limit: int = 200, cursor: str | None = None) -> dict[str, Any]:
    """A page of the view; ``cursor`` is the ``next_cursor`` of the page before."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}")
    driver = manager.driver
    now = driver.now()
    criteria = DueFilter(VIEWS[view], queues, parse_cursor(cursor), limit + 1)
    found = driver.due(criteria)
    jobs = found[:limit]
    total = driver.count_due(criteria)
    more = len(found) > limit
    return {"view": view, "now": now.timestamp(), "scanned": len(jobs), "complete": True,
            "total": total, "jobs": [_row(r) for r in jobs],
            "next_cursor": make_cursor(jobs[-1]) if more else None}


def make_cursor(record: JobRecord) -> str:
    """``<due time in microseconds since the epoch>:<id>``."""
    return f"{(record.available_at - _EPOCH) // timedelta(microseconds=1)}:{record.id}"


def parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    micros, sep, job_id = cursor.partition(":")
    if not sep or not micros.isdigit() or not job_id:
        raise ValueError("a due view's cursor is the next_cursor of the page before")
    return _EPOCH + timedelta(microseconds=int(micros)), job_id


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
