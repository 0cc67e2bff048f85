"""A queue's concurrency limit holds across threads and processes of real `taskqueue work`
workers, on every server backend.

Each job adds itself to a running count kept in a file under an exclusive lock (an exact
counter shared by every process and thread on this machine) and records the peak; the limit
holds when that peak never passes it. The first jobs of a fresh worker are the ones a racy
limit cache lets through, so the test starts the workers after the jobs are queued.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from taskqueue.scheduling import set_queue_limit
from tests.apps import schedule_tasks as t
from tests.backends import URLS

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 2


@pytest.fixture(params=["postgres", "mysql", "redis", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with URLS[str(request.param)](tmp_path) as store:
        yield store


def work(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskqueue", "--url", url, "work", "--queue", "capped",
         "--app", "tests.apps.schedule_tasks", "--sleep", "0.05", *args],
        cwd=ROOT, env=dict(os.environ), text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_queue_concurrency_limit_holds_over_threads_and_processes(url: str,
                                                                  tmp_path: Path) -> None:
    counter = tmp_path / "running"
    with QueueManager.from_url(url) as manager:
        set_queue_limit(manager.driver, "capped", concurrency=LIMIT)
        ids = manager.push_many([t.counted.call([str(counter), 0.15], {}, queue="capped")
                                 for _ in range(12)])
        # 4 threads in one process, and 2 processes of 3 threads: 10 job threads in all
        procs = [work(url, "--concurrency", "4"), work(url, "--workers", "2", "--concurrency", "3")]
        try:
            deadline = time.monotonic() + 120
            done = JobFilter(ids=tuple(ids), states=(State.COMPLETED,))
            while manager.driver.count(done) < len(ids):
                assert time.monotonic() < deadline, "the jobs did not all complete in time"
                assert all(p.poll() is None for p in procs), "a worker process exited"
                time.sleep(0.2)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            errors = [proc.communicate(timeout=60)[1] for proc in procs]
        running, peak = (int(n) for n in counter.read_text().split())
        assert running == 0
        assert peak == LIMIT, f"{peak} jobs ran at once under concurrency={LIMIT}:\n{errors}"
        assert all(manager.require(i).attempts == 1 for i in ids), "held jobs used no attempt"
