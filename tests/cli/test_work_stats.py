"""`taskqueue work` keeps the statistics' long history folded, whatever its workers' lives."""

from __future__ import annotations

import signal

from taskqueue import QueueManager
from tests.integration.test_worker_processes import cli, wait_for


def test_work_folds_the_statistics_history_from_the_supervisor(sqlite_url: str) -> None:
    """A worker life's recorder first folds minutes into the long history 5 s after its first
    job, and with recycling (every 1,000 jobs) a life is often shorter: the supervisor's own
    recorder takes the rollup lock, also while every worker is idle (failed before: nobody
    held it, so under sustained load no minute was ever folded and the history older than an
    hour expired)."""
    from taskqueue.observability.stats_rollup import LOCK

    proc = cli("--url", sqlite_url, "work", "--sleep=0.1", "--app", "tests.apps.sample_tasks")
    manager = QueueManager.from_url(sqlite_url)

    def held_by_someone_else() -> bool:
        if manager.driver.lock_acquire(LOCK, "probe", 1.0):
            manager.driver.lock_release(LOCK, "probe")
            return False
        return True

    try:
        wait_for(held_by_someone_else, timeout=60, interval=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        manager.close()
    assert proc.returncode == 0
