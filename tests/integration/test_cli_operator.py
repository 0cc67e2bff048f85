"""What an operator does to ``taskqueue work``, through the real CLI, on every backend.

Signals as service managers send them (systemd's stop signals every process of the unit, a
terminal's Ctrl+C the whole foreground group), a pause that must outlive the worker processes it
was sent to, a key mismatch that dead-letters jobs, and bad arguments. Counts and orderings
only, with generous bounds: the suite runs ``-n 4`` on two loaded cores.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.integration.conftest import default_manager, ledger_lines
from tests.integration.test_cli_promises import alive, tree
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.sample_tasks")

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def mgr(store_url: str) -> Iterator[QueueManager]:
    yield from default_manager(store_url)


def records(mgr: QueueManager, ids: list[str]) -> dict[str, tuple[State, int]]:
    return {r.id: (r.state, r.attempts)
            for r in mgr.search(JobFilter(ids=tuple(ids), limit=len(ids)))}


def workers(mgr: QueueManager) -> list[dict[str, object]]:
    return mgr.driver.registry_list("worker")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_whole_process_group_is_graceful(
        mgr: QueueManager, store_url: str, ledger: str, signum: signal.Signals) -> None:
    """systemd's default stop (KillMode=control-group) sends SIGTERM to the supervisor, its
    fork server and every worker at once; a terminal's Ctrl+C sends SIGINT to all of them. It
    is still the graceful stop: running jobs finish, the rest stays pending, exit 0, no process
    left. Before, a SIGTERM killed the fork server, which took its workers' running jobs with
    it (handed back unfinished) and was restarted during the stop."""
    ids = mgr.push_many([t.mark.call([ledger], {"sleep": 0.5}) for _ in range(30)])
    proc = cli("--url", store_url, "work", "--workers=2", *APP, start_new_session=True)
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 3, timeout=60)
        wait_for(lambda: len(tree(proc.pid)) >= 3, timeout=30)
        children = tree(proc.pid)
        os.killpg(proc.pid, signum)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err
    assert "fork server" not in err, err
    wait_for(lambda: not alive(children), timeout=10)
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert max(runs.values()) == 1
    found = records(mgr, ids)
    finished = {i for i, (state, _) in found.items() if state == State.COMPLETED}
    assert finished == set(runs), "a job whose code had started was not let finish"
    left = [v for i, v in found.items() if i not in finished]
    assert left and all(v == (State.PENDING, 0) for v in left), left


def test_a_paused_supervisor_stays_paused_when_its_workers_are_replaced(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """SIGUSR2 pauses the supervisor's workers; the processes that replace them (SIGUSR1's
    reload, --max-time recycling, a restart) start paused too, until a second SIGUSR2.
    Before, each replacement was a new worker id that started unpaused and took jobs."""
    proc = cli("--url", store_url, "work", "--workers=1", "--max-time=2", "--sleep=0.1", *APP)
    try:
        first = t.mark.delay(ledger)
        wait_for(lambda: records(mgr, [first])[first][0] == State.COMPLETED, timeout=60)
        proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: any(w.get("paused") for w in workers(mgr)), timeout=30)
        before = {w.get("pid") for w in workers(mgr)}
        held = t.mark.delay(ledger)
        proc.send_signal(signal.SIGUSR1)
        # two generations of replacements (the reload's, then a --max-time recycle) listed
        for _ in range(2):
            wait_for(lambda seen=set(before): any(w.get("pid") not in seen
                                                  for w in workers(mgr)), timeout=60)
            before |= {w.get("pid") for w in workers(mgr)}
        assert records(mgr, [held])[held] == (State.PENDING, 0), \
            "a replacement of a paused worker took a job"
        assert all(w.get("paused") for w in workers(mgr)), workers(mgr)
        proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: records(mgr, [held])[held][0] == State.COMPLETED, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def _key() -> str:
    return "base64:" + base64.b64encode(os.urandom(32)).decode()


def test_jobs_a_worker_cannot_decrypt_go_to_the_dead_letter_queue(
        mgr: QueueManager, store_url: str) -> None:
    """``taskqueue test`` with one ENCRYPTION_KEY, ``taskqueue work`` with another: the worker
    does not crash or retry them; each job is failed once with the reason, and the run goes
    on to a job it can read."""
    producer, worker = {"ENCRYPTION_KEY": _key()}, {"ENCRYPTION_KEY": _key()}
    push = cli("--url", store_url, "test", "--jobs=3", env=producer)
    _, err = push.communicate(timeout=60)
    assert push.returncode == 0, err
    push = cli("--url", store_url, "test", "--jobs=2", "--priority=1", env=worker)
    _, err = push.communicate(timeout=60)
    assert push.returncode == 0, err
    proc = cli("--url", store_url, "work", "--stop-when-empty", "--json", env=worker)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    totals = json.loads(out)["totals"]
    assert (totals["failed"], totals["completed"], totals["retried"]) == (3, 2, 0), totals
    dead = mgr.search(JobFilter(states=(State.FAILED,), limit=10))
    assert len(dead) == 3
    assert all(r.attempts == 1 and "DecryptionError" in (r.exception or "") for r in dead)
    for record in dead:  # one ERROR line each, with the reason (there were two)
        lines = [line for line in err.splitlines() if " ERROR " in line and record.id in line]
        assert len(lines) == 1 and "DecryptionError" in lines[0], lines


@pytest.mark.parametrize("args,message", [
    (["work", "--workers=0"], "--workers"),
    (["work", "--app=no_such_module_here"], "--app"),
    (["work", "--queue=a", "--memory=0"], "--memory"),
])
def test_bad_arguments_exit_2_with_a_message(store_url: str, args: list[str],
                                             message: str) -> None:
    proc = cli("--url", store_url, *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert message in err, err



def test_timeout_applies_to_jobs_that_set_none_and_the_reason_says_which(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """``--timeout`` is the limit of a job that did not set one (Laravel's meaning): such a
    job is stopped at it, and its dead letter says the limit it was stopped at (before: the
    job's stored default, "timed out after 60s", for a job stopped after 1 s)."""
    bare = mgr.push(t.mark.call([ledger], {"sleep": 20.0}), max_attempts=1).id
    own = mgr.push(t.mark.call([ledger], {"sleep": 1.5}), timeout=30, max_attempts=1).id
    proc = cli("--url", store_url, "work", "--timeout=1", "--stop-when-empty", *APP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stopped, kept = mgr.get(bare), mgr.get(own)
    assert stopped is not None and kept is not None
    assert stopped.state == State.FAILED
    assert (stopped.exception or "").startswith("timed out after 1s (attempt 1)"), \
        stopped.exception
    assert kept.state == State.COMPLETED, kept.exception


def test_sigusr2_to_the_whole_process_group_pauses_and_resumes(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """``systemctl kill -s USR2`` signals every process of the unit: the workers are paused
    (then resumed) once, as by a SIGUSR2 to the supervisor alone. Before, each worker flipped
    its switch itself and again when the supervisor forwarded the signal: it kept running
    while the supervisor logged "pausing all workers"."""
    proc = cli("--url", store_url, "work", "--workers=2", "--sleep=0.1", *APP,
               start_new_session=True)
    try:
        first = t.mark.delay(ledger)
        wait_for(lambda: records(mgr, [first])[first][0] == State.COMPLETED, timeout=60)
        wait_for(lambda: len(workers(mgr)) == 2, timeout=30)
        os.killpg(proc.pid, signal.SIGUSR2)
        wait_for(lambda: all(w.get("paused") for w in workers(mgr)), timeout=30)
        held = t.mark.delay(ledger)
        # the supervisor acts on its own SIGUSR2 within its loop's 0.2 s, and a worker shows
        # its state within a second: long enough to see a second flip
        time.sleep(2.0)
        assert all(w.get("paused") for w in workers(mgr)), workers(mgr)
        assert records(mgr, [held])[held] == (State.PENDING, 0)
        os.killpg(proc.pid, signal.SIGUSR2)
        wait_for(lambda: records(mgr, [held])[held][0] == State.COMPLETED, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_sigusr1_to_the_whole_process_group_recycles_each_worker_once(
        mgr: QueueManager, store_url: str, ledger: str) -> None:
    """``systemctl kill -s USR1`` (or ``kill -USR1 -PGID``) reaches the supervisor, the fork
    server, the worker and the standby that is ready to replace it (``--max-jobs``): the worker
    is recycled once, onto the new code. Before, the standby (forked from the old code) was
    told to leave too, took over all the same, and left at once: the slot was recycled twice."""
    proc = cli("--url", store_url, "--log-level", "info", "work", "--workers=1",
               "--max-jobs=20", "--json", *APP, start_new_session=True)
    try:
        ids = mgr.push_many([t.mark.call([ledger], {}) for _ in range(14)])  # a standby after 10
        wait_for(lambda: all(state == State.COMPLETED
                             for state, _ in records(mgr, ids).values()), timeout=60)
        # the supervisor, the fork server, the worker and its standby
        wait_for(lambda: len(alive(tree(proc.pid))) >= 3, timeout=30)
        before = {p.pid for p in alive(tree(proc.pid))}
        os.killpg(proc.pid, signal.SIGUSR1)
        wait_for(lambda: any(w.get("pid") not in before for w in workers(mgr)), timeout=60)
        time.sleep(2.0)  # a second recycle follows the first within a second
        after = t.mark.delay(ledger)
        wait_for(lambda: records(mgr, [after])[after][0] == State.COMPLETED, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reasons = [w["stop_reason"] for w in json.loads(out)["workers"]]
    recycled = [r for r in reasons if "SIGUSR1" in (r or "")]
    assert len(recycled) == 1, reasons
