"""Reliability 8 (issue #11): poison jobs.

A job that calls ``os._exit(1)``, one that segfaults, one that hangs past its hard timeout and
one whose memory runs away (the pool runs under an address-space limit, so the allocation
fails instead of waking the OOM killer) each end ``failed`` after their attempts, with a reason;
the supervisor stays up, keeps every worker slot (no "giving up"), restarts no more often than
the poison demands, and ordinary jobs pushed afterwards still run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from taskqueue import QueueManager, State
from tests.apps import chaos_tasks as c
from tests.chaos.harness import (
    APP,
    QUEUE,
    ROOT,
    ProducerLedger,
    finished_count,
    prepare,
    push_recorded,
    records,
    stop,
    wait_for,
)

LEASE = 2.0
ADDRESS_SPACE = 1536 * 2**20


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_poison_jobs_fail_with_a_reason_and_the_pool_survives(sqlite_url: str,
                                                              tmp_path: Path) -> None:
    ledger = str(tmp_path / "effects.log")
    with QueueManager.from_url(sqlite_url) as manager:
        poison = {
            "exit": manager.push(c.hard_exit.call([ledger], {}), queue=QUEUE),
            "segfault": manager.push(c.segfault.call([ledger], {}), queue=QUEUE),
            "hang": manager.push(c.hang.call([ledger], {}), queue=QUEUE),
            "memory": manager.push(c.balloon.call([ledger], {}), queue=QUEUE),
        }
    log = tmp_path / "workers.log"
    proc = _start_limited(sqlite_url, log)
    began = time.monotonic()
    try:
        wait_for(lambda: finished_count(sqlite_url, list(poison.values())) == 4, timeout=150,
                 interval=0.5, what="every poison job dead-lettered")
        elapsed = time.monotonic() - began
        with QueueManager.from_url(sqlite_url) as manager:
            book = ProducerLedger()
            push_recorded(manager, prepare(manager, ledger, 20), book)
        wait_for(lambda: finished_count(sqlite_url, book.ok) == 20, timeout=60,
                 what="ordinary jobs after the poison")
        assert proc.poll() is None, "the supervisor is still up"
    finally:
        stop(proc)
    text = log.read_text()
    with QueueManager.from_url(sqlite_url) as manager:
        found = records(manager, list(poison.values()))
    reasons = {kind: found[job_id].exception or "" for kind, job_id in poison.items()}
    for kind, job_id in poison.items():
        record = found[job_id]
        assert record.state == State.FAILED, (kind, record.state)
        assert record.attempts == record.max_attempts == 2, (kind, record.attempts)
        assert reasons[kind], kind
    assert "exited with code 1" in reasons["exit"], reasons["exit"]
    assert "killed by SIGSEGV" in reasons["segfault"], reasons["segfault"]
    assert "timed out" in reasons["hang"]
    assert "MemoryError" in reasons["memory"], reasons["memory"]
    assert "giving up" not in text, "no worker slot was abandoned"
    # deaths, and kills by the supervisor (logged when sent; the death then at INFO)
    restarts = text.count("died (exit code") + text.count("killing worker process")
    assert restarts <= 8, f"{restarts} restarts for 6 process-killing attempts"
    print(f"CHAOS poison: 4 jobs dead-lettered in {elapsed:.0f}s, {restarts} worker restarts; "
          f"reasons: " + "; ".join(f"{k}: {v.splitlines()[0][:70]}" for k, v in reasons.items()))


def _start_limited(url: str, log: Path) -> subprocess.Popen[str]:
    sink = open(log, "a")  # noqa: SIM115 - closed when the process is reaped
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "taskqueue", "--url", url, "work", "--queue", QUEUE,
             "--workers=2", "--prefetch=1", "--kill-after=1", *APP], cwd=ROOT,
            env={**os.environ, "TASKQUEUE_LEASE_SECONDS": str(LEASE)}, text=True,
            stdout=subprocess.DEVNULL, stderr=sink, preexec_fn=limited)
    finally:
        sink.close()
