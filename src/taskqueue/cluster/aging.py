"""Priority aging: a job that has waited long enough gains priority, so a steady stream of
urgent work cannot starve low-priority jobs forever.

``--priority-aging SECONDS`` runs :class:`AgingService` in every worker; the one holding the
``maintenance:aging`` lock does the work, once every SECONDS: each pass raises by ``step`` the
priority of the oldest waiting jobs (up to ``batch`` of them) that have been due for longer
than SECONDS, never above ``cap`` (URGENT). A job waiting behind a stream of URGENT work
therefore reaches the top after about ``(20 - priority) x SECONDS`` and then runs before the
younger URGENT jobs (equal priority is first come, first served). The service has its own
thread, so passes keep their interval while the worker is busy with long jobs.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from taskqueue.drivers import JobFilter
from taskqueue.errors import DriverError
from taskqueue.jobs.states import State

if TYPE_CHECKING:
    from taskqueue.drivers import Driver

log = logging.getLogger("taskqueue.cluster")
LOCK = "maintenance:aging"


def age_priorities(driver: Driver, after: float, step: int = 1, cap: int = 20,
                   batch: int = 500) -> int:
    """One aging pass; returns how many jobs were bumped."""
    cutoff = driver.now() - timedelta(seconds=after)
    oldest = driver.search(JobFilter(states=(State.PENDING, State.RETRYING), newest_first=False,
                                     limit=batch))
    bumped = 0
    for job in oldest:
        if job.available_at <= cutoff and job.priority < cap:
            bumped += driver.set_priority(job.id, min(cap, job.priority + step))
    return bumped


class AgingService:
    """Aging every ``interval`` seconds, on the worker that holds the lock (it lapses after
    two intervals when that worker dies, and another takes over)."""

    def __init__(self, driver: Driver, owner: str, interval: float) -> None:
        self.driver = driver
        self.owner = owner
        self.interval = interval
        self.passes = 0  # passes run by this service (a test hook)

    def run_once(self) -> int:
        """One pass if this worker leads; returns how many jobs were bumped."""
        if not self.driver.lock_acquire(LOCK, self.owner, 2 * self.interval + 1):
            return 0
        bumped = age_priorities(self.driver, after=self.interval)
        self.passes += 1
        if bumped:
            log.info("priority aging raised %d waiting jobs", bumped)
        return bumped

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.run_once()
            except DriverError as exc:  # the store is away: try again next interval
                log.warning("priority aging skipped a pass: %s", exc)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True,
                                  name="taskqueue-priority-aging")
        thread.start()
        return thread
