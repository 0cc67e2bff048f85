"""The worker loop: reserve a batch, run each job, settle it; heartbeat in the background.

It takes a Client (``QueueManager`` is one; it holds a Driver) and never imports a concrete
driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import taskqueue.scheduling  # noqa: F401  (registers the limit and condition middleware)
from taskqueue.client import Client
from taskqueue.cluster.aging import AgingService
from taskqueue.drivers.base import CompletesAndReserves, ParallelWriters, Warms, WarmsUp
from taskqueue.errors import (
    DriverError,
    DriverUnavailable,
    JobCancelled,
    JobTimeout,
    PayloadError,
    UnknownTask,
)
from taskqueue.jobs.body import RUN_OPTIONS, TIMEOUT_SET
from taskqueue.jobs.context import JobContext
from taskqueue.jobs.definition import Runnable, resolve
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.middleware import Kind, Outcome
from taskqueue.observability import events as ev
from taskqueue.observability.process import peak_rss_mb, rss_mb
from taskqueue.worker.buffer import ReservedBuffer, buffer_size
from taskqueue.worker.executor import Executor, describe
from taskqueue.worker.heartbeat import Heartbeat
from taskqueue.worker.middleware import Middleware, Postpone, default_middleware
from taskqueue.worker.pool import JobPool
from taskqueue.worker.presence import Presence
from taskqueue.worker.queues import QueuePlan, parse_queue_spec
from taskqueue.worker.recovery import after_rescue
from taskqueue.worker.retry import RetryPolicy, retry_in
from taskqueue.workflows.dependencies import inject_results
from taskqueue.workflows.hooks import after_finish

if TYPE_CHECKING:
    from taskqueue.worker.board import StatusPublisher

log = logging.getLogger("taskqueue.worker")
T = TypeVar("T")
#: Completions acknowledged together: at most this many, held at most this long (seconds).
ACK_BATCH = 100
ACK_DELAY = 0.05
#: Acknowledgements that take longer than this (seconds, on average) are sent by the acker
#: thread when the queue runs dry; quicker ones are not worth waking a thread for.
ACK_OFFLOAD = 0.0005
#: Sessions a worker waiting to start has its driver open and prime (``WarmsUp``): one for the
#: main thread's first reservation, one for the presence and heartbeat threads, whose first
#: calls (the registry entry after the first round, a heartbeat once jobs are held) would
#: otherwise take the only one it had.
WARM_SESSIONS = 2
#: Jobs a worker runs before its memory is taken as the baseline for leak warnings.
WARM_UP_JOBS = 200
#: Seconds of job work between two memory checks while jobs are shorter than that (a job
#: that long or longer is followed by a check of its own).
MEMORY_CHECK_WORK = 0.001
#: ``--stop-when-empty`` waits for jobs this worker postponed, or scheduled for a retry, that
#: are due within this many seconds; those due later are left (and reported).
POSTPONED_WAIT = 60.0
#: A completion waiting for its acknowledgement: job, body, options, outcome, encoded result.
_Ack = tuple[JobRecord, dict[str, Any], dict[str, Any], Outcome, str]
#: WorkerSummary counter of each settle event.
_COUNTERS = {ev.JOB_COMPLETED: "completed", ev.JOB_RETRIED: "retried", ev.JOB_FAILED: "failed",
             ev.JOB_SNOOZED: "snoozed", ev.JOB_POSTPONED: "postponed"}
#: Settle events a statistics recorder takes from the worker directly (its ``DIRECT_KINDS``;
#: the counter names above are its count names).
_RECORDED = frozenset((ev.JOB_COMPLETED, ev.JOB_RETRIED, ev.JOB_FAILED))


#: Longest one maintenance pass spends pruning; more is left for the next pass.
PRUNE_STEP_SECONDS = 0.25


@dataclass
class WorkerOptions:
    queues: Sequence[str] = ("default",)
    #: Most jobs reserved at once: free slots plus a buffer of at most ``buffer.BUFFER_WORK``
    #: seconds of measured work, up to this many.
    prefetch: int = 100
    lease_seconds: float | None = None
    #: Longest idle wait before checking again (a push wakes the worker sooner).
    poll_interval: float = 1.0
    max_jobs: int | None = None
    memory_limit_mb: float | None = None
    max_time: float | None = None
    #: Timeout for jobs that did not choose one (Laravel's ``--timeout``).
    timeout: float | None = None
    stop_when_empty: bool = False
    worker_id: str | None = None
    maintenance_interval: float = 5.0
    #: How often finished jobs past their retention are deleted (one worker does it, under a
    #: lock that lapses after two intervals if that worker dies).
    prune_interval: float = 60.0
    #: Extra middleware (the registered defaults are always installed first).
    middleware: Sequence[Middleware] = ()
    #: Jobs run at once in this process: threads for sync jobs, one event loop for async ones.
    concurrency: int = 1
    #: How often the set of paused queues is re-read from the store.
    pause_check_interval: float = 0.5
    #: Seconds a job cancelled while running may take to stop by itself before it is stopped.
    cancel_grace: float = 5.0
    #: Capability tags of this worker (jobs may require them).
    tags: Sequence[str] = ()
    #: Serve queues strictly in the given order instead of by priority across them.
    strict: bool = False
    #: Seconds a job may wait before its priority starts to rise (None: no aging).
    priority_aging: float | None = None


@dataclass
class WorkerSummary:
    worker_id: str
    processed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    snoozed: int = 0
    postponed: int = 0
    cancelled: int = 0
    lost: int = 0
    #: Running and reserved jobs given back to the queue at the stop (no attempt used).
    handed_back: int = 0
    #: Jobs this worker postponed that were not due yet when ``--stop-when-empty`` stopped it.
    postponed_left: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


def _averaged(average: float, started: float) -> float:
    """A moving average of durations (the last one counting a fifth) with the one that began at
    ``started`` (``time.monotonic()``) and ends now."""
    return 0.8 * average + 0.2 * (time.monotonic() - started)


def check_body(body: Any) -> None:
    """A payload must decode to a JSON object whose reserved keys have the right types;
    anything else (a hostile or corrupted row) is dead-lettered, never run."""
    if not isinstance(body, dict):
        raise PayloadError(f"payload is a JSON {type(body).__name__}, expected an object")
    for key, kind in ((RUN_OPTIONS, dict), ("args", list), ("kwargs", dict), ("_wf", dict)):
        if key in body and not isinstance(body[key], kind):
            raise PayloadError(f"payload field {key!r} is a JSON {type(body[key]).__name__}, "
                               f"expected {'an object' if kind is dict else 'an array'}")


class Worker:
    def __init__(self, manager: Client, options: WorkerOptions | None = None) -> None:
        self.manager = manager
        self.driver = manager.driver
        self.options = options or WorkerOptions()
        self.plan = QueuePlan(parse_queue_spec(self.options.queues), tuple(self.options.tags),
                              self.options.strict)
        self.queues = self.plan.names()
        self.lease = self.options.lease_seconds or manager.settings.lease_seconds
        self.worker_id = self.options.worker_id or f"{socket.gethostname()}:{os.getpid()}:" \
            f"{uuid7()[-6:]}"
        self.summary = WorkerSummary(self.worker_id)
        concurrent = self.options.concurrency > 1
        self.executor = Executor(shared_loop=concurrent)
        self.pool = JobPool(self.options.concurrency) if concurrent else None
        self.heartbeat = Heartbeat(self.driver, self.worker_id, self.lease,
                                   self._on_cancelled,
                                   on_beat=lambda: self._emit(ev.WORKER_HEARTBEAT),
                                   watched=lambda: list(self._running))
        self._lock = threading.Lock()
        self._acks: list[_Ack] = []
        #: The driver's one-transaction "acknowledge, then reserve", if it has one.
        self._combined = self.driver if isinstance(self.driver, CompletesAndReserves) else None
        self._parallel_writers = isinstance(self.driver, ParallelWriters)
        #: The driver's "open and prime sessions ahead of need", if it has one.
        self._warms = self.driver if isinstance(self.driver, WarmsUp) else None
        self._acks_since = 0.0
        self._awaiting_ack: set[str] = set()
        #: Notified when the last completion awaiting its acknowledgement is in.
        self._all_acked = threading.Condition(self._lock)
        self._ack_wake = threading.Event()
        #: Set when the acker thread is to send the buffered completions now (see _ack_idle).
        self._ack_now = threading.Event()
        self._asked = 0   # the size the last reservation asked for
        self._ack_seconds = 0.0   # how long an acknowledgement takes (moving average)
        self._empty_seconds = 0.0   # how long a reservation that finds nothing takes (same)
        self._acker: threading.Thread | None = None
        self._acker_stop = threading.Event()
        self._paused_queues: set[str] = set()
        self._next_pause_check = 0.0
        self._next_trend_log = WARM_UP_JOBS  # no RSS read per batch before the baseline
        self._trend_base: tuple[int, float] | None = None
        self._warned_limit = False
        self._stop = threading.Event()
        #: Set once the first round (reservation and batch) is done: the presence thread's
        #: first write waits for it.
        self._first_round = threading.Event()
        self._paused = threading.Event()
        self.presence = Presence(self.driver, self.worker_id, self._status, self._paused,
                                 self.lease)
        self._running: dict[str, JobContext] = {}
        #: The status board of a supervised worker (``child.SupervisedWorker``), told of the
        #: start and end of every job's code.
        self._board: StatusPublisher | None = None
        #: Jobs told of their cancellation while running: their settle is refused because
        #: they are cancelled, which is not a lost lease.
        self._cancelled_running: set[str] = set()
        #: Exponential mean of job durations (None until the first job has run).
        self._avg_duration: float | None = None
        self.buffer = ReservedBuffer(self.driver, self._hand_back, self._dropped_cancelled)
        #: Jobs this worker postponed (limits, conditions): id -> when due (monotonic).
        self._postponed: dict[str, float] = {}
        #: Jobs this worker scheduled for a retry: id -> when due (monotonic).
        self._retrying: dict[str, float] = {}
        #: The main thread is inside a job's code (a second SIGINT interrupts it there).
        self._in_job = False
        self._immediate = False
        self._rss_limit: float | None = None
        self._unchecked_work = 0.0
        self._started = time.monotonic()
        self._next_maintenance = 0.0
        self._next_prune = 0.0
        #: The first round reserves before the first maintenance pass (``run_once``).
        self._maintained = False
        self._events = manager.events
        self._state = "starting"
        self.middleware = [*default_middleware(), *self.options.middleware]
        for mw in self.middleware:
            mw.setup(self.manager, self.worker_id)
        # Only the hooks a middleware overrides are called for each job.
        self._before_mw = [mw for mw in self.middleware
                           if type(mw).before_run is not Middleware.before_run]
        self._after_mw = [mw for mw in reversed(self.middleware)
                          if type(mw).after_run is not Middleware.after_run]

    # -- control (safe from signal handlers and other threads) ------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        if not self._stop.is_set():
            self.summary.stop_reason = reason
            self._stop.set()

    def stop_now(self, reason: str = "stopped at once") -> bool:
        """Stop without waiting for running jobs: they are handed back, as reserved ones are.

        Returns True when the main thread is inside a job's code: the caller (a signal
        handler, so on the main thread) then raises KeyboardInterrupt there to leave it."""
        self._immediate = True
        self.summary.stop_reason = reason
        self._stop.set()
        return self._in_job

    def pause(self) -> None:
        """Take no more jobs until resumed (the state is kept in the store)."""
        self.presence.want(True)

    def resume(self) -> None:
        self.presence.want(False)

    def toggle_pause(self) -> bool:
        return self.presence.toggle()

    # -- loop -------------------------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        self.summary.rss_start_mb = self._rss_mb()
        self._emit(ev.WORKER_STARTED)
        log.info("worker started", extra={"worker_id": self.worker_id, "queues": self.queues})
        self.start_threads()
        # the status entry's first write follows the first round instead of racing the first
        # reservation and jobs for the store and for this process's GIL (a recycle waits on
        # those)
        self.presence.release()
        if self.options.priority_aging:
            AgingService(self.driver, self.worker_id, self.options.priority_aging).start(
                self._stop)
        self._state = "running"
        try:
            self._loop()
        except KeyboardInterrupt:
            self._immediate = True
            self.summary.stop_reason = self.summary.stop_reason or "interrupted"
        finally:
            self._shutdown()
        return self.summary

    def start_threads(self) -> None:
        """Start the lease heartbeat, the acknowledgement thread, the reserved buffer's guard
        and the presence thread (each once; ``run`` calls it). A standby starts them while it
        waits: a thread start is a scheduling round trip, and the first round after its
        signal should be a reservation. None of them touches the store until this worker holds
        jobs; the presence thread, held, not before ``run`` (then after the first round)."""
        self.presence.start(after=self._first_round, held=True)
        self.heartbeat.start()
        if self._acker is None:
            self._acker = threading.Thread(target=self._ack_loop, name="taskqueue-acks",
                                           daemon=True)
            self._acker.start()
        self.buffer.start_guard()

    def stop_threads(self) -> None:
        """Stop what ``start_threads`` started, for a worker that never ran (a dismissed
        standby)."""
        self._acker_stop.set()
        self._ack_now.set()
        self._ack_wake.set()
        self.heartbeat.stop()
        self.buffer.close()
        self.presence.stop()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if reason := self._recycle_reason():
                if not self._settles_at_shutdown():
                    # settle this life's last completions, remove its status entry and write
                    # its last statistics before saying it leaves: the replacement's first
                    # reservations do not queue behind those writes (SQLite's write lock,
                    # whose waiters sleep 1, 2, 5 ms and more; row locks)
                    self.flush_acks()
                    self._leave_store()
                # (where writers do not queue for each other, the shutdown settles them while
                # the replacement, told to start now, claims its first batch)
                self.request_stop(reason)
                break
            if self._paused.is_set():
                self.flush_acks()
                self._state = "paused"
                self._stop.wait(0.1)
                continue
            self._state = "running"
            if self.pool is not None and not self.pool.wait_for_capacity(0.2):
                continue
            handed_back = self.buffer.handed_back
            try:
                processed = self.run_once(hold_acks=self._combined is not None)
                failures = 0
                if not self._first_round.is_set():
                    self._first_round.set()
            except DriverUnavailable as exc:
                failures += 1
                delay = min(10.0, 0.1 * 2 ** min(failures, 7))
                log.warning("store unavailable, retrying in %.1fs: %s", delay, exc,
                            extra={"worker_id": self.worker_id})
                self._stop.wait(delay)
                continue
            if processed == 0:
                if self.pool is not None and not self.pool.wait_idle(0):
                    self.pool.wait_for_capacity(0.05)
                    continue
                if self.options.stop_when_empty:
                    if self._awaiting_ack:
                        # completions the acker thread is still sending (_ack_idle) may
                        # release dependents: look again once they are in, not stop as if
                        # the queue were empty
                        self._wait_acknowledged(self.options.poll_interval)
                        continue
                    if self.buffer.settled() != handed_back:
                        continue  # jobs were handed back meanwhile: they are pending again
                    wait = self._postponed_wait()
                    if wait is None:
                        self.request_stop("queue empty")
                        break
                    self._stop.wait(wait)
                    continue
                # (a dependent that completions still on their way release rings the store's
                # wake-up, as a push does: this wait returns for it)
                self._wait_for_work(self.options.poll_interval)

    def _leave_store(self) -> None:
        """The store-side goodbye of a worker that recycles: its registry entries go and its
        statistics recorder writes what it holds (its shutdown then has nothing to write)."""
        with contextlib.suppress(DriverUnavailable):  # the shutdown tries again
            self.presence.leave()
        recorder = getattr(self.manager, "stats_recorder", None)
        if recorder is not None:
            recorder.flush()  # (logs a store error and keeps the figures for the next try)

    def _wait_acknowledged(self, timeout: float) -> None:
        """Until no completion awaits its acknowledgement (at most ``timeout`` seconds)."""
        with self._lock:
            self._all_acked.wait_for(lambda: not self._awaiting_ack, timeout)

    def _wait_for_work(self, timeout: float) -> None:
        try:
            self.driver.wait_for_work(self.queues, timeout)
        except DriverUnavailable as exc:  # e.g. the LISTEN connection was killed
            log.warning("waiting for work failed, polling instead: %s", exc)
            self._stop.wait(min(1.0, timeout))

    def warm_up(self) -> None:
        """Do now what the loop's next round would do before its reservation, each only when
        due: the maintenance pass (lease recovery, the prune lock) and reading the paused
        queues; have the driver's sessions open and primed (``WarmsUp``), its caches for the
        first reservation filled (``Warms``) and the middleware's for the first job (the queue
        limits: ``Middleware.warm_up``). A worker that waits to start (a standby) calls
        this while it waits; the loop then finds all of it done (the first two come again at
        their intervals)."""
        try:
            self._maintenance()
            rounds = self._rounds()
            if self._warms is not None:  # the main thread's session and a background one's
                self._warms.warm_up(WARM_SESSIONS)
            if isinstance(self.driver, Warms):  # e.g. the files backend's ready index
                for queues in rounds:
                    self.driver.warm(queues)
        except DriverUnavailable as exc:  # the loop retries; an outage is waited out there
            log.debug("warming up failed: %s", exc)
        for mw in self.middleware:  # e.g. the queue limits every job checks (kept 5 s)
            try:
                mw.warm_up()
            except DriverError as exc:  # the first job reads them itself
                log.debug("warming up %s failed: %s", type(mw).__name__, exc)

    def run_once(self, hold_acks: bool = False) -> int:
        """Reserve one batch and run it (or hand it to the pool); return how many were taken.

        With ``hold_acks`` the batch's completions stay buffered, to go with the next
        reservation (a driver offering ``complete_and_reserve``); the loop that asks for it
        flushes them before it pauses, stops or waits."""
        # A worker's first round reserves before its first maintenance pass: lease recovery
        # and the prune (each a scan of the job table on some stores) follow the first batch
        # instead of delaying the first job. An empty first reservation runs the pass at once
        # and tries again, so jobs it recovers are not missed (--stop-when-empty).
        first = not self._maintained
        if not first:
            self._maintenance()
        rounds = self._rounds()
        if not rounds:
            self.flush_acks()
            self._stop.wait(0.1)
            return 0
        batch = self._reserve_first(rounds)
        if first:
            self._maintained = True
            if not batch:
                self._maintenance()
                batch = self._reserve_first(rounds)
        if not batch:
            return 0
        self.heartbeat.hold(j.token for j in batch)
        reserved_at = time.monotonic()
        self.buffer.load(batch)
        try:
            while (job := self.buffer.pop()) is not None:
                if self._stop.is_set() or self._paused.is_set():
                    self._hand_back([job, *self.buffer.take_all()])
                    break
                if self._lease_may_have_expired(reserved_at):
                    self._drop_stale([job, *self.buffer.take_all()])
                    break
                if self.pool is not None:
                    self.pool.submit(self._process, job)
                else:
                    if self._acks and time.monotonic() - self._acks_since > ACK_DELAY:
                        self.flush_acks()
                    self._process(job)
        finally:
            if len(batch) < self._asked and not self._stop.is_set():
                self._ack_idle(hold_acks)  # the queue ran dry
            elif not hold_acks and not self._settles_at_shutdown():
                self.flush_acks()
        return len(batch)

    def _settles_at_shutdown(self, uncounted: int = 0) -> bool:
        """About to recycle (``uncounted``: jobs ended but not counted yet) on a store whose
        writers do not queue for each other (``ParallelWriters``): the last completions wait
        for the shutdown, which follows the note that this worker leaves, so its replacement
        claims meanwhile. Not with ``stop_when_empty``: completions can release dependents,
        which the replacement must find before it calls the queue empty."""
        if not self._parallel_writers or self.options.stop_when_empty:
            return False
        o = self.options
        return bool(o.max_jobs and self.summary.processed + uncounted >= o.max_jobs) or bool(
            o.max_time and time.monotonic() - self._started >= o.max_time)

    def _reserve_first(self, rounds: list[list[str]]) -> list[JobRecord]:
        """The batch of the first queue group that has ready jobs (empty: none has)."""
        for queues in rounds:
            if batch := self._reserve(queues):
                return batch
        return []

    def _reserve(self, queues: list[str]) -> list[JobRecord]:
        """The next batch; buffered completions go with it when the driver can do both in
        one transaction."""
        size = self._asked = self._batch_size()
        if self._combined is None or not self._acks or self._ack_now.is_set():
            started = time.monotonic()
            batch = self.driver.reserve(self.worker_id, queues, size, self.lease)
            if not batch:
                self._empty_seconds = _averaged(self._empty_seconds, started)
            return batch
        pending = self._take_acks()
        started = time.monotonic()
        answer = self._send_acks(pending, self._combined.complete_and_reserve, self.worker_id,
                                 queues, size, self.lease)
        self._ack_seconds = _averaged(self._ack_seconds, started)
        accepted, batch = answer if answer is not None else (None, [])
        self._acknowledged(pending, accepted)
        return batch

    def _lease_may_have_expired(self, reserved_at: float) -> bool:
        """True when this process could not have renewed the batch's leases in time (it was
        paused, frozen or starved): another worker may own those jobs by now."""
        last = max(reserved_at, self.heartbeat.last_success)
        return time.monotonic() - last > self.lease * 0.9

    def _drop_stale(self, jobs: Sequence[JobRecord]) -> None:
        """Do not start jobs whose lease may be gone; a live lease is handed back at once."""
        log.warning("skipping %d prefetched jobs: their leases may have expired while this "
                    "process was not running", len(jobs))
        self._hand_back(jobs)

    def _rounds(self) -> list[list[str]]:
        """Queue groups to try in order, minus queues paused in the store (re-read every half
        second)."""
        now = time.monotonic()
        if now >= self._next_pause_check:
            self._next_pause_check = now + self.options.pause_check_interval
            self._paused_queues = set(self.manager.paused_queues())
        return self.plan.rounds(self._paused_queues)

    def _batch_size(self) -> int:
        """Free slots, plus (one job at a time) a buffer of a few tens of ms of measured work."""
        if self.pool is not None:
            size = max(1, self.pool.free())
        else:
            size = 1 + buffer_size(self._avg_duration, self.options.prefetch)
        if self.options.max_jobs:
            size = min(size, max(1, self.options.max_jobs - self.summary.processed))
        return size

    # -- one job ----------------------------------------------------------------------------------
    def _process(self, job: JobRecord) -> None:
        postponed = interrupted = False
        try:
            if job.id in self.heartbeat.lost:
                with self._lock:
                    self.summary.lost += 1
                return
            try:
                body = self.manager.decode(job)
                check_body(body)
                runnable = resolve(job.name)
            except (PayloadError, UnknownTask) as exc:
                self._dead_letter(job, f"{describe(exc)}")
                return
            ctx = self._context(job, body)
            run_options = body.get(RUN_OPTIONS)
            options = {**runnable.defaults, **run_options} if run_options \
                else dict(runnable.defaults)  # a copy: middleware may write to it
            if options.get("pass_result") and job.dependencies:
                try:
                    inject_results(self.manager, job, body)
                except PayloadError as exc:  # a parent's stored result is garbage
                    self._dead_letter(job, describe(exc))
                    return
            if (held_back := self._before(job, ctx, runnable, options)) is not None:
                postponed = True  # a postponement is not a processed job
                self._postpone(job, held_back)
                return
            if self._postponed:
                self._postponed.pop(job.id, None)
            if self._retrying:
                self._retrying.pop(job.id, None)
            self._running[job.id] = ctx
            self._job_started(job, ctx)
            self._in_job = self.pool is None  # the main thread is in the job's code
            outcome = self.executor.run(runnable, body, ctx)
            self._in_job = False
            for mw in self._after_mw:
                mw.after_run(job, ctx, outcome)
            avg = self._avg_duration
            self._avg_duration = outcome.duration if avg is None \
                else 0.8 * avg + 0.2 * outcome.duration
            self._settle(job, runnable, body, outcome, options)
            self._unchecked_work += outcome.duration
            if self._unchecked_work >= MEMORY_CHECK_WORK:
                self._check_memory()
        except BaseException:
            # stopped at once (a second SIGINT): the job stays held, to be handed back
            interrupted, self._in_job = True, False
            raise
        finally:
            if self._running.pop(job.id, None) is not None:
                self._job_ended(job)
            if not interrupted:
                if job.id not in self._awaiting_ack:
                    self.heartbeat.drop(job.id)
                if not postponed:
                    with self._lock:
                        self.summary.processed += 1

    def _job_started(self, job: JobRecord, ctx: JobContext) -> None:
        """The job's code is about to run: the status board of a supervised worker lists it,
        its wait since it was due goes to the client's statistics recorder, if it has one (a
        method call each, no event), and ``job.started`` is built only if somebody listens."""
        board = self._board
        if board is not None:
            board.started(job.id, job.attempts, job.lease_epoch, ctx.timeout, job.max_attempts)
        recorder = getattr(self.manager, "stats_recorder", None)
        if recorder is not None:
            now = time.time()
            waited = now - job.available_at.timestamp()
            recorder.started(job.queue_name, job.name, waited if waited > 0.0 else 0.0, now)
        if self._events.wants(ev.JOB_STARTED):
            self._emit(ev.JOB_STARTED, job, fields={"epoch": job.lease_epoch,
                                                    "timeout": ctx.timeout,
                                                    "max_attempts": job.max_attempts,
                                                    "ready_at": job.available_at.timestamp()})

    def _job_ended(self, job: JobRecord) -> None:
        """The code of a job announced by ``_job_started`` has ended: off the status board;
        ``job.ran``."""
        board = self._board
        if board is not None:
            board.ended(job.id)
        if self._events.wants(ev.JOB_RAN):
            self._emit(ev.JOB_RAN, job)

    def _before(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                options: dict[str, Any]) -> Postpone | None:
        for index, mw in enumerate(self._before_mw):
            decision = mw.before_run(job, ctx, runnable, options)
            if decision is not None:
                for earlier in reversed(self._before_mw[:index]):  # undo what they took
                    earlier.after_run(job, ctx, Outcome(Kind.SNOOZE, 0.0))
                return decision
        return None

    def _postpone(self, job: JobRecord, postpone: Postpone) -> None:
        accepted = self._persist(self.driver.release, job.token, postpone.seconds,
                                 postpone.reason)
        if accepted:
            with self._lock:
                self._postponed[job.id] = time.monotonic() + postpone.seconds
        self._record(job, accepted, ev.JOB_POSTPONED, Outcome(Kind.SNOOZE, 0.0),
                     reason=postpone.reason, delay=postpone.seconds)

    def _timeout(self, job: JobRecord, body: dict[str, Any]) -> float:
        """The job's own timeout, or the worker's ``--timeout`` for a job that set none."""
        if not body.get(TIMEOUT_SET) and self.options.timeout:
            return float(self.options.timeout)
        return float(job.timeout_seconds)

    def _context(self, job: JobRecord, body: dict[str, Any]) -> JobContext:
        return JobContext(
            job_id=job.id, name=job.name, queue=job.queue_name, attempt=job.attempts,
            max_attempts=job.max_attempts, timeout=self._timeout(job, body),
            idempotency_key=job.idempotency_key, batch_id=job.batch_id,
            worker_id=self.worker_id,
            _progress=lambda pct: self._persist(self.driver.set_progress, job.token, pct),
        )

    def _settle(self, job: JobRecord, runnable: Runnable, body: dict[str, Any],
                outcome: Outcome, options: dict[str, Any]) -> None:
        if outcome.kind is Kind.OK:
            result = self.manager.encode_result(outcome.result, job.id)
            if self.pool is not None:  # job threads settle one by one
                accepted = self._persist(self.driver.complete, job.token, result)
                self._completed(job, body, options, outcome, accepted)
                return
            with self._lock:
                if not self._acks:
                    self._acks_since = time.monotonic()
                    self._ack_wake.set()
                self._acks.append((job, body, options, outcome, result))
                self._awaiting_ack.add(job.id)
                # (with complete_and_reserve a batch's acks go with the next reservation)
                full = len(self._acks) >= (ACK_BATCH if self._combined is None else 5 * ACK_BATCH)
            if full and not self._settles_at_shutdown(uncounted=1):
                self.flush_acks()
        elif outcome.kind is Kind.SNOOZE:
            self._record(job, self._persist(self.driver.release, job.token, outcome.snooze),
                         ev.JOB_SNOOZED, outcome)
        elif outcome.kind is Kind.CANCELLED:
            with self._lock:
                self.summary.cancelled += 1
                self._cancelled_running.discard(job.id)
            if self.driver.cancel(job.id, f"cancelled while running: {outcome.error}"):
                after_finish(self.manager, job, body, options, State.CANCELLED)
                self._emit(ev.JOB_CANCELLED, job, outcome)
            else:  # cancelled by someone else, whose event counted it: the run ended here
                self._emit(ev.JOB_CANCELLED, job, outcome, already_cancelled=True)
        else:
            self._fail(job, runnable, body, outcome, options)

    def flush_acks(self) -> None:
        """Acknowledge buffered completions in one round trip.

        Completions are buffered while a batch runs (at most ``ACK_BATCH`` jobs or
        ``ACK_DELAY`` seconds); their leases stay held and renewed until then. A crash before
        the flush means those jobs run again: at-least-once, as always."""
        pending = self._take_acks()
        if pending:
            started = time.monotonic()
            accepted = self._send_acks(pending, self.driver.complete_many)
            self._ack_seconds = _averaged(self._ack_seconds, started)
            self._acknowledged(pending, accepted)

    def _ack_idle(self, hold: bool = False) -> None:
        """The queue ran dry (the batch came back short): when acknowledging is slow (a WAL
        flush on PostgreSQL, 0.5-8 ms on a shared disk), the acker thread sends the completions
        at once, on a connection of its own, while this thread goes on to wait for work: a job
        pushed meanwhile does not wait for that commit. A quick one (a Redis round trip) is
        sent by this thread: waking a thread would cost more CPU than it saves. With ``hold``
        (``run_once``'s ``hold_acks``: the loop goes on to ``complete_and_reserve``) they go
        with the reservation this thread makes next, at once, and anyway before it waits,
        unless that makes it slower by ``ACK_OFFLOAD`` than a reservation finding nothing (a
        commit's flush): one round trip where there were two, and no thread woken (on a busy
        machine a Redis round trip alone takes over ``ACK_OFFLOAD``). A drain keeps
        acknowledging in line, in batches; so does ``run_once`` called without the acker."""
        if hold and self._ack_seconds - self._empty_seconds < ACK_OFFLOAD:
            return
        if self._acker is None or not self._acker.is_alive() or self._ack_seconds < ACK_OFFLOAD:
            self.flush_acks()
        elif self._acks:
            self._ack_now.set()
            self._ack_wake.set()

    def _send_acks(self, pending: list[_Ack], verb: Callable[..., T], *args: Any) -> T | None:
        """Call ``verb(tokens, *args)`` (``complete_many`` or ``complete_and_reserve``)
        through store outages; if it raises anyway, the jobs are let go first."""
        tokens = [(job.token, result) for job, _, _, _, result in pending]
        try:
            return self._persist(verb, tokens, *args)
        except Exception as exc:  # noqa: BLE001 - re-raised by _acknowledged
            self._acknowledged(pending, None, exc)
            raise

    def _take_acks(self) -> list[_Ack]:
        if not self._acks:
            return []
        with self._lock:
            pending, self._acks = self._acks, []
        return pending

    def _acknowledged(self, pending: list[_Ack], accepted: list[bool] | None,
                      failure: Exception | None = None) -> None:
        """Let the jobs of an acknowledgement go, then record each outcome (None: the store
        could not be reached, as if refused). On ``failure`` they are let go too, then it is
        raised: a job left held would have its lease renewed forever (stuck as running); let
        go, its lease expires and it runs again."""
        ids = [job.id for job, _, _, _, _ in pending]
        with self._lock:
            self._awaiting_ack.difference_update(ids)
            if not self._awaiting_ack:
                self._all_acked.notify_all()
        self.heartbeat.drop_many(ids)
        if failure is not None:
            raise failure
        answers = accepted or [False] * len(pending)
        for (job, body, options, outcome, _), ok in zip(pending, answers, strict=True):
            self._completed(job, body, options, outcome, ok)

    def _ack_loop(self) -> None:
        """Acknowledge completions that waited ``ACK_DELAY`` while the main thread is busy in
        a long job (between jobs it flushes them itself): finished jobs are not held back, as
        running, until a slow job after them ends. Those of a worker gone idle, at once."""
        while not self._acker_stop.is_set():
            if not self._ack_wake.wait(1.0):
                continue
            self._ack_wake.clear()
            now = self._ack_now.wait(ACK_DELAY)   # set by _ack_idle (and at shutdown)
            if self._acker_stop.is_set():
                return
            self._ack_now.clear()
            if self._acks and (now or time.monotonic() - self._acks_since >= ACK_DELAY):
                try:
                    self.flush_acks()
                except Exception:  # noqa: BLE001 - those jobs were let go: they run again
                    log.exception("acknowledging completions failed; they run again")
            elif self._acks:
                self._ack_wake.set()  # a younger buffer: look again when it has aged

    def _completed(self, job: JobRecord, body: dict[str, Any], options: dict[str, Any],
                   outcome: Outcome, accepted: bool | None) -> None:
        self._record(job, accepted, ev.JOB_COMPLETED, outcome)
        if accepted:
            after_finish(self.manager, job, body, options, State.COMPLETED)

    def _fail(self, job: JobRecord, runnable: Runnable, body: dict[str, Any],
              outcome: Outcome, options: dict[str, Any]) -> None:
        assert outcome.error is not None
        exc = outcome.error
        policy = RetryPolicy.from_options(options)
        delay = retry_in(exc, job.attempts, job.max_attempts, policy)
        text = outcome.traceback or describe(exc)
        if isinstance(exc, JobTimeout):
            text = f"timed out after {self._timeout(job, body):g}s (attempt {job.attempts})\n{text}"
        accepted = self._persist(self.driver.fail, job.token, text, delay)
        if delay is None and accepted:
            try:
                runnable.on_failure(body, exc)
            except Exception:  # noqa: BLE001 - a failing hook must not kill the worker
                log.exception("failure hook of %s raised", job.name)
        kind = ev.JOB_RETRIED if delay is not None else ev.JOB_FAILED
        if delay is not None and accepted and self.options.stop_when_empty:
            with self._lock:
                self._retrying[job.id] = time.monotonic() + delay
        self._record(job, accepted, kind, outcome, retry_in=delay)
        if delay is None and accepted:
            after_finish(self.manager, job, body, options, State.FAILED, describe(exc))

    def _dead_letter(self, job: JobRecord, reason: str) -> None:
        """Fail a job that cannot run (its reason is the job.failed event's error, logged)."""
        accepted = self._persist(self.driver.fail, job.token, reason, None)
        self._record(job, accepted, ev.JOB_FAILED, Outcome(Kind.ERROR, 0.0), error=reason)
        if accepted:
            after_finish(self.manager, job, None, {}, State.FAILED, reason)

    def _record(self, job: JobRecord, accepted: bool | None, kind: str, outcome: Outcome,
                **fields: Any) -> None:
        if self._cancelled_running and job.id in self._cancelled_running:  # (rare: no lock first)
            with self._lock:
                self._cancelled_running.discard(job.id)
                if not accepted:  # it ended by itself after seeing is_cancelled
                    self.summary.cancelled += 1
            if not accepted:
                self._emit(ev.JOB_CANCELLED, job, outcome, already_cancelled=True)
                return
        if not accepted:
            with self._lock:
                self.summary.lost += 1
            self._emit(ev.JOB_LEASE_LOST, job, outcome)
            return
        counter = _COUNTERS[kind]
        with self._lock:
            setattr(self.summary, counter, getattr(self.summary, counter) + 1)
        if kind in _RECORDED and (recorder := getattr(self.manager, "stats_recorder",
                                                      None)) is not None:
            recorder.finished(counter, job.queue_name, job.name, outcome.duration, time.time())
        if self._events.wants(kind):
            error = fields.pop("error", None) or (describe(outcome.error) if outcome.error
                                                  else None)
            self._emit(kind, job, outcome, error=error, **fields)

    def _persist(self, fn: Callable[..., T], *args: Any) -> T | None:
        """Call a settle verb, retrying through a store outage for up to one lease."""
        deadline = time.monotonic() + self.lease
        delay = 0.05
        while True:
            try:
                return fn(*args)
            except DriverUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    log.error("giving up on %s after store errors: %s (the lease will expire "
                              "and the job will be retried)", fn.__name__, exc)
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- housekeeping -----------------------------------------------------------------------------
    def _maintenance(self) -> None:
        """Recover expired leases now and then; prune finished jobs under a shared lock."""
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + self.options.maintenance_interval
        recovered = self.driver.recover_expired()
        if recovered:
            log.warning("recovered %d jobs with expired leases", len(recovered),
                        extra={"job_ids": recovered[:20]})
            for job_id in recovered:
                after_rescue(self.manager, job_id)
        if now >= self._next_prune:
            self._next_prune = now + self.options.prune_interval
            ttl = 2 * self.options.prune_interval + self.options.maintenance_interval
            if self.driver.lock_acquire("maintenance:prune", self.worker_id, ttl):
                # batches of a few thousand rows, a quarter second per pass at most: a large
                # backlog is worked off over the next passes without stalling anyone
                self.manager.prune(max_seconds=PRUNE_STEP_SECONDS)
                if self.manager.prune_pending:
                    self._next_prune = now

    def process_reserved(self, job: JobRecord) -> None:
        """Run one job this worker already holds (used by ``run_now``)."""
        self.heartbeat.hold([job.token])
        try:
            self._process(job)
        finally:
            self.flush_acks()

    def _recycle_reason(self) -> str | None:
        o = self.options
        if o.max_jobs and self.summary.processed >= o.max_jobs:
            return f"processed {self.summary.processed} jobs (max-jobs {o.max_jobs})"
        if o.max_time and time.monotonic() - self._started >= o.max_time:
            return f"ran for {o.max_time:.0f}s (max-time)"
        if o.memory_limit_mb and self.summary.processed >= self._next_trend_log:
            self._watch_memory_trend(self._rss_mb())
        return None

    def _check_memory(self) -> None:
        """After a job: over ``--memory``, stop taking jobs (the rest is handed back).

        Every job of a millisecond or more is followed by a check; shorter ones, once their
        work adds up to a millisecond (they cannot allocate much in that time; a check per
        micro-second job would cost a tenth of the no-op rate). The peak RSS (one
        ``getrusage`` call) rules the check out cheaply while it is below the limit; only then
        is the current RSS read."""
        self._unchecked_work = 0.0
        if not self.options.memory_limit_mb or self._stop.is_set():
            return
        limit = self._rss_limit
        if limit is None:
            limit = self._rss_limit = self._memory_limit()
        if peak_rss_mb() < limit:
            return
        rss = self._rss_mb()
        if rss >= limit:
            grew = rss - self.summary.rss_start_mb
            self.request_stop(f"memory {rss:.1f} MB >= limit {limit:.0f} MB "
                              f"(grew {grew:+.1f} MB over {self.summary.processed} jobs)")

    def _memory_limit(self) -> float:
        """The RSS that triggers recycling. A limit below what a fresh worker already uses
        would recycle after every job, so it is raised to the start size + 25 % (warned once)."""
        limit = float(self.options.memory_limit_mb or 0)
        floor = self.summary.rss_start_mb * 1.25
        if limit < floor and not self._warned_limit:
            self._warned_limit = True
            level = logging.WARNING if limit <= self.summary.rss_start_mb else logging.INFO
            log.log(level, "memory limit %.0f MB leaves too little room above this worker's "
                    "start size %.1f MB; recycling at %.0f MB instead (raise --memory / "
                    "WORKER_MEMORY_LIMIT)", limit, self.summary.rss_start_mb, floor)
        return max(limit, floor)

    def _watch_memory_trend(self, rss: float) -> None:
        """Warn (at most once per 1,000 jobs) when RSS keeps growing: a likely memory leak.

        The baseline is taken after the first 200 jobs: imports, caches and connection buffers
        warm up during those, and counting that growth flagged every fresh worker."""
        done = self.summary.processed
        if done < WARM_UP_JOBS or done < self._next_trend_log:
            return
        self._next_trend_log = done + 1000
        if self._trend_base is None:
            self._trend_base = (done, rss)
            return
        base_done, base_rss = self._trend_base
        grew = rss - base_rss
        per_thousand = grew / (done - base_done) * 1000
        if per_thousand > 1.0 and grew > 2.0:
            log.warning("memory grew from %.1f to %.1f MB over %d jobs (%+.1f MB per 1000 jobs); "
                        "a leak? the worker is recycled at %.0f MB", base_rss, rss,
                        done - base_done, per_thousand, self._memory_limit(),
                        extra={"worker_id": self.worker_id})

    def _hand_back(self, jobs: Sequence[JobRecord]) -> None:
        """Give reserved, unstarted jobs back to the queue (their attempt is refunded)."""
        for job in jobs:
            self._persist(self.driver.release, job.token, 0.0)
            self.heartbeat.drop(job.id)

    def _dropped_cancelled(self, jobs: Sequence[JobRecord]) -> None:
        """Buffered jobs found cancelled before they started: never run them."""
        log.info("dropped %d reserved jobs cancelled before they started", len(jobs),
                 extra={"job_ids": [job.id for job in jobs][:20]})
        with self._lock:
            self.summary.cancelled += len(jobs)
        self.heartbeat.drop_many([job.id for job in jobs])

    def _postponed_wait(self) -> float | None:
        """``--stop-when-empty`` found nothing ready: seconds to wait for a job this worker
        postponed, or scheduled for a retry, that is due soon, or None to stop (those due
        later are reported as left)."""
        now = time.monotonic()
        with self._lock:
            # due more than a second ago and still not reserved here: someone else has it
            for held in (self._postponed, self._retrying):
                for job_id in [j for j, due in held.items() if due < now - 1.0]:
                    del held[job_id]
            soon = [due for due in self._postponed.values() if due <= now + POSTPONED_WAIT]
            left = len(self._postponed) - len(soon)
            retries = [due for due in self._retrying.values() if due <= now + POSTPONED_WAIT]
            retries_left = len(self._retrying) - len(retries)
        soon += retries
        if soon:
            return min(max(min(soon) - now, 0.05), self.options.poll_interval)
        if retries_left:
            log.warning("stopping with %d jobs left retrying (due in more than %.0fs)",
                        retries_left, POSTPONED_WAIT, extra={"worker_id": self.worker_id})
        if left:
            self.summary.postponed_left = left
            log.warning("stopping with %d postponed jobs left (held back by a limit or a "
                        "condition, due in more than %.0fs)", left, POSTPONED_WAIT,
                        extra={"worker_id": self.worker_id})
        return None

    def _shutdown(self) -> None:
        self._state = "stopping"
        self._acker_stop.set()
        self._ack_now.set()
        self._ack_wake.set()
        if self._acker is not None:
            self._acker.join(timeout=self.lease)
        self.flush_acks()
        self.buffer.close()
        if self.pool is not None:
            self.pool.wait_idle(0 if self._immediate else None)
            self.pool.close()
        held = self.heartbeat.held()
        for token in held:
            self._persist(self.driver.release, token, 0.0)
        self.summary.handed_back = len(held)
        if held:
            log.warning("handed back %d running or reserved jobs", len(held),
                        extra={"worker_id": self.worker_id})
        self.heartbeat.stop()
        for mw in self.middleware:
            mw.teardown()
        self.executor.close()
        with contextlib.suppress(DriverUnavailable):
            self.presence.leave()
        self.summary.elapsed = time.monotonic() - self._started
        self.summary.rss_end_mb = self._rss_mb()
        self._emit(ev.WORKER_STOPPED, fields={"reason": self.summary.stop_reason,
                                              "handed_back": len(held)})
        log.info("worker stopped: %s", self.summary.stop_reason or "done",
                 extra={"worker_id": self.worker_id, "processed": self.summary.processed})

    def _on_cancelled(self, job_id: str) -> None:
        """Cancelled while running: tell the job, and stop it after its grace period."""
        ctx = self._running.get(job_id)
        if ctx is None or ctx.cancelled.is_set():
            return
        with self._lock:
            self._cancelled_running.add(job_id)
        ctx.cancelled.set()
        timer = threading.Timer(self.options.cancel_grace, self._stop_cancelled, args=(ctx,))
        timer.daemon = True
        timer.start()

    def _stop_cancelled(self, ctx: JobContext) -> None:
        if self._running.get(ctx.job_id) is ctx and ctx._interrupt is not None:
            log.warning("stopping cancelled job after its grace period",
                        extra={"job_id": ctx.job_id})
            ctx._interrupt(JobCancelled(f"job {ctx.job_id} was cancelled"))

    def _status(self) -> dict[str, Any]:
        return {"id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
                "queues": self.queues, "tags": list(self.options.tags), "state": self._state,
                "current_jobs": list(self._running), "processed": self.summary.processed,
                "failed": self.summary.failed, "rss_mb": round(self._rss_mb(), 1),
                "started": time.time() - (time.monotonic() - self._started),
                "last_heartbeat": time.time(), "concurrency": self.options.concurrency,
                "paused_queues": sorted(self._paused_queues)}

    def _rss_mb(self) -> float:
        return rss_mb()

    def _emit(self, kind: str, job: JobRecord | None = None, outcome: Outcome | None = None,
              error: str | None = None, **fields: Any) -> None:
        if not self._events.wants(kind):
            return
        self._events.emit(ev.Event(
            kind,
            job_id=job.id if job else None,
            name=job.name if job else None,
            queue=job.queue_name if job else None,
            attempt=job.attempts if job else None,
            duration=outcome.duration if outcome else None,
            worker_id=self.worker_id,
            error=error,
            fields=fields.pop("fields", fields),
        ))
