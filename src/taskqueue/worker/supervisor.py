"""The supervisor: runs N worker processes, replaces the ones that exit, stops them on signals.

Plain verbs, read top to bottom: ``spawn``, ``reap``, ``respawn``, ``stop``, plus two watchdogs:

* hard timeout -- each worker reports the jobs it starts and ends; a job still running
  ``kill_after`` seconds past its timeout gets its process killed (SIGKILL), and the supervisor
  settles that job with the worker's own lease token: ``retrying`` if attempts remain, else
  ``failed``, with the reason "timed out";
* liveness -- a worker whose heartbeat thread has not reported for ``unresponsive_after``
  seconds is killed and replaced.

A worker that exits after recycling (max-jobs, memory, max-time, SIGUSR1) is replaced at once;
one that dies is replaced with a growing delay. A slot whose worker exits with an error
``MAX_CRASHES`` times within ``CRASH_WINDOW`` seconds (say, an import error at start) is given
up: reported, not restarted in a hot loop. Deaths by signal (kill -9, the OOM killer) are always
retried, with the delay capped at 10 s.
Children are started with ``spawn``, so no connection or lock is ever shared across a fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

from taskqueue import __version__
from taskqueue.cluster.autoscale import Autoscaler
from taskqueue.cluster.nodes import NodeBeacon
from taskqueue.config import Settings
from taskqueue.drivers import Driver, open_driver
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State
from taskqueue.worker.outage import open_patiently
from taskqueue.worker.queues import QueuePlan, parse_queue_spec
from taskqueue.worker.recovery import Recovery, death_cause, new_suffix, worker_id_for
from taskqueue.worker.retry import RetryPolicy
from taskqueue.worker.runner import WorkerOptions, WorkerSummary

log = logging.getLogger("taskqueue.supervisor")

MAX_CRASHES = 5
CRASH_WINDOW = 60.0
EMPTY = "queue empty"


@dataclass
class Slot:
    index: int
    process: BaseProcess | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float = 0.0
    finished: bool = False
    started_at: float = 0.0
    last_beat: float = 0.0
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    kill_reason: str | None = None
    board: Any = None
    results: Any = None
    retiring: bool = False
    #: The worker id of the running child (the owner its leases name).
    worker_id: str | None = None


def _child(settings: Settings, options: WorkerOptions, apps: Sequence[str], results: Any,
           board: Any, log_setup: tuple[str, str] | None, id_suffix: str) -> None:
    """Entry point of a worker process."""
    import importlib

    from taskqueue.manager import QueueManager
    from taskqueue.observability.logging import configure, log_events
    from taskqueue.observability.stats import StatsRecorder
    from taskqueue.worker import signals
    from taskqueue.worker.runner import Worker

    if log_setup:
        configure(*log_setup)
    for spec in apps:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            importlib.import_module(name)
    status = StatusBoard(board)
    manager = open_patiently(lambda: QueueManager.from_settings(settings, migrate=False),
                             f"worker process {os.getpid()}", on_wait=status.alive)
    manager.events.subscribe(status.on_event)
    recorder = StatsRecorder.install(manager)
    log_events(manager.events)
    worker = Worker(manager, replace(options, worker_id=worker_id_for(os.getpid(), id_suffix)))
    signals.install(worker)
    summary = worker.run()
    recorder.close()  # write the last statistics while the store is still open
    manager.close()
    results.send(asdict(summary))
    results.close()


class StatusBoard:
    """A worker's running jobs and last heartbeat, in a block of shared memory.

    The worker writes its whole state (small JSON) when a job starts, when its code returns
    (its acknowledgement may be batched later) and on every heartbeat; the supervisor reads it
    for its watchdogs. No lock is shared between processes, so a worker killed mid-write cannot
    wedge anybody: a torn read is simply skipped until the next one.
    """

    def __init__(self, block: Any) -> None:
        self.block = block
        self.running: dict[str, dict[str, Any]] = {}
        self.beat = time.time()
        self._lock = threading.Lock()

    def on_event(self, event: Any) -> None:
        from taskqueue.observability import events as ev

        with self._lock:
            if event.kind == ev.JOB_STARTED:
                self.running[event.job_id] = {
                    "job_id": event.job_id, "attempt": event.attempt,
                    "deadline": time.time() + float(event.fields.get("timeout") or 0),
                    **event.fields}
            elif event.kind == ev.JOB_RAN or event.kind in _ENDS:
                if self.running.pop(event.job_id, None) is None:
                    return  # already gone: nothing to write
            elif event.kind == ev.WORKER_HEARTBEAT:
                self.beat = time.time()
            else:
                return
            self._write()

    def alive(self) -> None:
        """Say the process is alive without a heartbeat (it is waiting for the store)."""
        with self._lock:
            self.beat = time.time()
            self._write()

    def _write(self) -> None:
        raw = orjson.dumps({"beat": self.beat, "running": list(self.running.values())[:20],
                            "complete": len(self.running) <= 20})
        raw = raw[: len(self.block) - 1] + b"\0"
        ctypes.memmove(self.block, raw, len(raw))  # slice assignment copies byte by byte

    @staticmethod
    def started(block: Any) -> set[str] | None:
        """The jobs whose code was running when the worker stopped writing; None when the
        board cannot say (torn, or too many to list): then every held job counts as started."""
        state = StatusBoard.read(block) if block is not None else None
        if not _well_formed(state) or not state or not state.get("complete", False):
            return None
        return {str(j["job_id"]) for j in state["running"]}

    @staticmethod
    def read(block: Any) -> dict[str, Any] | None:
        raw = bytes(block[:]).split(b"\0", 1)[0]
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None  # torn read; try again next time


def _end_kinds() -> set[str]:
    from taskqueue.observability import events as ev

    return {ev.JOB_COMPLETED, ev.JOB_FAILED, ev.JOB_RETRIED, ev.JOB_SNOOZED, ev.JOB_POSTPONED,
            ev.JOB_CANCELLED, ev.JOB_LEASE_LOST}


_ENDS = _end_kinds()


def _well_formed(state: dict[str, Any] | None) -> bool:
    """A board snapshot the watchdogs can trust (a torn read may parse as something else)."""
    return (isinstance(state, dict) and isinstance(state.get("beat"), int | float)
            and isinstance(state.get("running"), list)
            and all(isinstance(j, dict) and "job_id" in j and "deadline" in j
                    for j in state["running"]))
BOARD_BYTES = 8192


class Supervisor:
    def __init__(self, settings: Settings, options: WorkerOptions, workers: int,
                 apps: Sequence[str] = (), log_setup: tuple[str, str] | None = None,
                 grace: float = 30.0, kill_after: float = 10.0,
                 unresponsive_after: float | None = None,
                 autoscaler: Autoscaler | None = None) -> None:
        self.settings = settings
        self.options = options
        self.slots = [Slot(i) for i in range(workers)]
        self.apps = list(apps)
        self.log_setup = log_setup
        self.grace = grace
        self.kill_after = kill_after
        lease = options.lease_seconds or settings.lease_seconds
        self.unresponsive_after = unresponsive_after or max(10.0, 2 * lease)
        self.ctx = mp.get_context("spawn")
        self.summaries: list[WorkerSummary] = []
        self.stopping = False
        self.escalation: list[tuple[float, Callable[[], None]]] = []
        self._interrupts = 0
        self._signals: list[int] = []
        self._driver: Driver | None = None
        self.autoscaler = autoscaler
        self.beacon: NodeBeacon | None = None
        self.recovery = Recovery(settings)

    # -- verbs ------------------------------------------------------------------------------------
    def spawn(self, slot: Slot) -> None:
        options = replace(self.options, worker_id=None)
        slot.board = self.ctx.Array("c", BOARD_BYTES, lock=False)
        slot.results, writer = self.ctx.Pipe(duplex=False)
        suffix = new_suffix()
        slot.process = self.ctx.Process(
            target=_child, name=f"taskqueue-worker-{slot.index}",
            args=(self.settings, options, self.apps, writer, slot.board, self.log_setup, suffix))
        slot.process.start()
        assert slot.process.pid is not None
        slot.worker_id = worker_id_for(slot.process.pid, suffix)
        writer.close()
        slot.started_at = slot.last_beat = time.monotonic()
        slot.running.clear()
        slot.kill_reason = None
        log.info("started worker process %s (pid %s)", slot.index, slot.process.pid)

    def reap(self) -> list[Slot]:
        """Slots whose process has exited since the last call."""
        exited = []
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                slot.process.join()
                self._collect(slot)
                exited.append(slot)
        return exited

    def respawn(self, slot: Slot) -> None:
        """Decide what to do with an exited slot: finish it, replace it now, or later."""
        assert slot.process is not None
        exitcode, reason = slot.process.exitcode, self._stop_reason(slot.process.pid)
        self._release_jobs(slot)
        slot.running.clear()
        slot.process = None
        if self.stopping or slot.retiring or (reason == EMPTY and exitcode == 0):
            slot.finished = True
            return
        if exitcode == 0:
            # max-jobs and max-time recycling is routine; memory recycling hints at a leak
            level = logging.WARNING if (reason or "").startswith("memory") else logging.INFO
            log.log(level, "worker %s recycled: %s; starting a fresh one", slot.index, reason)
            slot.restart_at = time.monotonic()
            return
        now = time.monotonic()
        slot.crashes = [t for t in slot.crashes if now - t < CRASH_WINDOW] + [now]
        if exitcode is not None and exitcode > 0 and len(slot.crashes) >= MAX_CRASHES:
            log.error("worker %s crashed %d times in %.0fs (exit code %s); giving up on it",
                      slot.index, len(slot.crashes), CRASH_WINDOW, exitcode)
            slot.finished = True
            return
        # killed by a signal (kill -9, OOM killer, our own watchdog) or a crash: back off
        delay = 0.0 if slot.kill_reason else min(10.0, 0.25 * 2 ** (len(slot.crashes) - 1))
        log.warning("worker %s died (exit code %s%s); restarting in %.1fs", slot.index, exitcode,
                    f", {slot.kill_reason}" if slot.kill_reason else "", delay)
        slot.restart_at = now + delay

    def _release_jobs(self, slot: Slot) -> None:
        """A child that did not exit cleanly may still hold jobs: release them now, with
        what was seen, instead of waiting for their leases (see ``worker/recovery.py``).
        Its board (shared memory, still readable) says which jobs it had started."""
        assert slot.process is not None
        if slot.process.exitcode != 0 and slot.worker_id is not None:
            self.recovery.submit(slot.worker_id, death_cause(
                slot.process.pid, slot.process.exitcode, slot.kill_reason),
                StatusBoard.started(slot.board))

    def stop(self, immediate: bool = False) -> None:
        """Stop every worker: gracefully (SIGTERM, then at once after ``grace`` seconds)."""
        if immediate:
            self._send_all(signal.SIGINT)
            time.sleep(0.05)
            self._send_all(signal.SIGINT)
            self.escalation = [(time.monotonic() + 5.0, lambda: self._send_all(signal.SIGKILL))]
        elif not self.stopping:
            self._send_all(signal.SIGTERM)
            self.escalation = [(time.monotonic() + self.grace, lambda: self.stop(immediate=True))]
        self.stopping = True

    # -- loop -------------------------------------------------------------------------------------
    def run(self, tick: Callable[[], None] | None = None) -> list[WorkerSummary]:
        self._install_signals()
        with contextlib.suppress(Exception):   # an outage is waited out by the duties below
            self.driver()   # migrates the store, once: workers open it without migrating
        for slot in self.slots:
            self.spawn(slot)
        while any(not s.finished for s in self.slots):
            self._handle_signals()
            self._cluster_duties()
            sentinels = [s.process.sentinel for s in self.slots if s.process is not None]
            wait(sentinels, timeout=0.2) if sentinels else time.sleep(0.2)
            self._read_boards()
            self._watchdogs()
            for slot in self.reap():
                self.respawn(slot)
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is None and not slot.finished and now >= slot.restart_at:
                    self.spawn(slot)
            if tick:
                tick()
        self.recovery.close()
        if self._driver is not None:
            if self.beacon is not None:
                with contextlib.suppress(Exception):
                    self.beacon.leave()
            self._driver.close()
        return self.summaries

    # -- cluster duties ---------------------------------------------------------------------------
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = open_driver(self.settings.database_url)
        return self._driver

    def _cluster_duties(self) -> None:
        """Publish this node; resize the pool when autoscaling. Store errors only delay it."""
        try:
            if self.beacon is None:
                self.beacon = NodeBeacon(self.driver(), {
                    "version": __version__, "queues": list(self.options.queues),
                    "tags": list(self.options.tags)})
            alive = sum(1 for s in self.slots if s.process is not None and not s.retiring)
            self.beacon.tick(alive, autoscale=bool(self.autoscaler))
            if self.autoscaler is not None and not self.stopping and self.autoscaler.due():
                self._autoscale(alive)
        except Exception as exc:  # noqa: BLE001 - the pool keeps running without the store
            log.warning("cluster duties skipped: %s", exc)

    def _autoscale(self, current: int) -> None:
        assert self.autoscaler is not None
        stats = self.driver().stats()
        names = set(QueuePlan(parse_queue_spec(self.options.queues),
                              tuple(self.options.tags)).names())
        depth = sum(q.counts[State.PENDING] + q.counts[State.RETRYING]
                    for name, q in stats.items() if name in names)
        done = sum(q.counts[State.COMPLETED] + q.counts[State.FAILED]
                   for name, q in stats.items() if name in names)
        decision = self.autoscaler.decide(current, depth, done)
        if decision is not None:
            target, why = decision
            log.info("autoscale: %d -> %d workers (%s)", current, target, why)
            self.scale_to(target)

    def scale_to(self, target: int) -> None:
        """Start slots up to ``target``, or retire the newest ones gracefully."""
        live = [s for s in self.slots if not s.finished and not s.retiring]
        for _ in range(target - len(live)):
            slot = Slot(len(self.slots))
            self.slots.append(slot)
            self.spawn(slot)
        for slot in sorted(live, key=lambda s: -s.index)[: max(0, len(live) - target)]:
            slot.retiring = True
            if slot.process is not None and slot.process.pid:
                os.kill(slot.process.pid, signal.SIGTERM)
            else:
                slot.finished = True

    # -- watchdogs --------------------------------------------------------------------------------
    def _watchdogs(self) -> None:
        now, wall = time.monotonic(), time.time()
        while self.escalation and self.escalation[0][0] <= now:
            _, action = self.escalation.pop(0)
            action()
        for slot in self.slots:
            proc = slot.process
            if proc is None or not proc.is_alive() or slot.kill_reason:
                continue
            late = [j for j in slot.running.values()
                    if j.get("timeout") and isinstance(j.get("deadline"), int | float)
                    and wall > j["deadline"] + self.kill_after]
            if late:
                self._kill(slot, f"job {late[0]['job_id']} passed its hard timeout")
                for job in late:
                    self._settle_timed_out(job)
            elif now - slot.last_beat > self.unresponsive_after:
                self._kill(slot, f"no heartbeat for {now - slot.last_beat:.0f}s")

    def _kill(self, slot: Slot, reason: str) -> None:
        assert slot.process is not None and slot.process.pid is not None
        log.error("killing worker %s (pid %s): %s", slot.index, slot.process.pid, reason)
        slot.kill_reason = reason
        os.kill(slot.process.pid, signal.SIGKILL)

    def _settle_timed_out(self, job: dict[str, Any]) -> None:
        """Record the hard timeout on the job with the killed worker's lease token."""
        attempt, max_attempts = int(job.get("attempt") or 1), int(job.get("max_attempts") or 1)
        retry = RetryPolicy().delay(attempt) if attempt < max_attempts else None
        reason = (f"timed out: still running {self.kill_after:.0f}s after its {job['timeout']}s "
                  f"timeout; the worker process was killed (hard timeout, attempt {attempt})")
        token = LeaseToken(job["job_id"], int(job["epoch"]))
        try:
            self.driver().fail(token, reason, retry)
        except Exception:  # noqa: BLE001 - the lease expiry recovers it anyway
            log.exception("could not record the hard timeout of %s", job["job_id"])

    def _read_boards(self) -> None:
        for slot in self.slots:
            if slot.process is None or slot.board is None:
                continue
            state = StatusBoard.read(slot.board)
            if not _well_formed(state):
                continue  # a torn read: try again next round
            assert state is not None
            slot.running = {j["job_id"]: j for j in state["running"]}
            beat_age = time.time() - float(state["beat"])
            slot.last_beat = max(slot.last_beat, time.monotonic() - beat_age)

    # -- plumbing ---------------------------------------------------------------------------------
    def _stop_reason(self, pid: int | None) -> str | None:
        for summary in reversed(self.summaries):
            if summary.worker_id.split(":")[1:2] == [str(pid)]:
                return summary.stop_reason
        return None

    def _collect(self, slot: Slot) -> None:
        """Read the summary an exited worker sent (none if it was killed)."""
        try:
            if slot.results is not None and slot.results.poll():
                self.summaries.append(WorkerSummary(**slot.results.recv()))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            if slot.results is not None:
                slot.results.close()
                slot.results = None

    def _send_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive() and slot.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signum)

    def _install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, lambda n, f: self._signals.append(n))

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGINT:
                self._interrupts += 1
                self.stop(immediate=self._interrupts > 1)
            elif signum == signal.SIGTERM:
                self.stop()
            elif signum == signal.SIGUSR1:
                log.warning("SIGUSR1: recycling all workers")
                self._send_all(signal.SIGUSR1)
            elif signum == signal.SIGUSR2:
                log.warning("SIGUSR2: toggling pause on all workers")
                self._send_all(signal.SIGUSR2)
