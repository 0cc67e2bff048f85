"""Reliability 2 (issue #11): a zombie worker.

One worker process of a live pool is frozen (SIGSTOP) while it holds jobs — one running, some
prefetched — for at least twice the lease, until its jobs have run elsewhere; then it is thawed
(SIGCONT). Its late completion must be refused by the lease epoch (an ``R`` line in the effect
ledger), it must drop the prefetched jobs it lost, and every job is accepted exactly once.
(tests/integration/test_cluster.py freezes a whole node; this freezes one process inside a pool
whose supervisor keeps running, on SQLite, PostgreSQL and Redis.)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from taskqueue import QueueManager
from tests.chaos.harness import (
    Fault,
    OrphanWatch,
    ProducerLedger,
    check,
    finished_count,
    prepare,
    push_recorded,
    read_effects,
    start_workers,
    stop,
    wait_for,
    worker_pids,
)

LEASE = 2.0
JOBS = 16


def test_frozen_worker_is_fenced_when_it_wakes(chaos_url: str, chaos_backend: str,
                                               chaos_manager: QueueManager, effects: str,
                                               tmp_path: Path) -> None:
    book = ProducerLedger()
    push_recorded(chaos_manager, prepare(chaos_manager, effects, JOBS, sleep=0.5), book)
    began = time.time()
    pool = start_workers(chaos_url, effects, "--workers=2", "--prefetch=4", lease=LEASE,
                         log=tmp_path / "workers.log")
    watch = OrphanWatch(chaos_url)
    watch.start()
    try:
        wait_for(lambda: len(worker_pids(pool.pid)) == 2, timeout=60, what="two workers")

        def running_victim() -> int | None:
            pids = set(worker_pids(pool.pid))
            open_runs: dict[int, str] = {}
            for e in read_effects(effects):
                if e.kind == "S" and e.pid in pids:
                    open_runs[e.pid] = e.job
                elif e.kind == "E" and open_runs.get(e.pid) == e.job:
                    open_runs.pop(e.pid)
            return next(iter(open_runs), None)

        wait_for(lambda: running_victim() is not None, timeout=60, what="a job running")
        victim = running_victim()
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        frozen_at = time.time()
        held = watch.held_by(victim)
        watch.fault(victim, frozen_at)
        assert held, "the frozen worker held leases"

        def ran_elsewhere() -> bool:
            again = {e.job for e in read_effects(effects)
                     if e.kind == "S" and e.pid != victim and e.at > frozen_at}
            return set(held) <= again

        # at least 2x the lease; at most 9 s (the supervisor kills a worker silent for 10 s)
        time.sleep(2 * LEASE)
        deadline = frozen_at + 9.0
        while not ran_elsewhere() and time.time() < deadline:
            time.sleep(0.1)
        os.kill(victim, signal.SIGCONT)
        thawed_at = time.time()
        wait_for(lambda: finished_count(chaos_url, book.ok) == JOBS, timeout=90,
                 what="every job finished")
        time.sleep(LEASE)  # let the zombie try (and fail) to settle what it held
    finally:
        stop(pool)
        recovery = watch.close()
    faults = [Fault("SIGSTOP 2x lease", frozen_at, until=thawed_at, pid=victim)]
    report = check("zombie (SIGSTOP >= 2x lease, SIGCONT)", chaos_backend, chaos_manager, book,
                   effects, faults, started_at=began)
    report.recovery = recovery
    effects_after = [e for e in read_effects(effects) if e.pid == victim and e.at >= thawed_at]
    rerun = {e.job for e in read_effects(effects)
             if e.kind == "S" and e.pid != victim and e.at > frozen_at} & set(held)
    refused = {e.job for e in effects_after if e.kind == "R"}
    accepted_late = {e.job for e in effects_after if e.kind == "A"} & rerun
    restarted = {e.job for e in effects_after if e.kind == "S"} & rerun
    report.extra.update(held=len(held), ran_elsewhere=len(rerun), refused_late=len(refused),
                        frozen_s=round(thawed_at - frozen_at, 1))
    report.publish()
    report.assert_safe()
    assert thawed_at - frozen_at >= 2 * LEASE
    assert rerun, "the frozen worker's jobs ran elsewhere while it was stopped"
    assert not accepted_late, "a stale completion was accepted"
    assert refused, "the zombie's late settle call was refused by the epoch"
    assert not restarted, "the zombie dropped the jobs it had lost instead of running them"
    log = (tmp_path / "workers.log").read_text()
    assert f"(pid {victim}): no heartbeat" not in log, "the zombie lived on (not killed)"
