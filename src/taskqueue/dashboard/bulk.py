"""Bulk actions: on a selection of ids (done within the request) or on every job matching a
filter (a background operation that pages through the matches, so a million jobs never sit in
memory, and reports its progress at ``/api/operations/{id}``).

Each page is changed in one store call (``QueueManager.apply_many``: one statement or script
for the whole page, with the single-job action's cascades), so 10,000 jobs take a few pages,
not 10,000 round trips; the operation's counts advance page by page.

Only jobs in a state the action applies to (see :mod:`actions`) are looked at: the filter's
states are intersected with them, so "retry everything matching" skips what cannot be retried
without reading it. Keyset paging on the id makes the walk safe while states change under it.
When the store applies every filter (no time range, argument, short-text or group test
here), the walk reads only each job's id and state (``Driver.graph_nodes``), not its payload,
exception and times: at 200,000 jobs on PostgreSQL, reading ten pages of 1,000 failed jobs
took 1.27 s as records and 0.08 s as nodes under load 20, time the store's writes of the
other pages had to share its CPU with.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from taskqueue.dashboard.actions import ApplyMany, allowed_from
from taskqueue.dashboard.query import Decode, JobQuery, find_page
from taskqueue.drivers.base import GraphNode, JobFilter
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


Nodes = Callable[[JobFilter], list[GraphNode]]


def apply_page(records: Sequence[JobRecord | GraphNode], action: str, apply: ApplyMany,
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


def run_selection(search: Callable[[JobFilter], Sequence[JobRecord | GraphNode]],
                  ids: Sequence[str], action: str, apply: ApplyMany) -> Outcome:
    """The action on selected ids (read and changed a page at a time; ``search`` may read
    nodes, only the state is looked at); unknown ids are skipped."""
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
              decode: Decode | None = None, nodes: Nodes | None = None) -> Operation:
        """Run ``action`` on the matches of ``query`` in the background. With ``nodes`` (the
        store's light read), a query the store filters entirely is walked by id and state."""
        op = Operation(uuid.uuid4().hex, action, query.describe(), actor)
        with self._lock:
            self._forget_old()
            self._ops[op.id] = op
        if nodes is not None and not (query.since or query.until or query.scans_here):
            pages: Pages = _node_pages(nodes, query, target_states(query, action))
        else:
            pages = _record_pages(search, query, target_states(query, action), decode)
        thread = threading.Thread(target=self._run, args=(op, pages, apply, on_done),
                                  name=f"taskqueue-bulk-{op.id[:8]}", daemon=True)
        thread.start()
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def _run(self, op: Operation, pages: Pages, apply: ApplyMany,
             on_done: Callable[[Operation], None]) -> None:
        writing: Future[None] | None = None
        try:
            # the next page is read while the store changes this one (on its own connection
            # where the store has several): the walk's reads cost no time of their own
            with ThreadPoolExecutor(1, thread_name_prefix=f"taskqueue-bulk-{op.id[:8]}") as writer:
                for jobs, scanned in pages:
                    if op.cancel.is_set():
                        break
                    op.scanned += scanned
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(apply_page, jobs, op.action, apply, op.outcome)
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




#: pages of a walk: the jobs to hand to the action (only id and state are read) and how many
#: jobs were read to find them
Pages = Iterator[tuple[Sequence[JobRecord | GraphNode], int]]


def _record_pages(search: Callable[[JobFilter], list[JobRecord]], query: JobQuery,
                  states: tuple[State, ...], decode: Decode | None) -> Pages:
    """The matches as records, through ``find_page`` (which applies the dashboard's own
    filters: time range, arguments, short texts, groups)."""
    cursor = query.cursor
    while states:
        page = find_page(search, replace(query, cursor=cursor, limit=PAGE), decode=decode,
                         states=states)
        yield page.jobs, page.scanned
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _node_pages(nodes: Nodes, query: JobQuery, states: tuple[State, ...]) -> Pages:
    """The matches of a query the store filters entirely, as nodes (id and state without
    payload, exception or times), keyset-paged by id in the query's order."""
    after = query.cursor
    while states:
        batch = nodes(query.filter(after_id=after, limit=PAGE, states=states))
        if batch:
            yield batch, len(batch)
        if len(batch) < PAGE:
            return
        after = batch[-1].id
