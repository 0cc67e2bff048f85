"""A worker process of the pool, as the fork server starts it (right after the fork).

It opens its own store connection (nothing of the kind crossed the fork), reports on its
status board, tells the supervisor the moment it decides to leave (so the replacement is
forked while this one still settles its last jobs), and ends with its parent: SIGHUP, sent by
the kernel when the fork server dies (and the fork server dies with the supervisor), stops it
at once, handing its jobs back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import time
from dataclasses import asdict, replace
from typing import Any

from taskqueue.client import Client
from taskqueue.observability.logging import configure, log_events
from taskqueue.observability.stats import StatsRecorder
from taskqueue.worker import signals
from taskqueue.worker.board import StatusPublisher
from taskqueue.worker.orphans import ORPHANED, die_with_parent
from taskqueue.worker.outage import open_patiently
from taskqueue.worker.recovery import worker_id_for
from taskqueue.worker.runner import Worker

#: What a worker says on the notify pipe: (its board region, LEAVING or SOON).
NOTE = struct.Struct("=ii")
#: It decided to stop: its replacement should start now.
LEAVING = 1
#: It will reach --max-jobs soon: a standby replacement should get ready.
SOON = 2


class SupervisedWorker(Worker):
    """A worker that says when it decides to stop, before it winds down."""

    def __init__(self, manager: Client, options: Any, board: StatusPublisher,
                 notify_fd: int) -> None:
        super().__init__(manager, options)
        self.board = self._board = board
        self.notify_fd = notify_fd

    def request_stop(self, reason: str = "stop requested") -> None:
        leaving = not self._stop.is_set()
        super().request_stop(reason)
        if leaving:
            self.board.leave(self.summary.stop_reason or reason)
            self.tell(LEAVING)

    def tell(self, note: int) -> None:
        with contextlib.suppress(OSError):  # the supervisor may be gone
            os.write(self.notify_fd, NOTE.pack(self.board.index, note))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def handover(self) -> dict[str, Any]:
        """What a later worker of this pool may take over (``adopt``): when the maintenance
        pass, the prune attempt and the paused-queue check are next due (``time.monotonic``:
        one clock for every process of the machine), the queues paused at the last check and
        the measured mean job duration."""
        return {"maintenance": self._next_maintenance, "prune": self._next_prune,
                "pause_check": self._next_pause_check, "paused": sorted(self._paused_queues),
                "duration": self._avg_duration}

    def adopt(self) -> None:
        """Take over what the pool's other workers published (newest first): a recycled
        worker's replacement does not repeat the maintenance pass, prune attempt or pause
        check done moments ago by the worker it replaces (each life would, every 1,000 jobs,
        instead of every few seconds), and sizes its first reservation from the jobs'
        measured duration instead of reserving one job first. Every time is capped at one
        interval from now, so nothing read from a board can put housekeeping off for longer."""
        now = time.monotonic()
        o = self.options
        for h in self.board.boards.handovers(self.board.index):
            with contextlib.suppress(TypeError, ValueError, KeyError):
                self._next_maintenance = max(self._next_maintenance, min(
                    float(h["maintenance"]), now + o.maintenance_interval))
                self._next_prune = max(self._next_prune, min(float(h["prune"]),
                                                             now + o.prune_interval))
                checked = min(float(h["pause_check"]), now + o.pause_check_interval)
                if checked > max(now, self._next_pause_check):
                    self._paused_queues = {str(q) for q in h["paused"]}
                    self._next_pause_check = checked
                duration = h["duration"]
                if self._avg_duration is None and isinstance(duration, int | float) \
                        and duration >= 0:
                    self._avg_duration = float(duration)
        self.board.publish()  # a standby forked from now on reads this schedule

    def _maintenance(self) -> None:
        due = self._next_maintenance
        super()._maintenance()
        if self._next_maintenance != due:
            # published at once, not at the board thread's next round: a life of 1,000 fast
            # jobs can be shorter than that round, and a standby that read the schedule from
            # before this pass would run the pass again, its writes queueing with this
            # worker's reservations
            self.board.publish()

    def wait_for_go(self, server: int) -> bool:
        """A standby: wait, connected and ready, until the supervisor sends SIGCONT (the worker
        it replaces is leaving); False if told to stop first or orphaned. While it waits it
        keeps its first round done (the maintenance pass and the paused queues, each at its
        interval), so its first step after the signal is a reservation; its background threads
        are started already (``start_threads``; the presence thread, which lists it among the
        workers, starts with ``run``)."""
        while not self.stopping:
            self.adopt()
            self.warm_up()
            self.start_threads()
            if signal.sigtimedwait({signal.SIGCONT}, 0.2) is not None:
                return True
            if os.getppid() != server:
                return False
            self.board.alive()
        return False


def run_worker(recipe: Any, region: int, server: int, suffix: str, standby: bool = False,
               paused: bool = False) -> int:
    """Run one worker on board ``region`` until it stops; its exit code. Its worker id is
    host:pid:``suffix``, which the supervisor knows too (to release its jobs if it dies).
    A ``standby`` gets ready (store open, worker built), then waits for SIGCONT to start; a
    ``paused`` worker (its supervisor was paused by SIGUSR2) takes no job until resumed."""
    # a standby's SIGCONT is blocked from before its fork (forkserver.py) until it has it
    die_with_parent(signal.SIGHUP, server)
    if recipe.log_setup:
        configure(*recipe.log_setup)
    board = StatusPublisher(recipe.boards, region)
    board.start()  # alive while it waits for an unreachable store
    manager = open_patiently(
        lambda: Client.from_settings(recipe.settings, migrate=False),
        f"worker process {os.getpid()}", on_wait=board.alive)
    board.subscribe(manager.events)
    recorder = StatsRecorder.install(manager)
    log_events(manager.events)
    worker_id = worker_id_for(os.getpid(), suffix)
    worker = SupervisedWorker(manager, replace(recipe.options, worker_id=worker_id), board,
                              recipe.notify_fd)
    board.processed = lambda: worker.summary.processed
    board.handover = worker.handover
    signals.install(worker, supervised=True)
    if standby:  # a SIGUSR1 sent to the whole group is for the workers that run: on a reload
        # the supervisor dismisses its standbys (forked from the old code) itself, and a
        # worker that was a standby moments ago is recycled by signals.RECYCLE
        recycle = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if paused:
        worker.pause()
    # what the supervisor sent since the fork, held until now (forkserver.py), is acted on
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.CONTROLS)

    signals.on_orphaned(worker, ORPHANED)
    max_jobs = recipe.options.max_jobs or 0
    if max_jobs > 1:  # say so a little before --max-jobs, so a standby is ready in time
        board.soon_at = max_jobs - max(1, min(1000, max_jobs // 2))
        board.soon = lambda: worker.tell(SOON)
    if standby:
        # the statistics flusher starts with the first recorded job otherwise: on the way of
        # the first job after the signal (it writes nothing while nothing was recorded)
        recorder.start()
        go = worker.wait_for_go(server)
        signal.signal(signal.SIGUSR1, recycle)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCONT})
        if not go:
            worker.summary.stop_reason = worker.summary.stop_reason or "standby not needed"
            worker.stop_threads()
            manager.close()
            board.finish(asdict(worker.summary))
            return 0
    worker.adopt()
    summary = worker.run()
    recorder.close()  # write the last statistics while the store is still open
    manager.close()
    board.finish(asdict(summary))
    return 0
