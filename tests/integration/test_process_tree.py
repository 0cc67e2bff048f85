"""The process tree of ``taskqueue work`` (issue #17 goal 3, issue #16 item 7): a supervisor, one
fork server with the app preloaded, the workers it forks -- nothing else; no store connection
crosses a fork; recycled workers do not import the app again; workers end with their
supervisor, handing their jobs back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from taskqueue import QueueManager, State
from tests.apps import sample_tasks as t
from tests.backends import URLS
from tests.integration.conftest import ledger_lines
from tests.integration.test_supervisor import states, worker_pids
from tests.integration.test_worker_processes import ROOT, cli, wait_for

APP = ("--app", "tests.apps.sample_tasks,tests.apps.import_probe")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_recycled_workers_are_forked_with_the_app_already_imported(
        manager: QueueManager, sqlite_url: str, ledger: str, tmp_path: Path) -> None:
    imports = tmp_path / "imports.log"
    ids = manager.push_many([t.mark.call([ledger], {}) for _ in range(30)])
    proc = cli("--url", sqlite_url, "work", "--max-jobs=10", "--stop-when-empty",
               "--prefetch=1", *APP, env={"TQ_TEST_IMPORT_LOG": str(imports)})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert states(manager, ids) == {State.COMPLETED: 30}
    assert len({line[2] for line in ledger_lines(ledger)}) >= 3, "workers were recycled"
    assert imports.read_text().split() == [str(proc.pid)], \
        "the app was imported once, by the supervisor; no worker imported it again"


def test_one_worker_runs_in_a_tree_of_three_processes(manager: QueueManager, sqlite_url: str,
                                                      ledger: str) -> None:
    proc = cli("--url", sqlite_url, "work", "--sleep=0.1", *APP)
    try:
        wait_for(lambda: len(manager.driver.registry_list("worker")) == 1)
        job = t.mark.delay(ledger)
        wait_for(lambda: manager.get(job).state == State.COMPLETED)  # type: ignore[union-attr]
        supervisor = psutil.Process(proc.pid)
        children = supervisor.children()
        assert len(children) == 1, f"only the fork server: {[c.cmdline() for c in children]}"
        grandchildren = children[0].children()
        assert [c.pid for c in grandchildren] == worker_pids(proc.pid)
        assert len(grandchildren) == 1, "one worker"
        tree = [supervisor, *supervisor.children(recursive=True)]
        assert len(tree) == 3
        assert not any("multiprocessing" in " ".join(p.cmdline()) for p in tree)
        assert ledger_lines(ledger)[0][2] == str(grandchildren[0].pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


@pytest.fixture(params=["redis", "postgres"])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with URLS[request.param](tmp_path) as url:
        yield url


def _sockets(pid: int) -> set[str]:
    """The socket inodes a process holds (a socket inherited across fork keeps its inode)."""
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_no_store_connection_crosses_a_fork(server_url: str, ledger: str) -> None:
    with QueueManager.from_url(server_url) as mgr:
        proc = cli("--url", server_url, "work", "--sleep=0.1", *APP)
        try:
            job = mgr.push(t.mark.call([ledger], {}))
            wait_for(lambda: mgr.get(job).state == State.COMPLETED,  # type: ignore[union-attr]
                     timeout=60)
            server = psutil.Process(proc.pid).children()[0]
            worker = psutil.Process(worker_pids(proc.pid)[0])
            assert server.net_connections(kind="inet") == [], "the fork server never connects"
            assert worker.net_connections(kind="inet"), "the worker opened its own"
            shared = _sockets(worker.pid) & _sockets(proc.pid)
            assert not shared, f"sockets shared by the supervisor and its worker: {shared}"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_workers_end_with_a_killed_supervisor_and_hand_their_jobs_back(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    long = [t.mark.push([ledger, 60]) for _ in range(2)]
    proc = cli("--url", sqlite_url, "--log-level=info", "work", "--workers=2", "--prefetch=1",
               "--sleep=0.1", *APP)
    wait_for(lambda: len(ledger_lines(ledger)) == 2, timeout=60)
    workers = worker_pids(proc.pid)
    server = psutil.Process(proc.pid).children()[0].pid
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in [*workers, server]):
        time.sleep(0.05)
    assert not [p for p in [*workers, server] if alive(p)], "all gone within 5 s"
    assert err.count("worker stopped: its supervisor is gone") == 2, "stopped, not killed"
    assert states(manager, long) == {State.PENDING: 2}, "their running jobs were handed back"
    later = t.mark.delay(ledger)
    time.sleep(2)
    assert manager.get(later).state == State.PENDING, "nobody takes jobs any more"  # type: ignore
    assert len(ledger_lines(ledger)) == 2


def test_sigusr1_loads_the_app_anew_in_a_fresh_fork_server(
        manager: QueueManager, sqlite_url: str, ledger: str, tmp_path: Path) -> None:
    """A deploy reload: new code is imported (once, by a fresh server), the workers move to it
    and the old server leaves with its last worker."""
    imports = tmp_path / "imports.log"
    proc = cli("--url", sqlite_url, "work", "--sleep=0.1", *APP,
               env={"TQ_TEST_IMPORT_LOG": str(imports)})
    try:
        wait_for(lambda: len(worker_pids(proc.pid)) == 1, timeout=60)
        old_server = psutil.Process(proc.pid).children()[0].pid
        old_worker = worker_pids(proc.pid)[0]
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: not alive(old_server) and not alive(old_worker), timeout=60)
        wait_for(lambda: len(worker_pids(proc.pid)) == 1, timeout=60)
        new_server = next(c.pid for c in psutil.Process(proc.pid).children()
                          if c.pid != old_server and alive(c.pid))
        job = t.mark.delay(ledger)
        wait_for(lambda: manager.get(job).state == State.COMPLETED)  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert imports.read_text().split() == [str(proc.pid), str(new_server)]
    assert ledger_lines(ledger)[0][2] not in (str(old_worker), str(proc.pid))


def _pid_namespaces() -> bool:
    """Whether this user can run a command as PID 1 of a new PID namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PID namespaces are Linux's")
def test_as_pid_1_the_supervisor_reaps_the_orphans_it_is_given(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    """In a container started with the exec form, `taskqueue work` is PID 1: a process left by
    a job (a shell's background command) or by a dead fork server is handed to it by the
    kernel, and each must be reaped or it stays a zombie for the container's life. Before, each
    one did. (The store plays no part: SQLite only.)"""
    if not _pid_namespaces():
        pytest.skip("unshare cannot make a PID namespace here")
    manager.push_many([t.orphan.call([ledger], {}) for _ in range(5)])
    proc = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--pid", "--fork", sys.executable, "-m",
         "taskqueue", "--url", sqlite_url, "work", "--workers=1", *APP], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(psutil.Process(proc.pid).children()) == 1, timeout=30)
        supervisor = psutil.Process(proc.pid).children()[0]
        wait_for(lambda: sum(line[0] == "orphan" for line in ledger_lines(ledger)) == 5,
                 timeout=60)

        def reaped() -> bool:  # each orphan is the supervisor's (running, or a zombie) or gone
            for child in supervisor.children():
                with contextlib.suppress(psutil.NoSuchProcess):  # reaped as we looked
                    if child.name() == "sleep":
                        return False
            return True

        wait_for(reaped, timeout=30)
        assert supervisor.is_running()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(proc.pid).children():
                child.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
