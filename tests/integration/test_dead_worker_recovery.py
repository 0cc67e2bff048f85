"""Instant recovery through the real ``taskqueue work`` (issue #16, items 8 and 19).

When a worker process dies, its supervisor knows the worker id its leases carry and releases
its jobs at once with what it saw (signal or exit code), instead of leaving them to a 30 s lease
and a generic "LeaseExpired". Every backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from taskqueue import QueueManager, State
from tests.apps import recovery_tasks as r
from tests.integration.conftest import ledger_lines
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.recovery_tasks")
#: The default lease; recovery must not wait for it.
LEASE = {"TASKQUEUE_LEASE_SECONDS": "30"}


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return err


def _state(url: str, job_id: str) -> State | None:
    with QueueManager.from_url(url) as manager:
        record = manager.get(job_id)
    return record.state if record else None


def test_a_killed_workers_job_runs_again_well_within_the_lease(store_url: str,
                                                               tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    with QueueManager.from_url(store_url) as manager:
        job_id = str(manager.push(r.linger.call([ledger], {})))
    proc = cli("--url", store_url, "--log-level", "warning", "work", "--workers=2", *APP,
               env=LEASE)
    try:
        wait_for(lambda: len(ledger_lines(ledger)) == 1, timeout=60)
        victim = int(ledger_lines(ledger)[0][2])
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: len(ledger_lines(ledger)) >= 2, timeout=25)
        rerun_after = time.monotonic() - killed
        wait_for(lambda: _state(store_url, job_id) == State.COMPLETED, timeout=20)
    finally:
        err = _stop(proc)
    assert rerun_after < 15, f"re-run {rerun_after:.1f}s after the kill (lease 30 s)"
    first, second = ledger_lines(ledger)[:2]
    assert (first[1], second[1]) == ("1", "2") and second[2] != str(victim)
    assert "released 1 jobs of dead worker" in err, err[-3000:]
    assert "killed by SIGKILL" in err


def test_a_job_that_kills_its_process_fails_with_what_the_supervisor_saw(store_url: str,
                                                                         tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    with QueueManager.from_url(store_url) as manager:
        exits = str(manager.push(r.die.call([ledger, "exit"], {})))
        segfaults = str(manager.push(r.die.call([ledger, "segfault"], {})))
    proc = cli("--url", store_url, "--log-level", "warning", "work", "--workers=2", *APP,
               env=LEASE)
    try:
        # two attempts each; a 30 s lease would need minutes
        wait_for(lambda: {_state(store_url, exits), _state(store_url, segfaults)}
                 == {State.FAILED}, timeout=60, interval=0.3)
    finally:
        err = _stop(proc)
    with QueueManager.from_url(store_url) as manager:
        exited, crashed = manager.require(exits), manager.require(segfaults)
    assert exited.attempts == crashed.attempts == 2
    assert "exited with code 3" in (exited.exception or ""), exited.exception
    assert "killed by SIGSEGV" in (crashed.exception or ""), crashed.exception
    for record in (exited, crashed):
        assert (record.exception or "").startswith("WorkerDied: worker process ")
        assert "(attempt 2 of 2)" in (record.exception or "")
        assert "LeaseExpired" not in (record.exception or "")
    assert "giving up" not in err
