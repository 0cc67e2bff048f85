"""Typed lifecycle events and the one in-process bus that carries them.

Logging, metrics, alerts, progress bars and user hooks subscribe here; the worker and the
manager only ``emit``. A subscriber that raises is logged and otherwise ignored: observing a job
must never break it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("taskqueue.events")

JOB_ENQUEUED = "job.enqueued"
JOB_STARTED = "job.started"
#: The job's code returned; its outcome may still wait for a batched acknowledgement.
JOB_RAN = "job.ran"
JOB_COMPLETED = "job.completed"
JOB_RETRIED = "job.retried"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
JOB_SNOOZED = "job.snoozed"
JOB_POSTPONED = "job.postponed"
JOB_LEASE_LOST = "job.lease_lost"
WORKER_STARTED = "worker.started"
WORKER_STOPPED = "worker.stopped"
WORKER_HEARTBEAT = "worker.heartbeat"
#: Every lifecycle kind, for subscribers that pick theirs from the whole list.
ALL_KINDS = (JOB_ENQUEUED, JOB_STARTED, JOB_RAN, JOB_COMPLETED, JOB_RETRIED, JOB_FAILED,
             JOB_CANCELLED, JOB_SNOOZED, JOB_POSTPONED, JOB_LEASE_LOST, WORKER_STARTED,
             WORKER_STOPPED, WORKER_HEARTBEAT)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``fields`` never holds payloads or secrets."""

    kind: str
    job_id: str | None = None
    name: str | None = None
    queue: str | None = None
    attempt: int | None = None
    duration: float | None = None
    worker_id: str | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)
    fields: dict[str, Any] = field(default_factory=dict)

    def as_log_fields(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("job_id", "name", "queue", "attempt", "duration",
                                            "worker_id", "error") if getattr(self, k) is not None}
        out.update(self.fields)
        return out


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str | None, Subscriber]] = []
        self._lock = threading.Lock()
        self._every = False
        self._kinds: frozenset[str] = frozenset()
        #: kind -> its subscribers in subscription order (catch-alls included); other kinds
        #: reach only the catch-alls. Rebuilt on (un)subscribe, so ``emit`` filters nothing.
        self._table: dict[str, tuple[Subscriber, ...]] = {}
        self._catch_all: tuple[Subscriber, ...] = ()

    def wants(self, kind: str) -> bool:
        """Does anybody listen to ``kind``? Lets hot paths skip building events nobody reads."""
        return self._every or kind in self._kinds

    def _changed(self) -> None:
        self._every = any(k is None for k, _ in self._subscribers)
        self._kinds = frozenset(k for k, _ in self._subscribers if k is not None)
        self._table = {kind: tuple(fn for k, fn in self._subscribers if k is None or k == kind)
                       for kind in self._kinds}
        self._catch_all = tuple(fn for k, fn in self._subscribers if k is None)

    def subscribe(self, fn: Subscriber, kind: str | None = None) -> Callable[[], None]:
        """Call ``fn`` for every event (or only ``kind``); returns an unsubscribe function."""
        entry = (kind, fn)
        with self._lock:
            self._subscribers.append(entry)
            self._changed()

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
                    self._changed()

        return unsubscribe

    def emit(self, event: Event) -> None:
        for fn in self._table.get(event.kind, self._catch_all):
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - observers never break jobs
                log.exception("event subscriber %r failed on %s", fn, event.kind)
