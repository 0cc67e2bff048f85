"""What a Redis driver object remembers for the worker that uses it, to save round trips:

* the queue of each job it reserved (bounded), so completing them needs no lookup of the id
  index. Only a hint: the complete script reports a job it does not find in the remembered
  queue, and the driver then looks the queue up;
* its last single-queue reserve call (``Primed``), which ``wait_for_work`` repeats in the same
  round trip as its BLPOP, and the jobs that reserve took, kept for the worker's next reserve
  when it asks for the same thing soon enough (else the driver hands them back);
* when the earliest delayed job of a queue falls due, as the last reservation that came back
  empty told it, for the wait that follows at once (``due_for``): it needs no ``due`` call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import NamedTuple

from taskqueue.jobs.model import JobRecord

#: How many reserved jobs' queues are remembered.
MEMO_MAX = 10_000
#: How long jobs reserved by ``wait_for_work`` wait for the worker's ``reserve`` (seconds); a
#: quarter of the lease if that is shorter.
WAITED_MAX_AGE = 5.0
#: How long an empty reservation's word on the next due time stands in for asking (seconds).
#: A wait follows its reservation within a fraction of a millisecond; a delayed job pushed in
#: between is found when the wait's slice ends, as one pushed during the wait is.
DUE_MAX_AGE = 0.05


class Primed(NamedTuple):
    """A single-queue reserve call, repeated by ``wait_for_work`` when it wakes up."""

    worker: str
    queue: str
    limit: int
    lease_us: int


class Memory:
    """Thread-safe: the worker's acknowledging and heartbeat threads share the driver."""

    def __init__(self) -> None:
        self._homes: dict[str, str] = {}
        self._lock = threading.Lock()
        self.primed: Primed | None = None
        self._waited: tuple[float, Primed, list[JobRecord]] | None = None
        self._due: tuple[float, str, int | None] | None = None

    # -- queues of reserved jobs ------------------------------------------------------------
    def remember(self, jobs: Iterable[JobRecord]) -> None:
        limit = MEMO_MAX
        with self._lock:
            homes = self._homes
            for job in jobs:
                homes[job.id] = job.queue_name
            if len(homes) > limit:   # forget the oldest, down to nine tenths of the bound
                for job_id in list(islice(homes, len(homes) - limit + limit // 10)):
                    del homes[job_id]

    def forget(self, ids: Iterable[str]) -> None:
        with self._lock:
            for job_id in ids:
                self._homes.pop(job_id, None)

    def knows(self, job_id: str) -> bool:
        return job_id in self._homes

    def homes(self, ids: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """The remembered queues of these ids, and the ids without one."""
        homes = self._homes
        found = {i: q for i in ids if (q := homes.get(i)) is not None}
        return found, [i for i in ids if i not in found]

    def __len__(self) -> int:
        return len(self._homes)

    # -- the reservation of a wake-up -------------------------------------------------------
    def prime(self, worker: str, queue: str, limit: int, lease_us: int) -> Primed:
        self.primed = Primed(worker, queue, limit, lease_us)
        return self.primed

    def primed_for(self, queues: Sequence[str]) -> Primed | None:
        """The primed call when a wait on ``queues`` may repeat it (the same single queue),
        once: only the wait right after a reserve repeats it. A worker that stopped calling
        reserve (its queues are paused in the store) waits without reserving."""
        primed, self.primed = self.primed, None
        return primed if primed is not None and list(queues) == [primed.queue] else None

    def note_due(self, queue: str, due_us: int | None) -> None:
        """An empty reservation of ``queue`` told when its next delayed job falls due."""
        self._due = (time.monotonic(), queue, due_us)

    def due_for(self, queues: Sequence[str]) -> tuple[bool, float | None]:
        """``(True, seconds until due or None)`` when the last empty reservation was of these
        queues (one queue) and is fresh, else ``(False, None)``: ask the store. Once."""
        noted, self._due = self._due, None
        if noted is None:
            return False, None
        at, queue, due_us = noted
        age = time.monotonic() - at
        if age > DUE_MAX_AGE or len(queues) != 1 or queues[0] != queue:
            return False, None
        return True, None if due_us is None else due_us / 1_000_000 - age

    def keep(self, primed: Primed, jobs: list[JobRecord]) -> None:
        with self._lock:
            self._waited = (time.monotonic(), primed, jobs)

    def stale(self) -> list[JobRecord]:
        """The kept jobs, taken, once nobody can claim them any more (else nothing): for a
        periodic call (the worker's heartbeat thread) to hand back when the worker paused or
        stopped between its wait and its next reserve, long before their lease expires."""
        with self._lock:
            waited = self._waited
            if waited is None:
                return []
            at, primed, jobs = waited
            if time.monotonic() - at < min(primed.lease_us / 4_000_000, WAITED_MAX_AGE):
                return []
            self._waited = None
        return jobs

    def claim(self, wanted: Primed | None, lease_seconds: float
              ) -> tuple[list[JobRecord], list[JobRecord]]:
        """Take the kept jobs: (those this call asked for, those to hand back). They are for
        ``wanted`` when it has the same worker, queue and lease, at most ``limit`` of them,
        and only while they are fresh. ``wanted`` None hands everything back."""
        with self._lock:
            waited, self._waited = self._waited, None
        if waited is None:
            return [], []
        at, primed, jobs = waited
        if wanted is None or (primed.worker, primed.queue, primed.lease_us) != (
                wanted.worker, wanted.queue, wanted.lease_us) \
                or time.monotonic() - at >= min(lease_seconds / 4, WAITED_MAX_AGE):
            return [], jobs
        return jobs[:wanted.limit], jobs[wanted.limit:]
