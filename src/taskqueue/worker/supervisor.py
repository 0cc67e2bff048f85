"""The supervisor: runs N worker processes, replaces the ones that exit, stops them on signals.

Plain verbs, read top to bottom: ``spawn``, ``reap``, ``respawn``, ``stop``. A worker that
exits after recycling (max-jobs, memory, max-time, SIGUSR1) is replaced at once; one that
crashes is replaced with a growing delay, and a slot that crashes ``MAX_CRASHES`` times within
``CRASH_WINDOW`` seconds is given up (reported, not restarted in a hot loop). Children are
started with the ``spawn`` method, so no connection or lock is ever shared across a fork.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from taskqueue.config import Settings
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


def _child(settings: Settings, options: WorkerOptions, apps: Sequence[str],
           results: Any, log_setup: tuple[str, str] | None) -> None:
    """Entry point of a worker process."""
    import importlib

    from taskqueue.manager import QueueManager
    from taskqueue.observability.logging import configure
    from taskqueue.worker import signals
    from taskqueue.worker.runner import Worker

    if log_setup:
        configure(*log_setup)
    for spec in apps:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            importlib.import_module(name)
    manager = QueueManager.from_settings(settings)
    worker = Worker(manager, options)
    signals.install(worker)
    summary = worker.run()
    manager.close()
    results.put(asdict(summary))
    results.close()
    results.join_thread()


class Supervisor:
    def __init__(self, settings: Settings, options: WorkerOptions, workers: int,
                 apps: Sequence[str] = (), log_setup: tuple[str, str] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.slots = [Slot(i) for i in range(workers)]
        self.apps = list(apps)
        self.log_setup = log_setup
        self.ctx = mp.get_context("spawn")
        self.results: Any = self.ctx.Queue()
        self.summaries: list[WorkerSummary] = []
        self.stopping = False
        self._interrupts = 0
        self._signal_queue: list[int] = []

    # -- verbs ------------------------------------------------------------------------------------
    def spawn(self, slot: Slot) -> None:
        options = replace(self.options, worker_id=None)
        slot.process = self.ctx.Process(
            target=_child, name=f"taskqueue-worker-{slot.index}",
            args=(self.settings, options, self.apps, self.results, self.log_setup))
        slot.process.start()
        log.info("started worker process %s (pid %s)", slot.index, slot.process.pid)

    def reap(self) -> list[Slot]:
        """Slots whose process has exited since the last call."""
        exited = []
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                slot.process.join()
                exited.append(slot)
        self._collect()
        return exited

    def respawn(self, slot: Slot, reason: str | None, exitcode: int | None) -> None:
        """Decide what to do with an exited slot."""
        assert slot.process is not None
        slot.process = None
        if self.stopping or reason == EMPTY:
            slot.finished = True
            return
        if exitcode == 0:
            log.info("worker %s recycled (%s); starting a fresh one", slot.index, reason)
            slot.restart_at = time.monotonic()
            return
        now = time.monotonic()
        slot.crashes = [t for t in slot.crashes if now - t < CRASH_WINDOW] + [now]
        if len(slot.crashes) >= MAX_CRASHES:
            log.error("worker %s crashed %d times in %.0fs (exit code %s); giving up on it",
                      slot.index, len(slot.crashes), CRASH_WINDOW, exitcode)
            slot.finished = True
            return
        delay = min(30.0, 0.5 * 2 ** (len(slot.crashes) - 1))
        log.warning("worker %s died (exit code %s); restarting in %.1fs",
                    slot.index, exitcode, delay)
        slot.restart_at = now + delay

    def stop(self, immediate: bool = False) -> None:
        """Ask every worker to stop: gracefully (SIGTERM) or at once (SIGINT twice)."""
        self.stopping = True
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive() and slot.process.pid:
                import os

                if immediate:
                    os.kill(slot.process.pid, signal.SIGINT)
                    time.sleep(0.05)
                    os.kill(slot.process.pid, signal.SIGINT)
                else:
                    os.kill(slot.process.pid, signal.SIGTERM)

    def forward(self, signum: int) -> None:
        import os

        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive() and slot.process.pid:
                os.kill(slot.process.pid, signum)

    # -- loop -------------------------------------------------------------------------------------
    def run(self, tick: Callable[[], None] | None = None) -> list[WorkerSummary]:
        self._install_signals()
        for slot in self.slots:
            self.spawn(slot)
        last_reason: dict[int, str] = {}
        while any(not s.finished for s in self.slots):
            self._handle_signals()
            sentinels = [s.process.sentinel for s in self.slots if s.process is not None]
            wait(sentinels, timeout=0.2) if sentinels else time.sleep(0.2)
            for slot in self.reap():
                assert slot.process is not None
                reason = self._last_reason(slot, last_reason)
                self.respawn(slot, reason, slot.process.exitcode)
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is None and not slot.finished and now >= slot.restart_at:
                    self.spawn(slot)
            if tick:
                tick()
        self._collect()
        return self.summaries

    def _last_reason(self, slot: Slot, seen: dict[int, str]) -> str | None:
        pid = slot.process.pid if slot.process else None
        for summary in reversed(self.summaries):
            if summary.worker_id.split(":")[1:2] == [str(pid)]:
                return summary.stop_reason
        return None

    def _collect(self) -> None:
        while True:
            try:
                data = self.results.get_nowait()
            except queue.Empty:
                return
            self.summaries.append(WorkerSummary(**data))

    def _install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, lambda n, f: self._signal_queue.append(n))

    def _handle_signals(self) -> None:
        while self._signal_queue:
            signum = self._signal_queue.pop(0)
            if signum == signal.SIGINT:
                self._interrupts += 1
                self.stop(immediate=self._interrupts > 1)
            elif signum == signal.SIGTERM:
                self.stop()
            elif signum == signal.SIGUSR1:
                log.warning("SIGUSR1: recycling all workers")
                self.forward(signal.SIGUSR1)
            elif signum == signal.SIGUSR2:
                self.forward(signal.SIGUSR2)
