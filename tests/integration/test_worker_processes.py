"""Real worker processes through the real CLI: concurrency, crash recovery, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.integration.conftest import ledger_lines

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "taskqueue", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore


def wait_for(predicate, timeout: float = 30, interval: float = 0.05) -> None:  # type: ignore
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


def test_two_worker_processes_never_run_a_job_twice(manager: QueueManager, sqlite_url: str,
                                                    ledger: str) -> None:
    # 5 ms jobs: a worker drains 400 no-ops before the other has started
    ids = manager.push_many([t.mark.call([ledger], {"sleep": 0.005}) for _ in range(400)])
    proc = cli("--url", sqlite_url, "work", "--workers=2", "--stop-when-empty", "--prefetch=5",
               "--app", "tests.apps.sample_tasks")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids) and max(runs.values()) == 1
    assert len({line[2] for line in ledger_lines(ledger)}) == 2, "both processes worked"
    assert manager.driver.count(JobFilter(states=(State.COMPLETED,))) == 400


def test_job_of_a_killed_worker_is_recovered_and_completed(manager: QueueManager,
                                                           sqlite_url: str, ledger: str) -> None:
    flag = ledger + ".flag"
    job_id = t.hang_until_file.delay(ledger, flag)
    proc = cli("--url", sqlite_url, "work", "--app", "tests.apps.sample_tasks",
               env={"TASKQUEUE_LEASE_SECONDS": "2"})
    try:
        wait_for(lambda: len(ledger_lines(ledger)) == 1)
        victim = int(ledger_lines(ledger)[0][2])
        os.kill(victim, signal.SIGKILL)
        Path(flag).touch()  # the next run finishes at once
        wait_for(lambda: (r := manager.get(job_id)) is not None and r.state == State.COMPLETED,
                 timeout=40)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    record = manager.get(job_id)
    assert record is not None and record.attempts == 2
    starts = [line for line in ledger_lines(ledger) if line[3] == "start"]
    assert len(starts) == 2 and starts[0][2] != starts[1][2], "rerun in a fresh process"
    assert proc.returncode == 0


def test_sigterm_finishes_the_running_job_and_hands_back_the_rest(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    ids = manager.push_many([t.mark.call([ledger], {"sleep": 0.05}) for _ in range(200)])
    proc = cli("--url", sqlite_url, "work", "--app", "tests.apps.sample_tasks", "--prefetch=10")
    wait_for(lambda: len(ledger_lines(ledger)) >= 20)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    states = Counter(manager.get(i).state for i in ids)  # type: ignore[union-attr]
    assert states[State.PROCESSING] == 0, "nothing is left stuck in processing"
    assert states[State.COMPLETED] + states[State.PENDING] == 200
    assert 20 <= states[State.COMPLETED] < 200
    ran = Counter(line[0] for line in ledger_lines(ledger))
    assert max(ran.values()) == 1
