"""`taskqueue work` as a production supervisor, on SQLite and a server backend (issue #4).

Each test drives the real CLI in a subprocess and counts every job id in an effect ledger kept
outside the store.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.backends import URLS
from tests.chaos.harness import worker_pids
from tests.integration.conftest import default_manager, ledger_lines
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.sample_tasks")
FAST = {"TASKQUEUE_LEASE_SECONDS": "2"}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from tests.backends import implemented_backends

    if request.param not in implemented_backends():
        pytest.skip(f"{request.param} driver not available")
    with URLS[request.param](tmp_path) as store_url:
        yield store_url


@pytest.fixture
def mgr(url: str) -> Iterator[QueueManager]:
    yield from default_manager(url)


def states(mgr: QueueManager, ids: list[str]) -> Counter[State]:
    return Counter(r.state for r in mgr.search(JobFilter(ids=tuple(ids), limit=len(ids))))


def test_workers_share_the_queue_and_never_run_a_job_twice(mgr: QueueManager, url: str,
                                                           ledger: str) -> None:
    # 5 ms jobs: a worker drains no-op jobs so fast that it could finish all 600 before the
    # other two have started, and sharing would not be observable
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.005}) for _ in range(600)])
    proc = cli("--url", url, "work", "--workers=3", "--stop-when-empty", "--prefetch=4", *APP)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids) and max(runs.values()) == 1
    assert len({line[2] for line in ledger_lines(ledger)}) >= 2
    assert states(mgr, ids) == {State.COMPLETED: 600}


def test_hanging_job_is_killed_at_its_hard_timeout_and_worker_replaced(
        mgr: QueueManager, url: str, ledger: str) -> None:
    job_id = t.hang_forever.delay(ledger)
    after = t.mark.push([ledger], priority=1)
    proc = cli("--url", url, "work", "--kill-after=1", *APP, env=FAST)
    try:
        wait_for(lambda: (r := mgr.get(job_id)) is not None and r.state == State.FAILED,
                 timeout=60)
        wait_for(lambda: mgr.get(after).state == State.COMPLETED, timeout=30)  # type: ignore
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    record = mgr.get(job_id)
    assert record is not None and record.attempts == 2
    assert "timed out" in (record.exception or "") and "hard timeout" in (record.exception or "")
    pids = {line[2] for line in ledger_lines(ledger) if line[3:] == ["start"]}
    assert len(pids) == 2, "each attempt ran in a different (replacement) process"
    # each kill is logged once, with its reason (the worker's death was a second warning)
    logged = [line for line in err.splitlines()
              if job_id in line and (" ERROR " in line or " WARNING " in line)]
    assert len(logged) == 2 and all("passed its hard timeout" in line for line in logged), logged


def test_hang_after_many_fast_jobs_is_still_seen_by_the_watchdog(
        mgr: QueueManager, url: str, ledger: str) -> None:
    """Completions are acknowledged in batches; the status board must show the job that is
    running, not the finished jobs whose acknowledgement is still buffered."""
    fast = mgr.push_many([t.mark.call([ledger], {}, priority=9) for _ in range(60)])
    job_id = t.hang_forever.delay(ledger)
    proc = cli("--url", url, "work", "--kill-after=1", *APP, env=FAST)
    try:
        wait_for(lambda: (r := mgr.get(job_id)) is not None and r.state == State.FAILED,
                 timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "passed its hard timeout" in err
    assert states(mgr, fast) == {State.COMPLETED: 60}


def test_max_jobs_and_memory_recycling_are_logged(mgr: QueueManager, url: str,
                                                  ledger: str) -> None:
    ids = mgr.push_many([t.mark.call([ledger], {}) for _ in range(30)])
    proc = cli("--url", url, "--log-level=info", "work", "--max-jobs=10", "--stop-when-empty",
               "--prefetch=1", *APP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err.count("recycled: processed 10 jobs (max-jobs 10)") >= 2
    assert len({line[2] for line in ledger_lines(ledger)}) >= 3
    assert states(mgr, ids) == {State.COMPLETED: 30}

    leak_ledger = ledger + ".leak"
    leaks = mgr.push_many([t.leak.call([leak_ledger, 40], {}) for _ in range(4)])
    proc = cli("--url", url, "work", "--memory=100", "--stop-when-empty", "--prefetch=1", *APP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "recycled: memory" in err and "MB >= limit 100 MB" in err
    assert len({line[2] for line in ledger_lines(leak_ledger)}) >= 2
    assert states(mgr, leaks) == {State.COMPLETED: 4}


def test_sigterm_mid_run_loses_nothing(mgr: QueueManager, url: str, ledger: str) -> None:
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.002}) for _ in range(2000)])
    proc = cli("--url", url, "work", "--workers=2", *APP)
    wait_for(lambda: len(ledger_lines(ledger)) >= 300, timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    counts = states(mgr, ids)
    assert counts[State.PROCESSING] == 0, "none stuck in processing"
    assert counts[State.COMPLETED] + counts[State.PENDING] == 2000, "none lost"
    assert counts[State.PENDING] > 0
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert max(runs.values()) == 1


def test_sigusr2_pauses_and_resumes(mgr: QueueManager, url: str, ledger: str) -> None:
    proc = cli("--url", url, "work", "--sleep=0.1", *APP)
    try:
        first = t.mark.delay(ledger)
        wait_for(lambda: mgr.get(first).state == State.COMPLETED)  # type: ignore[union-attr]
        proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: any(w["state"] == "paused" for w in mgr.driver.registry_list("worker")),
                 timeout=30)
        held = t.mark.delay(ledger)
        time.sleep(1.5)
        assert mgr.get(held).state == State.PENDING  # type: ignore[union-attr]
        proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: mgr.get(held).state == State.COMPLETED)  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_queue_pause_holds_jobs_on_every_worker(mgr: QueueManager, url: str,
                                                ledger: str) -> None:
    proc = cli("--url", url, "work", "--workers=2", "--queue=default,other", "--sleep=0.1", *APP)
    try:
        pause = cli("--url", url, "queue:pause", "default")
        assert pause.wait(timeout=30) == 0
        # workers re-read the paused queues every 0.5 s; forked workers can be running before
        # the pause, with a fresh "nothing paused" reading
        time.sleep(1.5)
        held = [t.mark.delay(ledger) for _ in range(5)]
        other = t.mark.push([ledger], queue="other")
        wait_for(lambda: mgr.get(other).state == State.COMPLETED)  # type: ignore[union-attr]
        time.sleep(1.0)
        assert states(mgr, held) == {State.PENDING: 5}
        resume = cli("--url", url, "queue:resume", "default")
        assert resume.wait(timeout=30) == 0
        wait_for(lambda: states(mgr, held) == {State.COMPLETED: 5})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_sigusr1_recycles_all_workers(mgr: QueueManager, url: str, ledger: str) -> None:
    proc = cli("--url", url, "work", "--workers=2", "--sleep=0.1", *APP)
    try:
        wait_for(lambda: len(worker_pids(proc.pid)) == 2)
        wait_for(lambda: len(mgr.driver.registry_list("worker")) == 2)
        before = set(worker_pids(proc.pid))
        proc.send_signal(signal.SIGUSR1)
        # a fresh fork server (a new interpreter importing the app) forks the replacements;
        # every old worker leaves (a replacement may briefly run beside the one it replaces)
        wait_for(lambda: not set(worker_pids(proc.pid)) & before
                 and len(set(worker_pids(proc.pid)) - before) >= 2, timeout=90)
        job = t.mark.delay(ledger)
        wait_for(lambda: mgr.get(job).state == State.COMPLETED)  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "SIGUSR1" in err


def test_concurrency_runs_io_bound_jobs_side_by_side(mgr: QueueManager, url: str,
                                                     ledger: str) -> None:
    ids = [t.mark.push([ledger, 0.5]) for _ in range(8)]
    ids += [t.async_mark.push([ledger, 0.5]) for _ in range(8)]
    proc = cli("--url", url, "work", "--concurrency=8", "--stop-when-empty", *APP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert states(mgr, ids) == {State.COMPLETED: 16}
    # 16 half-second jobs, 8 at a time: they overlap (the store's start and end times), which
    # holds however loaded the machine is; one at a time, no two would overlap
    spans = [(r.started_at, r.completed_at) for r in map(mgr.require, ids)]
    peak = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert peak >= 4, f"at most {peak} jobs ran at once with --concurrency=8"


def test_chaos_random_kills_lose_nothing(mgr: QueueManager, url: str, ledger: str) -> None:
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.001}) for _ in range(5000)])
    proc = cli("--url", url, "work", "--workers=3", "--prefetch=10", *APP, env=FAST)
    killed: set[str] = set()
    rng = random.Random(4)
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            if states(mgr, ids)[State.COMPLETED] == 5000:
                break
            time.sleep(rng.uniform(0.5, 2.0))
            pids = worker_pids(proc.pid)
            if pids and len(killed) < 12:
                victim = rng.choice(pids)
                os.kill(victim, signal.SIGKILL)
                killed.add(str(victim))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert states(mgr, ids) == {State.COMPLETED: 5000}, f"after {len(killed)} kills"
    runs: dict[str, list[str]] = {}
    for job_id, _attempt, pid, *_ in ledger_lines(ledger):
        runs.setdefault(job_id, []).append(pid)
    assert set(runs) == set(ids)
    duplicates = {j: pids for j, pids in runs.items() if len(pids) > 1}
    assert all(set(pids[:-1]) <= killed for pids in duplicates.values()), \
        "a job ran twice although no worker running it was killed"
    assert killed, "the chaos loop killed nobody"
