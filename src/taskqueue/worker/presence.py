"""A worker's presence in the store: a fresh status entry, and a pause switch kept there.

* **Status.** Every second a small thread of the worker publishes its entry (state, processed,
  failed, current jobs...) in the ``worker`` registry when it changed, and at least every third
  of a lease otherwise (the entry expires one lease after the last write, so a worker that
  vanished without a word disappears within a lease; its supervisor removes it at once). What
  ``taskqueue workers`` and the dashboard show is at most about a second or two old.
* **Pause.** Pausing one worker is a fact in the store (registry kind ``worker_paused``, one
  entry per paused worker id), not a signal toggling a flag in a process: ``pause_worker`` and
  ``resume_worker`` are idempotent (pausing twice leaves it paused, and says so), work for a
  worker on any host, and the worker follows the store within a second (it finishes the job
  it is running, then takes no more until resumed). SIGUSR2 to a worker flips the stored state.
  The entry goes when the worker leaves; a replacement process (a new worker id) starts
  unpaused. Pausing a queue for every worker is ``QueueManager.pause_queue``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from taskqueue.drivers import Driver

log = logging.getLogger("taskqueue.worker")

#: Registry kinds: live workers' status entries, and the workers paused by someone.
WORKERS = "worker"
PAUSED_WORKERS = "worker_paused"
#: Seconds between two looks at the store (pause switch, changed status).
REFRESH = 1.0
#: A pause entry lives until resumed or its worker leaves (100 years, like queue pauses).
_FOREVER = 100 * 365 * 86400.0
#: Status fields that change all the time and alone are no reason to publish.
_NOISE = ("last_heartbeat", "rss_mb", "started")


def paused_workers(driver: Driver) -> set[str]:
    return {str(e.get("worker_id")) for e in driver.registry_list(PAUSED_WORKERS)}


def pause_worker(driver: Driver, worker_id: str, by: str = "") -> bool:
    """Pause one worker (it finishes its running job, then takes no more). True when this
    call paused it, False when it was paused already (nothing changes)."""
    if worker_id in paused_workers(driver):
        return False
    driver.registry_put(PAUSED_WORKERS, worker_id,
                        {"worker_id": worker_id, "since": time.time(), "by": by},
                        ttl_seconds=_FOREVER)
    return True


def resume_worker(driver: Driver, worker_id: str) -> bool:
    """Let a paused worker take jobs again. True when it was paused, False otherwise."""
    if worker_id not in paused_workers(driver):
        return False
    driver.registry_remove(PAUSED_WORKERS, worker_id)
    return True


def pause_or_resume(driver: Driver, worker_id: str, action: str, by: str = "") -> str:
    """``pause_worker`` or ``resume_worker``, saying what happened (CLI, dashboard, audit)."""
    if action == "pause":
        if pause_worker(driver, worker_id, by):
            return f"worker {worker_id} paused (it takes no new job within a second)"
        return f"worker {worker_id} was already paused; nothing changed"
    if resume_worker(driver, worker_id):
        return f"worker {worker_id} resumed"
    return f"worker {worker_id} was not paused; nothing changed"


def forget_worker(driver: Driver, worker_id: str) -> None:
    """Remove a worker that is gone (stopped, or dead) from the store: entry and pause."""
    driver.registry_remove(WORKERS, worker_id)
    driver.registry_remove(PAUSED_WORKERS, worker_id)


class Presence:
    """The worker side: follows the pause switch and publishes the status entry."""

    def __init__(self, driver: Driver, worker_id: str, status: Callable[[], dict[str, Any]],
                 paused: threading.Event, ttl: float) -> None:
        self.driver = driver
        self.worker_id = worker_id
        self.status = status
        self.paused = paused
        self.ttl = ttl
        self._wanted: bool | None = None   # a pause/resume asked for here, not yet stored
        self._published: dict[str, Any] | None = None
        self._published_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._after: threading.Event | None = None
        #: Set when the thread may go on to its first round (``start(held=True)`` waits).
        self._released = threading.Event()
        #: The entry and the pause switch were removed (``leave``): not again.
        self._left = False

    # -- asked for in this process (signal handlers: only flags) ---------------------------------
    def want(self, paused: bool) -> None:
        """Pause or resume this worker: takes effect here at once and is stored next round."""
        self._wanted = paused
        (self.paused.set if paused else self.paused.clear)()

    def toggle(self) -> bool:
        """Flip this worker's pause state (SIGUSR2); return the new state."""
        self.want(not self.paused.is_set())
        return self.paused.is_set()

    # -- one round --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Store a local pause/resume, follow the stored switch, publish a changed status."""
        wanted, self._wanted = self._wanted, None
        if wanted is True:
            pause_worker(self.driver, self.worker_id, by="this process")
        elif wanted is False:
            resume_worker(self.driver, self.worker_id)
        if self._wanted is None:  # nothing new was asked for meanwhile
            stored = self.worker_id in paused_workers(self.driver)
            if stored != self.paused.is_set():
                log.warning("worker %s %s", self.worker_id, "paused" if stored else "resumed")
                (self.paused.set if stored else self.paused.clear)()
        self.publish()

    def publish(self, force: bool = False) -> None:
        status = self.status()
        status["paused"] = self.paused.is_set()
        steady = {k: v for k, v in status.items() if k not in _NOISE}
        stale = time.monotonic() - self._published_at >= self.ttl / 3
        if force or stale or steady != self._published:
            self.driver.registry_put(WORKERS, self.worker_id, status, ttl_seconds=self.ttl)
            self._published, self._published_at = steady, time.monotonic()

    def leave(self) -> None:
        """The worker is stopping: its entry and its pause switch go (once: a recycled worker
        removes them before it says it leaves, and its shutdown does not write again)."""
        self.stop()
        if not self._left:
            forget_worker(self.driver, self.worker_id)
            self._left = True

    # -- thread -----------------------------------------------------------------------------------
    def start(self, after: threading.Event | None = None, held: bool = False) -> None:
        """Publish from a thread: the first time once ``after`` is set (at most ``REFRESH``
        seconds later), then every ``REFRESH`` seconds. ``held``: not before ``release()``,
        however long that takes (a standby starts the thread while it waits for its signal,
        so that no thread start lies between the signal and its first reservation, and is
        not listed among the workers until it runs). Once only."""
        if self._thread is not None:
            return
        self._after = after
        if not held:
            self._released.set()
        self._thread = threading.Thread(target=self._run, name="taskqueue-presence",
                                        daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Let a thread started ``held`` go on (its worker runs now)."""
        self._released.set()

    def stop(self) -> None:
        self._stop.set()
        self._released.set()
        if self._after is not None:
            self._after.set()  # a thread still waiting for its first round leaves at once
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=REFRESH + 5)

    def _run(self) -> None:
        """Publish once ``after`` is set, then look again every ``REFRESH`` seconds."""
        self._released.wait()
        if self._stop.is_set():
            return
        if self._after is not None:
            self._after.wait(REFRESH)
            if self._stop.is_set():
                return
        first = True
        while first or not self._stop.wait(REFRESH):
            first = False
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the store may be down: next round
                log.debug("publishing the worker's status failed: %s", exc)
