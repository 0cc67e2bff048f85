"""Bulk actions: on a selection of ids (done within the request) or on every job matching a
filter (a background operation that pages through the matches, so a million jobs never sit in
memory, and reports its progress at ``/api/operations/{id}``).

Each page is changed in one store call (``QueueManager.apply_many``: one statement or script
for the whole page, with the single-job action's cascades), so 10,000 jobs take a few pages,
not 10,000 round trips; the operation's counts advance page by page.

Only jobs in a state the action applies to (see :mod:`actions`) are looked at: the filter's
states are intersected with them, so "retry everything matching" skips what cannot be retried
without reading it. Keyset paging on the id makes the walk safe while states change under it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from taskqueue.dashboard.actions import ApplyMany, allowed_from
from taskqueue.dashboard.query import Decode, JobQuery, find_page
from taskqueue.drivers.base import JobFilter
from taskqueue.errors import TaskQueueError
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.dashboard")
PAGE = 1000


@dataclass
class Outcome:
    changed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "skipped": self.skipped, "errors": self.errors[:20]}


def apply_page(records: Sequence[JobRecord], action: str, apply: ApplyMany,
               outcome: Outcome) -> None:
    """The action on one page of jobs in one store call: those in a state it applies to are
    handed over together; those the store did not change (they moved on meanwhile) and the
    rest count as skipped."""
    states = allowed_from(action)
    ids = [record.id for record in records if record.state in states]
    outcome.skipped += len(records) - len(ids)
    if not ids:
        return
    try:
        changed = apply(ids)
    except TaskQueueError as exc:
        outcome.skipped += len(ids)
        outcome.errors.append(f"{len(ids)} jobs from {ids[0]}: {exc}")
        return
    outcome.changed += len(changed)
    outcome.skipped += len(ids) - len(changed)


def run_selection(search: Callable[[JobFilter], list[JobRecord]], ids: Sequence[str],
                  action: str, apply: ApplyMany) -> Outcome:
    """The action on selected ids (read and changed a page at a time); unknown ids are
    skipped."""
    outcome = Outcome()
    wanted = list(dict.fromkeys(ids))
    outcome.skipped += len(ids) - len(wanted)
    for start in range(0, len(wanted), PAGE):
        chunk = tuple(wanted[start:start + PAGE])
        records = search(JobFilter(ids=chunk, limit=len(chunk)))
        outcome.skipped += len(chunk) - len(records)
        apply_page(records, action, apply, outcome)
    return outcome


def target_states(query: JobQuery, action: str) -> tuple[State, ...]:
    allowed = allowed_from(action)
    return tuple(s for s in (query.states or allowed) if s in allowed)


def count_targets(search: Callable[[JobFilter], list[JobRecord]],
                  count: Callable[[JobFilter], int], query: JobQuery, action: str,
                  decode: Decode | None = None) -> int:
    """How many jobs ``action`` on ``query`` would change now: the matches in a state it
    applies to, time range and argument filters included. Without those two, the store
    counts; with them, the same walk the operation makes (so the figure is the same)."""
    states = target_states(query, action)
    if not states:
        return 0
    if not (query.since or query.until or query.scans_here):
        return count(query.filter(states=states))
    total, cursor = 0, query.cursor
    while True:
        page = find_page(search, replace(query, cursor=cursor, limit=PAGE), decode=decode,
                         states=states)
        total += len(page.jobs)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


@dataclass
class Operation:
    id: str
    action: str
    description: str
    actor: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    scanned: int = 0
    outcome: Outcome = field(default_factory=Outcome)
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "description": self.description,
                "actor": self.actor, "started": self.started, "finished": self.finished,
                "done": self.finished is not None, "scanned": self.scanned,
                **self.outcome.to_dict(), "error": self.error}


class Operations:
    """Background bulk operations of one dashboard process (kept an hour after they end)."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._lock = threading.Lock()

    def start(self, search: Callable[[JobFilter], list[JobRecord]], query: JobQuery,
              action: str, apply: ApplyMany, actor: str, on_done: Callable[[Operation], None],
              decode: Decode | None = None) -> Operation:
        op = Operation(uuid.uuid4().hex, action, query.describe(), actor)
        with self._lock:
            self._forget_old()
            self._ops[op.id] = op
        thread = threading.Thread(target=self._run,
                                  args=(op, search, query, apply, on_done, decode),
                                  name=f"taskqueue-bulk-{op.id[:8]}", daemon=True)
        thread.start()
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def _run(self, op: Operation, search: Callable[[JobFilter], list[JobRecord]],
             query: JobQuery, apply: ApplyMany, on_done: Callable[[Operation], None],
             decode: Decode | None) -> None:
        states = target_states(query, op.action)
        cursor = query.cursor
        writing: Future[None] | None = None
        try:
            # the next page is read while the store changes this one (on its own connection
            # where the store has several): the walk's reads cost no time of their own
            with ThreadPoolExecutor(1, thread_name_prefix=f"taskqueue-bulk-{op.id[:8]}") as writer:
                while states and not op.cancel.is_set():
                    page = find_page(search, replace(query, cursor=cursor, limit=PAGE),
                                     decode=decode, states=states)
                    op.scanned += page.scanned
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(apply_page, page.jobs, op.action, apply,
                                            op.outcome)
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                if writing is not None:
                    writing.result()
        except Exception as exc:  # noqa: BLE001 - reported to the user and the audit log
            log.exception("bulk %s failed", op.action)
            op.error = str(exc)
        finally:
            try:
                on_done(op)  # the audit entry exists before anyone sees the operation done
            except Exception:  # noqa: BLE001 - the operation itself is over either way
                log.exception("recording bulk %s failed", op.action)
            op.finished = time.time()

    def _forget_old(self) -> None:
        old = [k for k, op in self._ops.items()
               if op.finished is not None and time.time() - op.finished > 3600]
        for key in old:
            del self._ops[key]

