"""Priority aging: a job that has waited long enough gains priority, so a steady stream of
urgent work cannot starve low-priority jobs forever.

Run by whichever worker holds the ``maintenance:aging`` lock: every pass raises by ``step`` the
priority of the oldest waiting jobs (up to ``batch`` of them) that have been due for longer than
``after`` seconds, never above ``cap``. A job's effective wait to the top is therefore bounded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from taskqueue.drivers import JobFilter
from taskqueue.jobs.states import State

if TYPE_CHECKING:
    from taskqueue.drivers import Driver


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
