"""`taskqueue work --scheduler` runs the scheduler beside the workers."""

from __future__ import annotations

import json
import signal

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.integration.test_worker_processes import cli, wait_for


def test_work_with_scheduler_enqueues_and_runs_scheduled_jobs(sqlite_url: str,
                                                              tmp_path) -> None:  # type: ignore
    ledger = str(tmp_path / "ledger.txt")
    add = cli("--url", sqlite_url, "schedule:add", "tick", "--task", "tests.mark",
              "--cron", "* * * * * *", "--args", json.dumps([ledger]))
    assert add.wait(timeout=60) == 0, add.stderr.read() if add.stderr else ""
    proc = cli("--url", sqlite_url, "work", "--scheduler", "--sleep=0.1",
               "--app", "tests.apps.sample_tasks")
    manager = QueueManager.from_url(sqlite_url)
    try:
        wait_for(lambda: manager.driver.count(JobFilter(states=(State.COMPLETED,))) >= 3,
                 timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    names = {r.name for r in manager.search(JobFilter(states=(State.COMPLETED,)))}
    manager.close()
    assert names == {"tests.mark"}
    assert proc.returncode == 0
