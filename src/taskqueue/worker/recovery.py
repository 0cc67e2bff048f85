"""Instant recovery: the jobs of a worker process that died go back at once, with the cause.

The supervisor chooses each child's worker id before starting it (:func:`worker_id_for`: host,
pid and a random suffix, the same id the child's leases carry), so when a child exits without
handing its jobs back (killed by a signal, a crash, ``os._exit``), it knows whose leases to
release. :class:`Recovery` then calls the driver's ``recover_worker`` with what the supervisor
saw (:func:`death_cause`, e.g. "WorkerDied: worker process 4242 killed by SIGSEGV"), without
waiting for the leases to run out. Each job still held under that id whose code had started
(the worker's status board lists them) becomes ``retrying`` (due now) or ``failed`` when its
attempts are spent, with that cause; a job it had reserved but not started goes back to
``pending`` with its attempt refunded. When the board cannot say (torn, or more than it
lists), every held job counts as started, so a job that kills its process always uses up its
attempts. The owner fences it: a job reserved since by another worker carries another owner
and a newer epoch, and is never touched.

Recovery runs in a thread of the supervisor with its own store connection, so a store outage
never blocks the supervisor's loop: a request is retried with capped backoff until the store
answers (the leases expiring meanwhile recover the jobs anyway, with a generic reason).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import socket
import threading
import time

from taskqueue.client import Client
from taskqueue.config import Settings
from taskqueue.errors import PayloadError, UnknownTask
from taskqueue.jobs.body import RUN_OPTIONS
from taskqueue.jobs.definition import resolve
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.states import State
from taskqueue.worker.presence import forget_worker
from taskqueue.workflows.hooks import after_finish

log = logging.getLogger("taskqueue.supervisor")

#: Longest wait between two tries while the store is unreachable (seconds).
BACKOFF_MAX = 5.0


def new_suffix() -> str:
    return uuid7()[-6:]


def worker_id_for(pid: int, suffix: str) -> str:
    """The worker id of process ``pid`` on this host (what its leases name as their owner)."""
    return f"{socket.gethostname()}:{pid}:{suffix}"


def death_cause(pid: int | None, exitcode: int | None, killed_for: str | None = None) -> str:
    """What the supervisor saw, in words: the reason stored on the dead worker's jobs."""
    who = f"worker process {pid}" if pid else "worker process"
    if exitcode is None:
        text = f"{who} vanished"
    elif exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        text = f"{who} killed by {name}"
    else:
        text = f"{who} exited with code {exitcode}"
    if killed_for:
        text += f" (the supervisor killed it: {killed_for})"
    return f"WorkerDied: {text}"


def after_rescue(manager: Client, job_id: str) -> None:
    """A rescued job that ran out of attempts is dead: run its follow-ups (dependents,
    batches, recurring jobs)."""
    record = manager.driver.get(job_id)
    if record is None or record.state != State.FAILED:
        return
    try:
        body = manager.decode(record)
        options = {**resolve(record.name).defaults, **body.get(RUN_OPTIONS, {})}
    except (PayloadError, UnknownTask):
        body, options = None, {}
    after_finish(manager, record, body, options, State.FAILED, record.exception or "")


class Recovery:
    """Releases dead workers' jobs from a thread, retrying through store outages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._requests: queue.Queue[tuple[str, str, set[str] | None] | None] = queue.Queue()
        self._manager: Client | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, worker_id: str, cause: str, started: set[str] | None = None) -> None:
        """Release the jobs ``worker_id`` still holds: those in ``started`` (all, if None)
        fail or retry with ``cause`` as their reason, the others go back unrun."""
        self._requests.put((worker_id, cause, started))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="taskqueue-recovery",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Finish the requests already made (for at most ``timeout`` s), then stop."""
        if self._thread is not None:
            deadline = time.monotonic() + timeout
            while self._requests.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            self._stop.set()
            self._requests.put(None)
            self._thread.join(timeout=1.0)
        if self._manager is not None:
            with contextlib.suppress(Exception):
                self._manager.close()
            self._manager = None

    def _run(self) -> None:
        while not self._stop.is_set():
            request = self._requests.get()
            try:
                if request is not None:
                    self._retry(*request)
            finally:
                self._requests.task_done()

    def _retry(self, worker_id: str, cause: str, started: set[str] | None) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                self.recover(worker_id, cause, started)
                return
            except Exception as exc:  # noqa: BLE001 - the store may be down: try again
                log.warning("could not release the jobs of dead worker %s yet (%s); "
                            "retrying in %.1fs", worker_id, exc, delay)
                self._stop.wait(delay)
                delay = min(BACKOFF_MAX, delay * 2)

    def recover(self, worker_id: str, cause: str, started: set[str] | None = None) -> list[str]:
        """Release now (in the calling thread); return the job ids moved."""
        if self._manager is None:
            self._manager = Client.from_settings(self.settings)
        manager = self._manager
        moved = manager.driver.recover_worker(worker_id, cause, started)
        forget_worker(manager.driver, worker_id)
        if moved:
            log.warning("released %d jobs of dead worker %s at once: %s", len(moved),
                        worker_id, cause, extra={"job_ids": moved[:20]})
        for job_id in moved:
            try:
                after_rescue(manager, job_id)
            except Exception:  # noqa: BLE001 - a broken follow-up must not stop recovery
                log.exception("follow-ups of rescued job %s failed", job_id)
        return moved
