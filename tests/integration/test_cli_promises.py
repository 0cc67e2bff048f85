"""The worker's promises, kept through ``taskqueue work`` as a user runs it, on every backend.

An outside tester's view of the speed work: the CLI runs in a subprocess, effects are counted in
a ledger file outside the store (``job_id attempt pid tag`` per run, written when a job starts),
and processes are checked by pid. Bounds are generous and only counts and orderings are
asserted: the suite runs ``-n 4`` on two loaded cores.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.integration.conftest import default_manager, ledger_lines
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.sample_tasks")

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def mgr(store_url: str) -> Iterator[QueueManager]:
    yield from default_manager(store_url)


def states(mgr: QueueManager, ids: Sequence[str]) -> Counter[State]:
    return Counter(r.state for r in mgr.search(JobFilter(ids=tuple(ids), limit=len(ids))))


def tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                living.append(p)
        except psutil.NoSuchProcess:
            pass
    return living


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for child in tree(proc.pid):
            child.kill()
        proc.kill()
        return proc.communicate()


def test_no_hoarding_priority_cancel_and_spread(mgr: QueueManager, store_url: str,
                                                ledger: str, tmp_path: Path) -> None:
    """Two worker processes: one is held by a long job; the other drains the backlog. A job
    pushed later at a higher priority starts before the older backlog is done, a cancel sent
    while the workers are busy is honoured, and nothing waits behind the long job."""
    flag = str(tmp_path / "release")
    long_id = mgr.push(t.hang_until_file.call([ledger, flag], {}), priority=6).id
    backlog = mgr.push_many([t.mark.call([ledger], {"sleep": 0.05}) for _ in range(60)])
    proc = cli("--url", store_url, "work", "--workers=2", *APP)
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 6, timeout=60)
        urgent = mgr.push(t.mark.call([ledger], {}), priority=20).id
        victim = backlog[-1]
        assert mgr.cancel(victim)
        # every job but the long one runs while the long one still holds its worker
        expected = {*backlog[:-1], urgent}
        wait_for(lambda: expected <= {line[0] for line in ledger_lines(ledger)}, timeout=60)
        Path(flag).touch()
        wait_for(lambda: mgr.get(long_id).state == State.COMPLETED, timeout=30)  # type: ignore
    finally:
        Path(flag).touch()
        _, err = stop(proc)
    assert proc.returncode == 0, err
    lines = ledger_lines(ledger)
    order = [line[0] for line in lines if line[3:] != ["end"]]
    runs = Counter(order)
    assert victim not in runs, "a cancelled pending job ran"
    assert max(runs.values()) == 1
    assert order.index(urgent) < order.index(backlog[-2]), \
        "the higher-priority job waited for the older backlog"
    assert len({line[2] for line in lines}) == 2, "jobs ran in both workers"
    assert mgr.get(victim).state == State.CANCELLED  # type: ignore[union-attr]


@pytest.mark.slow
def test_every_job_runs_once_across_recycles_and_the_summary_counts_them(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    ids = mgr.push_many([t.mark.call([ledger], {}) for _ in range(1000)])
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=50", "--stop-when-empty",
               "--json", *APP)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids), f"{len(set(ids) - set(runs))} jobs never ran"
    assert max(runs.values()) == 1, "a job ran twice without a crash"
    assert states(mgr, ids) == {State.COMPLETED: 1000}
    summary = json.loads(out)
    totals = summary["totals"]
    assert totals["processed"] == 1000 == totals["completed"], totals
    assert totals.get("failed", 0) == 0
    assert sum(w["processed"] for w in summary["workers"]) == 1000
    assert len([w for w in summary["workers"] if w["processed"]]) >= 1000 // 50


def test_sigterm_mid_backlog_is_graceful_and_leaves_no_process(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    first = mgr.push(t.mark.call([ledger], {"sleep": 2.0}), priority=9).id
    rest = mgr.push_many([t.mark.call([ledger], {"sleep": 0.05}) for _ in range(40)])
    # --max-jobs: a standby (driver open, sessions primed) waits beside the worker at SIGTERM
    proc = cli("--url", store_url, "work", "--workers=1", "--max-jobs=3", *APP)
    wait_for(lambda: any(line[0] == first for line in ledger_lines(ledger)), timeout=60)
    time.sleep(0.5)
    children = tree(proc.pid)
    assert children, "the supervisor runs its worker as a child process"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: not alive(children), timeout=10)
    assert mgr.get(first).state == State.COMPLETED  # type: ignore[union-attr]
    ran = {line[0] for line in ledger_lines(ledger)}
    counts = states(mgr, rest)
    assert State.PROCESSING not in counts, counts
    assert set(counts) <= {State.PENDING, State.COMPLETED}
    assert counts[State.PENDING] >= 1, "the backlog was not left pending"
    assert counts[State.COMPLETED] == len(ran & set(rest))


def test_a_killed_worker_child_has_its_job_run_again(mgr: QueueManager, store_url: str,
                                                     ledger: str, tmp_path: Path) -> None:
    flag = str(tmp_path / "release")
    job_id = mgr.push(t.hang_until_file.call([ledger, flag], {})).id
    proc = cli("--url", store_url, "work", "--workers=1", *APP,
               env={"TASKQUEUE_LEASE_SECONDS": "2"})
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 1, timeout=60)
        victim = int(ledger_lines(ledger)[0][2])
        psutil.Process(victim).kill()
        wait_for(lambda: len([line for line in ledger_lines(ledger) if line[3:] == ["start"]])
                 >= 2, timeout=60)
        Path(flag).touch()
        wait_for(lambda: mgr.get(job_id).state == State.COMPLETED, timeout=30)  # type: ignore
    finally:
        Path(flag).touch()
        _, err = stop(proc)
    assert proc.returncode == 0, err
    starts = [line for line in ledger_lines(ledger) if line[3:] == ["start"]]
    assert {line[0] for line in starts} == {job_id}
    assert int(starts[1][2]) != victim


def test_a_killed_supervisor_leaves_no_orphans(mgr: QueueManager, store_url: str,
                                               ledger: str) -> None:
    """SIGKILL of the supervisor alone (an OOM kill): its fork server and workers end too;
    the next ``taskqueue work`` runs what the dead run held once its leases expire, and only a
    job that had started may run twice."""
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.1}) for _ in range(120)])
    short_leases = {"TASKQUEUE_LEASE_SECONDS": "2"}
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=3", *APP, env=short_leases)
    try:
        wait_for(lambda: len({line[2] for line in ledger_lines(ledger)}) >= 1, timeout=60)
        wait_for(lambda: len(tree(proc.pid)) >= 2, timeout=30)
        wait_for(lambda: len(ledger_lines(ledger)) >= 8, timeout=60)  # recycling by now
        children = tree(proc.pid)
        proc.kill()
        proc.communicate(timeout=30)
        wait_for(lambda: not alive(children), timeout=30)
    finally:
        for child in alive(tree(proc.pid)):
            child.kill()
    started = {line[0] for line in ledger_lines(ledger)}
    again = cli("--url", store_url, "work", "--workers=2", *APP, env=short_leases)
    try:
        wait_for(lambda: states(mgr, ids) == {State.COMPLETED: len(ids)}, timeout=120)
    finally:
        _, err = stop(again)
    assert again.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids)
    assert {i for i, n in runs.items() if n > 1} <= started


def test_retries_dead_letters_timeouts_and_stats_match_the_run(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    ok = mgr.push_many([t.mark.call([ledger], {}) for _ in range(20)])
    flaky = mgr.push(t.flaky.call([ledger, 2], {})).id
    dead = [mgr.push(t.always_fails.call([ledger], {})).id for _ in range(3)]
    slow = mgr.push(t.slow.call([ledger], {})).id
    permanent = mgr.push(t.permanent.call([ledger], {})).id
    cancelled = mgr.push_many([t.mark.call([ledger], {}) for _ in range(4)])
    for victim in cancelled:
        assert mgr.cancel(victim)
    after_slow = mgr.push(t.mark.call([ledger], {}), priority=1).id
    # recycled every 4 jobs: each worker life's statistics and summary must reach the totals.
    # (Not --stop-when-empty: it leaves a retry that is not due yet, as documented.)
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=4", "--json", *APP)
    try:
        wait_for(lambda: states(mgr, [*ok, flaky, *dead, slow, permanent, after_slow])
                 == {State.COMPLETED: 22, State.FAILED: 5}, timeout=90)
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert all(runs[i] == 1 for i in [*ok, after_slow])
    assert runs[flaky] == 2 and all(runs[i] == 2 for i in dead)
    assert runs[permanent] == 1 and not any(runs[i] for i in cancelled)
    assert mgr.get(flaky).state == State.COMPLETED  # type: ignore[union-attr]
    for job_id in [*dead, slow, permanent]:
        assert mgr.get(job_id).state == State.FAILED, job_id  # type: ignore[union-attr]
    assert mgr.get(after_slow).state == State.COMPLETED  # type: ignore[union-attr]
    summary = json.loads(out)
    totals = summary["totals"]
    assert totals["completed"] == 22, totals
    assert totals["failed"] == 5, totals
    assert sum(w["completed"] for w in summary["workers"]) == 22

    if mgr.stats_recorder is not None:  # this producer's enqueues (else written within 5 s)
        mgr.stats_recorder.flush()
    stats = cli("--url", store_url, "stats", "--json")
    out, err = stats.communicate(timeout=60)
    assert stats.returncode == 0, err
    data = json.loads(out)["totals"]
    assert (data["completed"], data["failed"], data["cancelled"], data["pending"],
            data["processing"], data["retrying"]) == (22, 5, 4, 0, 0, 0), data
    hour = data["history"]["1h"]
    assert hour["enqueued"] == 31 and hour["completed"] == 22, hour
    # (a client's cancel of a pending job is not in the history: no recorder sees it)
    assert hour["failed"] == 5, hour
    assert hour["retried"] == 4, hour  # flaky once, each always_fails once


def test_an_idle_worker_uses_almost_no_cpu(mgr: QueueManager, store_url: str,
                                           ledger: str) -> None:
    # six jobs of a ten-job life: each worker has its standby waiting beside it (warming up)
    ids = mgr.push_many([t.mark.call([ledger], {}) for _ in range(12)])
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=10", *APP)
    try:
        wait_for(lambda: states(mgr, ids) == {State.COMPLETED: 12}, timeout=60)
        wait_for(lambda: len(tree(proc.pid)) >= 2, timeout=30)
        time.sleep(2.0)  # let start-up and the first housekeeping settle
        procs = [psutil.Process(proc.pid), *tree(proc.pid)]
        for p in procs:
            p.cpu_percent(None)
        time.sleep(3.0)
        used = {p.pid: p.cpu_percent(None) for p in alive(procs)}
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    assert sum(used.values()) < 10.0, used


def test_no_job_waits_behind_a_long_job_after_fast_ones_were_measured(
        mgr: QueueManager, store_url: str, ledger: str, tmp_path: Path) -> None:
    """Workers that measured instant jobs (recycled lives adopt that measure) then meet a
    long job at the head of the queue: the jobs behind it run on the other, free worker; none
    sits in the long job's worker's buffer until it ends."""
    flag = str(tmp_path / "release")
    warm = mgr.push_many([t.mark.call([ledger], {}) for _ in range(200)])
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=40", *APP)
    try:
        wait_for(lambda: states(mgr, warm) == {State.COMPLETED: 200}, timeout=90)
        long_id = mgr.push(t.hang_until_file.call([ledger, flag], {}), priority=10).id
        behind = mgr.push_many([t.mark.call([ledger], {}) for _ in range(100)])
        wait_for(lambda: set(behind) <= {line[0] for line in ledger_lines(ledger)}, timeout=60)
        assert mgr.get(long_id).state == State.PROCESSING  # type: ignore[union-attr]
        Path(flag).touch()
        wait_for(lambda: mgr.get(long_id).state == State.COMPLETED, timeout=30)  # type: ignore
    finally:
        Path(flag).touch()
        _, err = stop(proc)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger) if line[3:] != ["end"])
    assert max(runs.values()) == 1


def test_priority_and_cancel_are_honoured_across_recycles(mgr: QueueManager, store_url: str,
                                                          ledger: str) -> None:
    """Workers recycled every 10 jobs (standbys warmed up while they waited, schedules
    adopted): a job pushed at a higher priority mid-run still starts before the older backlog,
    and a pending job cancelled mid-run never runs."""
    backlog = mgr.push_many([t.mark.call([ledger], {"sleep": 0.02}) for _ in range(150)])
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=10", "--stop-when-empty",
               *APP)
    wait_for(lambda: len(ledger_lines(ledger)) >= 25, timeout=60)
    urgent = mgr.push(t.mark.call([ledger], {}), priority=20).id
    victim = backlog[-1]
    assert mgr.cancel(victim)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    order = [line[0] for line in ledger_lines(ledger)]
    runs = Counter(order)
    assert victim not in runs, "a cancelled pending job ran"
    assert set(runs) == {*backlog[:-1], urgent} and max(runs.values()) == 1
    assert order.index(urgent) < order.index(backlog[-2]), \
        "the higher-priority job waited for the older backlog"
    assert states(mgr, [*backlog[:-1], urgent]) == {State.COMPLETED: 150}


def test_grace_running_out_hands_the_job_back_without_using_an_attempt(
        mgr: QueueManager, store_url: str, ledger: str, tmp_path: Path) -> None:
    job_id = mgr.push(t.hang_until_file.call([ledger, str(tmp_path / "never")], {})).id
    rest = mgr.push_many([t.mark.call([ledger], {}) for _ in range(5)], priority=1)
    proc = cli("--url", store_url, "work", "--workers=1", "--grace=1", *APP)
    wait_for(lambda: len(ledger_lines(ledger)) >= 1, timeout=60)
    children = tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: not alive(children), timeout=10)
    record = mgr.get(job_id)
    assert record is not None and (record.state, record.attempts) == (State.PENDING, 0)
    assert states(mgr, rest) == {State.PENDING: 5}


def test_a_job_past_its_hard_timeout_is_killed_and_the_worker_goes_on(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    job_id = mgr.push(t.hang_forever.call([ledger], {}), priority=9).id
    after = mgr.push_many([t.mark.call([ledger], {}) for _ in range(5)])
    proc = cli("--url", store_url, "work", "--workers=1", "--kill-after=1", *APP,
               env={"TASKQUEUE_LEASE_SECONDS": "2"})
    try:
        wait_for(lambda: mgr.get(job_id).state == State.FAILED, timeout=60)  # type: ignore
        wait_for(lambda: states(mgr, after) == {State.COMPLETED: 5}, timeout=30)
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    starts = [line for line in ledger_lines(ledger) if line[0] == job_id and line[3:] == ["start"]]
    assert len(starts) == 2, "max_attempts=2: killed twice, then dead"


def test_threads_async_jobs_and_live_pushes_run_once_and_are_all_counted(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """--concurrency threads and an event loop, recycling, jobs pushed one by one while the
    workers run: each runs once, and the statistics history counts every attempt."""
    ids: list[str] = [*mgr.push_many([t.mark.call([ledger], {}) for _ in range(300)])]
    ids += mgr.push_many([t.async_mark.call([ledger], {}) for _ in range(200)])
    dead = mgr.push_many([t.always_fails.call([ledger], {}) for _ in range(20)])
    proc = cli("--url", store_url, "work", "--workers=2", "--concurrency=8", "--max-jobs=60",
               *APP)
    try:
        for i in range(100):
            ids.append(mgr.push(t.mark.call([ledger], {}), priority=i % 3).id)
        wait_for(lambda: states(mgr, [*ids, *dead]) == {State.COMPLETED: 600, State.FAILED: 20},
                 timeout=90)
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == {*ids, *dead}
    assert max(runs[i] for i in ids) == 1 and {runs[i] for i in dead} == {2}
    stats = cli("--url", store_url, "stats", "--json")
    out, err = stats.communicate(timeout=60)
    assert stats.returncode == 0, err
    hour = json.loads(out)["totals"]["history"]["1h"]
    assert (hour["completed"], hour["failed"], hour["retried"]) == (600, 20, 20), hour
    assert hour["run_time"]["count"] == 640, hour["run_time"]


def test_sigterm_with_full_buffers_hands_back_every_reserved_job(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """Millisecond jobs (full reservations, completions batched with the next reservation on
    stores that offer it), four threads per worker: after SIGTERM nothing is `processing`,
    exactly the jobs that ran are completed, and a second run does the rest once each."""
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.003}) for _ in range(1500)])
    proc = cli("--url", store_url, "work", "--workers=2", "--concurrency=4", "--max-jobs=200",
               *APP)
    wait_for(lambda: len(ledger_lines(ledger)) >= 300, timeout=60)
    children = tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: not alive(children), timeout=10)
    counts = states(mgr, ids)
    assert State.PROCESSING not in counts, counts
    assert counts[State.COMPLETED] == len({line[0] for line in ledger_lines(ledger)}), counts
    again = cli("--url", store_url, "work", "--workers=2", "--stop-when-empty", *APP)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids) and max(runs.values()) == 1


def test_killed_children_rerun_only_what_they_held(mgr: QueueManager, store_url: str,
                                                   ledger: str) -> None:
    """Three worker children SIGKILLed mid-backlog: every job completes, and only jobs that a
    killed child had started run twice."""
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.01}) for _ in range(400)])
    proc = cli("--url", store_url, "work", "--workers=2", "--max-jobs=40", *APP,
               env={"TASKQUEUE_LEASE_SECONDS": "3"})
    killed: set[int] = set()
    try:
        for k in range(3):
            wait_for(lambda k=k: len(ledger_lines(ledger)) >= 40 * (k + 1), timeout=60)
            victim = int(ledger_lines(ledger)[-1][2])
            try:
                psutil.Process(victim).kill()
                killed.add(victim)
            except psutil.NoSuchProcess:
                pass  # it had just been recycled
        wait_for(lambda: states(mgr, ids) == {State.COMPLETED: 400}, timeout=90)
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    lines = ledger_lines(ledger)
    runs = Counter(line[0] for line in lines)
    assert set(runs) == set(ids)
    held = {line[0] for line in lines if int(line[2]) in killed}
    assert {i for i, n in runs.items() if n > 1} <= held
