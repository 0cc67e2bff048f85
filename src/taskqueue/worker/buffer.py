"""The jobs a worker has reserved but not started yet, and the rules that keep them few and fresh.

How much a worker reserves (``Worker._batch_size``): its free slots plus a buffer of at most
``BUFFER_WORK`` seconds of measured work (no buffer before the first job is measured; a job
as long as ``BUFFER_WORK`` shrinks it to nothing). While jobs are micro-seconds long that is the
whole ``--prefetch``, which keeps the batched reserve/acknowledge path fast.

What happens to a buffered job before it starts:

* **hand-back** -- a guard thread gives the whole buffer back to the store (``release``: no
  attempt used) once it has waited ``HOLD`` seconds since its reservation while the job in front
  of it has been running for ``STUCK`` seconds: a job that turned out long. Idle workers take
  those jobs; the worker itself reserves afresh after its job, so a higher-priority job that
  arrived meanwhile comes first. A worker that is merely slow (a busy machine) while it goes
  through short jobs keeps its buffer: handing it back would only add round trips.
* **cancel** -- a buffered job is never started after its cancellation was seen: ``pop``
  asks the store whether the next job was cancelled (one ``search`` by its id; while it was,
  the one after it too) when it has waited longer than ``CANCEL_CHECK`` (5 ms) since its
  reservation and since the last such check. A cancel that returned before that check is
  honoured, so one that returned more than 5 ms before the job's turn always is. A batch of
  micro-second jobs asks at most once per 5 ms of work; 1 ms jobs pay ~2 % (one id is cheap
  to look up on every store); a job of 20 ms asks before the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from taskqueue.drivers import Driver, JobFilter
from taskqueue.errors import DriverError
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.worker")

#: Seconds of measured work a worker may reserve beyond its free slots.
BUFFER_WORK = 0.05
#: Seconds a reserved job may wait in the buffer before the buffer is handed back...
HOLD = 0.1
#: ... when the job running in front of it has run for this many seconds.
STUCK = 0.05
#: A buffered job older than this (seconds) is checked for a cancellation before it starts.
#: It was 50 ms: a job whose cancel returned 13 ms before its turn still ran.
CANCEL_CHECK = 0.005
#: The guard thread ends after this many idle seconds (it starts again with the next buffer).
GUARD_IDLE = 5.0


def buffer_size(avg_duration: float | None, prefetch: int) -> int:
    """Jobs to reserve beyond the free slots, from the measured mean job duration."""
    if avg_duration is None:
        return 0
    return max(0, min(prefetch - 1, int(BUFFER_WORK / max(avg_duration, 1e-5))))


class ReservedBuffer:
    """Reserved, not yet started jobs of one worker (its main thread pops them one by one).

    ``hand_back(jobs)`` gives jobs back to the store; ``on_cancelled(jobs)`` is told of jobs
    dropped because they were cancelled. Both are called outside the buffer's lock."""

    def __init__(self, driver: Driver, hand_back: Callable[[Sequence[JobRecord]], None],
                 on_cancelled: Callable[[Sequence[JobRecord]], None]) -> None:
        self.driver = driver
        self._hand_back = hand_back
        self._on_cancelled = on_cancelled
        self._jobs: deque[JobRecord] = deque()
        self._lock = threading.Lock()
        self._reserved_at = 0.0
        self._checked_at = 0.0
        self._popped_at = 0.0
        #: Hand-backs under way (taken from the buffer, not yet released in the store) and
        #: done: a worker about to stop on an empty queue waits for the first and compares
        #: the second, so jobs handed back during its last reservation are not left behind.
        self._in_flight = 0
        self._handed = 0
        self._settled = threading.Condition(self._lock)
        self._loaded = threading.Event()
        self._closed = threading.Event()
        self._guard: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def load(self, jobs: Sequence[JobRecord]) -> None:
        """A fresh reservation (the previous one is fully started or handed back)."""
        now = time.monotonic()
        with self._lock:
            self._jobs.extend(jobs)
            self._reserved_at = self._checked_at = self._popped_at = now
            if len(jobs) > 1:  # a single job starts at once: nothing to guard
                self._loaded.set()
                self._start_guard()

    def start_guard(self) -> None:
        """Have the guard thread running (it ends after ``GUARD_IDLE`` idle seconds and
        ``load`` starts it again): a worker waiting to start calls it, so that its first
        reservation does not wait for a thread to start."""
        with self._lock:
            if not self._closed.is_set():
                self._start_guard()

    def _start_guard(self) -> None:  # under the lock
        if self._guard is None:
            self._guard = threading.Thread(target=self._guard_loop, daemon=True,
                                           name="taskqueue-buffer")
            self._guard.start()

    def pop(self) -> JobRecord | None:
        """The next job to start, or None when the buffer is empty (or was handed back)."""
        if not self._jobs:
            return None
        now = time.monotonic()
        if now - self._checked_at > CANCEL_CHECK:
            try:
                self._drop_cancelled(now)
            except DriverError as exc:  # a running job still learns of its cancel
                log.debug("checking reserved jobs for cancels failed: %s", exc)
        with self._lock:
            self._popped_at = now  # the job popped starts now
            return self._jobs.popleft() if self._jobs else None

    @property
    def handed_back(self) -> int:
        """How many hand-backs have completed so far."""
        return self._handed

    def settled(self, timeout: float = 10.0) -> int:
        """Wait until no hand-back is under way; return how many have completed."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=timeout)
            return self._handed

    def take_all(self) -> list[JobRecord]:
        """Empty the buffer and return what it held (to hand it back)."""
        with self._lock:
            jobs = list(self._jobs)
            self._jobs.clear()
        return jobs

    def close(self) -> None:
        self._closed.set()
        self._loaded.set()
        guard = self._guard
        if guard is not None:
            guard.join(timeout=5)

    # -- checks -----------------------------------------------------------------------------------
    def _drop_cancelled(self, now: float) -> None:
        """Drop the cancelled jobs at the head of the buffer: the next job to start is asked
        about (one ``search`` by its id), and while it was cancelled, the one after it. Asking
        about the head alone keeps a check cheap where a search reads each job it names (the
        files store: ~1 ms for a buffer of 45, which 1 ms jobs paid every 5 jobs)."""
        self._checked_at = now
        while True:
            with self._lock:
                head = self._jobs[0] if self._jobs else None
            if head is None:
                return
            if not self.driver.search(JobFilter(ids=(head.id,), states=(State.CANCELLED,),
                                                limit=1)):
                return
            with self._lock:  # unless the guard handed the buffer back meanwhile
                dropped = bool(self._jobs) and self._jobs[0] is head
                if dropped:
                    self._jobs.popleft()
            if dropped:
                self._on_cancelled([head])

    def _guard_loop(self) -> None:
        """Hand the buffer back once it is ``HOLD`` old behind a job running for ``STUCK``."""
        while not self._closed.is_set():
            if not self._loaded.wait(GUARD_IDLE):
                with self._lock:
                    if not self._loaded.is_set():
                        self._guard = None  # idle: the next buffer starts a new guard
                        return
            self._loaded.clear()
            while not self._closed.is_set():
                with self._lock:
                    if not self._jobs:
                        break
                    due = max(self._reserved_at + HOLD,
                              self._popped_at + STUCK) - time.monotonic()
                    stale = list(self._jobs) if due <= 0 else []
                    if stale:
                        self._jobs.clear()
                        self._in_flight += 1
                if stale:
                    try:
                        self._hand_back(stale)
                    except Exception:  # noqa: BLE001 - their leases expire; they run again
                        log.exception("handing back %d reserved jobs failed", len(stale))
                    finally:
                        with self._settled:
                            self._in_flight -= 1
                            self._handed += 1
                            self._settled.notify_all()
                    break
                self._closed.wait(due)
