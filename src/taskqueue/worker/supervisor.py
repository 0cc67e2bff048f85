"""The supervisor: runs N worker processes, replaces the ones that exit, stops them on signals.

Plain verbs, read top to bottom: ``spawn``, ``reap``, ``respawn``, ``stop``, plus two watchdogs:

* hard timeout -- each worker publishes the jobs it runs on its status board (``board.py``); a
  job still running ``kill_after`` seconds past its timeout gets its process killed (SIGKILL),
  and the supervisor settles that job with the worker's own lease token: ``retrying`` if
  attempts remain, else ``failed``, with the reason "timed out";
* liveness -- a worker whose heartbeat thread has not reported for ``unresponsive_after``
  seconds is killed and replaced.

Workers are forked by a fork server (``forkserver.py``) that has the app preloaded. A worker
that decides to leave (max-jobs, memory, max-time, SIGUSR1) says so first, and its replacement
is forked at once, while the old one still settles its last jobs. One that dies is replaced
with a growing delay. A slot whose worker exits with an error ``MAX_CRASHES`` times within
``CRASH_WINDOW`` seconds (say, an import error at start) is given up: reported, not restarted in
a hot loop; when every slot is given up the supervisor exits with ``ExitCode.GAVE_UP``. Deaths by
signal (kill -9, the OOM killer) are always retried, with the delay capped at 10 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskqueue._version import __version__
from taskqueue.cluster.autoscale import Autoscaler
from taskqueue.cluster.nodes import NodeBeacon
from taskqueue.config import Settings
from taskqueue.drivers import Driver, open_driver
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State
from taskqueue.worker import signals
from taskqueue.worker.board import Boards
from taskqueue.worker.child import NOTE, SOON
from taskqueue.worker.exit_codes import ExitCode
from taskqueue.worker.forkserver import ForkServer, ForkServerError, Recipe, id_suffix
from taskqueue.worker.orphans import ORPHANED, reap_adopted
from taskqueue.worker.outage import Abandoned, open_patiently
from taskqueue.worker.queues import QueuePlan, parse_queue_spec
from taskqueue.worker.recovery import Recovery, death_cause, worker_id_for
from taskqueue.worker.retry import RetryPolicy
from taskqueue.worker.runner import WorkerOptions, WorkerSummary

log = logging.getLogger("taskqueue.supervisor")

MAX_CRASHES = 5
CRASH_WINDOW = 60.0
EMPTY = "queue empty"
#: Fork servers that may die in a row (each takes its workers with it) before the supervisor
#: stops with ExitCode.FORK_SERVER_FAILED.
MAX_SERVER_RESTARTS = 5


@dataclass
class Child:
    """One worker process life: its pid, worker id (the owner its leases name), board region
    and fork server."""

    pid: int
    worker_id: str
    region: int
    server: ForkServer
    exitcode: int | None = None
    kill_reason: str | None = None
    last_beat: float = field(default_factory=time.monotonic)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed: int = 0

    def is_alive(self) -> bool:
        return self.exitcode is None


@dataclass
class Slot:
    index: int
    process: Child | None = None
    #: A replacement forked ahead of --max-jobs, ready and waiting for SIGCONT.
    standby: Child | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float = 0.0
    finished: bool = False
    gave_up: bool = False
    retiring: bool = False


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
        self.summaries: list[WorkerSummary] = []
        self.stopping = False
        self.escalation: list[tuple[float, Callable[[], None]]] = []
        self.exit_code = ExitCode.OK
        self.started_at = self.ended_at = 0.0
        self.leaving: list[Child] = []
        self._interrupts = 0
        #: SIGUSR2 paused this supervisor: every worker it starts from now on starts paused
        self.paused = False
        self._signals: list[int] = []
        self._driver: Driver | None = None
        self.autoscaler = autoscaler
        self.beacon: NodeBeacon | None = None
        self.recovery = Recovery(settings)
        most = max(workers, settings.max_workers, autoscaler.maximum if autoscaler else 0)
        self._capacity = 2 * most + 2  # every live process needs a region; lives overlap
        self.boards: Boards | None = None
        self.server: ForkServer | None = None
        self._old_servers: list[ForkServer] = []
        #: PID 1 (a container's init): orphans are handed to it, and it must reap them
        self._init = os.getpid() == 1 and hasattr(os, "waitid")
        self._server_deaths = 0
        self._notify_r = self._notify_w = -1

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the fork server. Call it before this process opens a store connection or
        starts a thread, so the server can be forked from it (else a fresh one is started)."""
        if self.server is not None:
            return
        self.boards = Boards(self._capacity)
        self._notify_r, self._notify_w = os.pipe()
        os.set_blocking(self._notify_r, False)
        self.server = ForkServer.start(self._recipe())

    def _recipe(self) -> Recipe:
        assert self.boards is not None
        return Recipe(self.settings, self.options, self.apps, self.log_setup, self.boards.fd,
                      self.boards.capacity, self._notify_w, self.boards)

    # -- verbs ------------------------------------------------------------------------------------
    def spawn(self, slot: Slot) -> None:
        """Start a worker for ``slot``: its standby if one is ready, else a fresh fork (if the
        fork server is gone, the slot is retried once a fresh server runs). While paused, a
        fresh fork that starts paused replaces the standby (which would start unpaused)."""
        if self.paused:
            self._retire_standby(slot)
        if slot.standby is not None:
            child, slot.standby = slot.standby, None
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGCONT)
            slot.process = child
            log.info("worker %s: standby process %s takes over", slot.index, child.pid)
            return
        slot.process = self._fork(slot)

    def _fork(self, slot: Slot, standby: bool = False) -> Child | None:
        assert self.server is not None and self.boards is not None
        region = self.boards.take()
        suffix = int.from_bytes(os.urandom(3), "little")
        try:
            pid = self.server.spawn(region, suffix, standby, paused=self.paused and not standby)
        except (ForkServerError, OSError) as exc:
            self.boards.give_back(region)
            log.warning("could not start worker %s: %s", slot.index, exc)
            self.server.gone = True
            slot.restart_at = time.monotonic() + 0.1
            return None
        log.info("started %sworker process %s (pid %s)", "standby " if standby else "",
                 slot.index, pid)
        return Child(pid, worker_id_for(pid, id_suffix(suffix)), region, self.server)

    def reap(self) -> list[Slot]:
        """Slots whose process has exited since the last call (their summaries collected)."""
        for server in self._servers(gone=True):
            for pid, code in server.poll():
                for child in self._children():
                    if child.pid == pid and child.server is server:
                        child.exitcode = code
        for child in [c for c in self.leaving if not c.is_alive()]:
            self.leaving.remove(child)
            self._collect(child)
            if child.exitcode != 0:
                log.warning("a recycled worker (pid %s) ended with exit code %s", child.pid,
                            child.exitcode)
        exited = []
        for slot in self.slots:
            if slot.standby is not None and not slot.standby.is_alive():
                self._collect(slot.standby)
                slot.standby = None
            if slot.process is not None and not slot.process.is_alive():
                self._collect(slot.process)
                exited.append(slot)
        return exited

    def respawn(self, slot: Slot) -> None:
        """Decide what to do with an exited slot: finish it, replace it now, or later."""
        assert slot.process is not None
        child, slot.process = slot.process, None
        exitcode, reason = child.exitcode, self._stop_reason(child.pid)
        if self.stopping or slot.retiring or (reason == EMPTY and exitcode == 0):
            slot.finished = True
            self._dismiss_standby(slot)
            return
        if exitcode == 0:
            self._log_recycle(slot, reason)
            slot.restart_at = time.monotonic()
            return
        now = time.monotonic()
        slot.crashes = [t for t in slot.crashes if now - t < CRASH_WINDOW] + [now]
        if exitcode is not None and exitcode > 0 and len(slot.crashes) >= MAX_CRASHES:
            log.error("worker %s crashed %d times in %.0fs (exit code %s); giving up on it",
                      slot.index, len(slot.crashes), CRASH_WINDOW, exitcode)
            slot.finished = slot.gave_up = True
            self._dismiss_standby(slot)
            return
        # killed by a signal (kill -9, OOM killer, our own watchdog) or a crash: back off
        delay = 0.0 if child.kill_reason else min(10.0, 0.25 * 2 ** (len(slot.crashes) - 1))
        # a kill of our own was logged with its reason when it was sent (_kill)
        log.log(logging.INFO if child.kill_reason else logging.WARNING,
                "worker %s died (exit code %s%s); restarting in %.1fs", slot.index, exitcode,
                f", {child.kill_reason}" if child.kill_reason else "", delay)
        slot.restart_at = now + delay

    @staticmethod
    def _dismiss_standby(slot: Slot) -> None:
        if slot.standby is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.standby.pid, signal.SIGTERM)  # it leaves without starting

    def _retire_standby(self, slot: Slot) -> None:
        """Dismiss the slot's standby, if any, and no longer count it as the replacement."""
        if slot.standby is not None:
            self._dismiss_standby(slot)
            self.leaving.append(slot.standby)
            slot.standby = None

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
    def launch(self) -> None:
        """Open the store (migrating it, once: workers open it without migrating; an outage
        at start is waited out) and fork the workers. ``run`` begins with it; a caller that
        opens connections of its own calls it first, so they are not on the first job's way."""
        if self.started_at:
            return
        # stop signals are ours before any worker exists: `taskqueue work` opens its own
        # connection between launch() and run(), and a SIGTERM then must stop gracefully
        self._install_signals()
        self.start()
        self.started_at = time.monotonic()
        try:
            open_patiently(self.driver, "taskqueue work", abandon=self.stop_requested)
        except Abandoned as exc:
            # no worker exists and no job was taken: stopping is finishing
            log.warning("%s; no worker was started", exc)
            self.stopping = True
            for slot in self.slots:
                slot.finished = True
            return
        for slot in self.slots:
            self.spawn(slot)

    def run(self, tick: Callable[[], None] | None = None) -> list[WorkerSummary]:
        try:
            self.launch()
            while any(not s.finished for s in self.slots) or self.leaving:
                self._step()
                if tick:
                    tick()
        except ForkServerError as exc:
            log.error("stopping: %s", exc)
            self.exit_code = ExitCode.FORK_SERVER_FAILED
            self._send_all(signal.SIGKILL)
        finally:
            self.ended_at = time.monotonic()
            self.close()
        if self.exit_code == ExitCode.OK and not self.stopping and any(
                s.gave_up for s in self.slots):
            self.exit_code = ExitCode.GAVE_UP
        return self.summaries

    def _step(self) -> None:
        self._handle_signals()
        self._cluster_duties()
        self._wait(0.2)
        # a signal that came during the wait is handled before the boards are read: a SIGUSR1
        # to the whole group reaches the workers too, and one that leaves at once must not
        # be replaced by its standby (the old code) before the reload dismisses it, or the
        # reload then recycles the replacement: two recycles, the second one seen in CI
        self._handle_signals()
        self._read_boards()
        self._watchdogs()
        self._check_servers()
        for slot in self.reap():
            self.respawn(slot)
        if self._init:
            reap_adopted({server.pid for server in self._servers(gone=True)})
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and not slot.finished and now >= slot.restart_at:
                self.spawn(slot)

    def _wait(self, timeout: float) -> None:
        """Sleep until a worker says it leaves, a fork server reports, or ``timeout``."""
        fds = [self._notify_r, *(s.fileno() for s in self._servers())]
        ready, _, _ = select.select(fds, [], [], timeout)
        if self._notify_r in ready:
            self._on_leaving()

    def _on_leaving(self) -> None:
        """Workers that will leave soon get a standby; workers that decided to leave are
        replaced now (by their standby, else a fresh fork), not after they exit."""
        self._handle_signals()  # a ^C reaches the workers too: stopping, not recycling
        try:
            data = os.read(self._notify_r, 4096)
        except BlockingIOError:
            return
        notes = [NOTE.unpack_from(data, i) for i in range(0, len(data) - NOTE.size + 1,
                                                            NOTE.size)]
        for region, note in notes:
            slot = next((s for s in self.slots if s.process is not None
                         and s.process.region == region and s.process.is_alive()), None)
            if slot is None or self.stopping or slot.retiring:
                continue
            if note == SOON:
                if slot.standby is None:
                    slot.standby = self._fork(slot, standby=True)
                continue
            assert self.boards is not None and slot.process is not None
            reason = (self.boards.status(region) or {}).get("leaving") or ""
            if reason in (EMPTY, ORPHANED):
                continue
            self.leaving.append(slot.process)
            slot.process = None
            self._log_recycle(slot, reason)
            self.spawn(slot)

    def elapsed(self) -> float:
        """Wall-clock seconds of this run so far (all of it once it ended)."""
        if not self.started_at:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def processed(self) -> int:
        """Jobs processed by every worker of this run, recycled ones included."""
        live = sum(c.processed for c in self._children() if c.is_alive())  # standbys: 0
        return live + sum(s.processed for s in self.summaries)

    def close(self) -> None:
        """Let the fork servers go and close the store connection (after ``run``, or instead
        of it when start-up failed after ``start``)."""
        for server in self._servers(gone=True):
            server.quit()
            server.close()
        self._old_servers.clear()
        self.recovery.close()
        if self.boards is not None:
            self.boards.close()
            self.boards = None
        for fd in (self._notify_r, self._notify_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._notify_r = self._notify_w = -1
        if self._driver is not None:
            if self.beacon is not None:
                with contextlib.suppress(Exception):
                    self.beacon.leave()
            self._driver.close()

    # -- fork servers -----------------------------------------------------------------------------
    def _servers(self, gone: bool = False) -> list[ForkServer]:
        """The fork servers: the current one, and old ones whose workers are still leaving."""
        servers = [*self._old_servers, *([self.server] if self.server else [])]
        return [s for s in servers if gone or not s.gone]

    def _check_servers(self) -> None:
        """A fork server that died took its workers with it: start a fresh one."""
        for server in self._servers(gone=True):
            if not server.gone or server.exits:
                continue  # alive, or exits still to be read
            for child in self._children():
                if child.server is server and child.is_alive():
                    child.exitcode = -signal.SIGHUP
                    child.kill_reason = child.kill_reason or "its fork server died"
            server.close()
            if server is not self.server:
                self._old_servers.remove(server)
                continue
            self._server_deaths += 1
            if self._server_deaths > MAX_SERVER_RESTARTS:
                raise ForkServerError(f"the fork server died {self._server_deaths} times")
            log.error("the fork server (pid %s) died; starting a fresh one", server.pid)
            self.server = ForkServer.fresh(self._recipe())

    def reload(self) -> None:
        """SIGUSR1: load new code (a fresh fork server), then recycle every worker onto it."""
        try:
            fresh = ForkServer.fresh(self._recipe())
        except (ForkServerError, OSError) as exc:
            log.error("SIGUSR1: the new code cannot be loaded (%s); workers keep running the "
                      "code they have", exc)
            return
        if self.server is not None:
            self.server.quit()
            self._old_servers.append(self.server)
        self.server = fresh
        log.warning("SIGUSR1: recycling all workers")
        recycle = signals.recycle_signal()
        for slot in self.slots:  # a standby runs the old code: the replacement is a fresh fork
            self._retire_standby(slot)
            # the running worker only: a standby just dismissed (SIGTERM) whose handlers were
            # not installed yet could take the recycle signal first and report a second recycle
            if slot.process is not None and slot.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, recycle)

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
            if slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signal.SIGTERM)
            else:
                slot.finished = True

    # -- watchdogs --------------------------------------------------------------------------------
    def _watchdogs(self) -> None:
        now, wall = time.monotonic(), time.time()
        while self.escalation and self.escalation[0][0] <= now:
            _, action = self.escalation.pop(0)
            action()
        for child in self._children():
            if not child.is_alive() or child.kill_reason:
                continue
            late = [j for j in child.running.values()
                    if j.get("timeout") and isinstance(j.get("deadline"), int | float)
                    and wall > j["deadline"] + self.kill_after]
            if late:
                self._kill(child, f"job {late[0]['job_id']} passed its hard timeout")
                for job in late:
                    self._settle_timed_out(job)
            elif now - child.last_beat > self.unresponsive_after:
                self._kill(child, f"no heartbeat for {now - child.last_beat:.0f}s")

    def _kill(self, child: Child, reason: str) -> None:
        log.error("killing worker process %s: %s", child.pid, reason)
        child.kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)

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
        assert self.boards is not None
        for child in self._children():
            if not child.is_alive():
                continue
            state = self.boards.status(child.region)
            if state is None:
                continue  # a torn read: try again next round
            child.running = {j["job_id"]: j for j in state["running"]}
            child.processed = int(state.get("processed") or 0)
            beat_age = time.time() - float(state["beat"])
            child.last_beat = max(child.last_beat, time.monotonic() - beat_age)

    # -- plumbing ---------------------------------------------------------------------------------
    def _children(self) -> Iterator[Child]:
        """Every worker process of this pool: the slots' and the ones leaving."""
        yield from self.leaving
        for slot in self.slots:
            yield from (c for c in (slot.process, slot.standby) if c is not None)

    def _stop_reason(self, pid: int | None) -> str | None:
        for summary in reversed(self.summaries):
            if summary.worker_id.split(":")[1:2] == [str(pid)]:
                return summary.stop_reason
        return None

    def _collect(self, child: Child) -> None:
        """Read the summary an exited worker left on its board (none if it was killed); one
        that did not exit cleanly may still hold jobs: release them now, with what was seen,
        instead of waiting for their leases (``worker/recovery.py``). Its board says which of
        them it had started."""
        assert self.boards is not None
        if child.exitcode != 0:
            self.recovery.submit(child.worker_id, death_cause(
                child.pid, child.exitcode, child.kill_reason), self.boards.started(child.region))
        summary = self.boards.summary(child.region)
        try:
            self.summaries.append(WorkerSummary(**(summary or {})))
        except TypeError:  # killed: what its board last said
            self.summaries.append(WorkerSummary(
                f"{socket.gethostname()}:{child.pid}:killed", processed=child.processed,
                stop_reason=child.kill_reason or f"exit code {child.exitcode}"))
        self.boards.give_back(child.region)

    @staticmethod
    def _log_recycle(slot: Slot, reason: str | None) -> None:
        # max-jobs and max-time recycling is routine; memory recycling hints at a leak
        level = logging.WARNING if (reason or "").startswith("memory") else logging.INFO
        log.log(level, "worker %s recycled: %s; starting a fresh one", slot.index, reason)

    def _send_all(self, signum: int) -> None:
        standbys = {id(s.standby) for s in self.slots if s.standby is not None}
        for child in self._children():
            if signum == signal.SIGUSR2 and id(child) in standbys:
                continue  # pausing is for workers that run; a standby starts as told then
            if child.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    def stop_requested(self) -> bool:
        """A stop was asked for: by :meth:`stop`, or by a SIGTERM/SIGINT not yet handled."""
        return self.stopping or any(n in (signal.SIGTERM, signal.SIGINT) for n in self._signals)

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
                self.reload()
            elif signum == signal.SIGUSR2:
                self.paused = not self.paused
                log.warning("SIGUSR2: %s all workers", "pausing" if self.paused else "resuming")
                self._send_all(signals.pause_signal(self.paused))
