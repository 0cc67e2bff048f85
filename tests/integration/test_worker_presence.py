"""Fresh worker state and store-kept pause, through the real ``taskqueue work`` (issue #16,
item 12). Every backend.

``taskqueue workers`` shows what the workers are doing within about two seconds (processed
count, state), a killed worker disappears at once (its supervisor removes it; the entry's TTL
is the fallback), and ``taskqueue workers pause/resume ID`` are idempotent verbs kept in the
store: pausing twice leaves the worker paused and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import recovery_tasks as r
from tests.chaos.harness import ROOT, cli, stop
from tests.integration.conftest import ledger_lines
from tests.integration.test_worker_processes import wait_for

APP = ("--app", "tests.apps.recovery_tasks")
LEASE = {"TASKQUEUE_LEASE_SECONDS": "30"}


@contextlib.contextmanager
def _pool(url: str, ledger: str, jobs: int, sleep: float, workers: int) -> Iterator[QueueManager]:
    """``jobs`` quick jobs pushed, then ``taskqueue work`` running on them until the block ends."""
    with QueueManager.from_url(url) as manager:
        manager.push_many([r.quick.call([ledger], {"sleep": sleep}) for _ in range(jobs)])
        proc = cli("--url", url, "work", f"--workers={workers}", "--prefetch=1", *APP,
                   env=LEASE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield manager
        finally:
            stop(proc)


def _command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskqueue", "--url", url, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=os.environ.copy())


def _entries(manager: QueueManager) -> dict[str, dict[str, Any]]:
    return {str(e["id"]): e for e in manager.driver.registry_list("worker")}


def _completed(manager: QueueManager) -> int:
    return manager.driver.count(JobFilter(states=(State.COMPLETED,)))


def test_workers_show_fresh_counts_and_a_killed_worker_goes_at_once(store_url: str,
                                                                      tmp_path: Path) -> None:
    with _pool(store_url, str(tmp_path / "ledger"), 80, 0.2, workers=2) as manager:
        wait_for(lambda: _completed(manager) >= 6, timeout=60)
        done, seen_at = _completed(manager), time.monotonic()
        # the entries catch up with the store within about two seconds
        wait_for(lambda: sum(e["processed"] for e in _entries(manager).values()) >= done
                 and len(_entries(manager)) == 2, timeout=6)
        lag = time.monotonic() - seen_at
        listed = json.loads(_command(store_url, "workers", "--json").stdout)
        assert {e["state"] for e in listed} <= {"running"}, listed
        assert sum(e["processed"] for e in listed) >= done
        victim = listed[0]
        os.kill(int(victim["pid"]), signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: victim["id"] not in _entries(manager), timeout=15)
        gone_after = time.monotonic() - killed
    assert lag < 4, f"the processed count lagged {lag:.1f}s behind the store"
    assert gone_after < 10, f"the killed worker was listed {gone_after:.1f}s after (lease 30 s)"


def test_pause_and_resume_are_idempotent_verbs_kept_in_the_store(store_url: str,
                                                                  tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    with _pool(store_url, ledger, 400, 0.05, workers=1) as manager:
        wait_for(lambda: len(ledger_lines(ledger)) >= 5, timeout=60)
        (worker_id,) = _entries(manager)
        first = _command(store_url, "workers", "pause", worker_id)
        second = _command(store_url, "workers", "pause", worker_id)
        assert first.returncode == second.returncode == 0, first.stderr + second.stderr
        assert "paused" in first.stdout and "already paused" not in first.stdout
        assert "already paused" in second.stdout, second.stdout
        wait_for(lambda: _entries(manager)[worker_id]["state"] == "paused", timeout=6)
        assert _entries(manager)[worker_id]["paused"] is True
        before = len(ledger_lines(ledger))
        time.sleep(2.0)
        assert len(ledger_lines(ledger)) == before, "a paused worker takes no job"
        resumed = _command(store_url, "workers", "resume", worker_id)
        assert "resumed" in resumed.stdout and resumed.returncode == 0
        wait_for(lambda: len(ledger_lines(ledger)) > before + 5, timeout=10)
        again = _command(store_url, "workers", "resume", worker_id)
        assert "was not paused" in again.stdout
        unknown = _command(store_url, "workers", "pause", "no-such-worker")
        assert unknown.returncode == 2 and "no-such-worker" in unknown.stderr

