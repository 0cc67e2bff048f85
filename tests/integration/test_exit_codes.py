"""Exit codes of ``taskqueue work`` (issue #16 item 9), one test per row of the table in
docs/reliability.md."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from taskqueue import QueueManager
from taskqueue.worker.exit_codes import ExitCode
from tests.apps import chaos_tasks as c
from tests.apps import sample_tasks as t
from tests.integration.test_supervisor import worker_pids
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.sample_tasks")


def test_ok_when_drained_or_stopped(manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    t.mark.delay(ledger)
    proc = cli("--url", sqlite_url, "work", "--stop-when-empty", *APP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK == 0, err
    proc = cli("--url", sqlite_url, "work", *APP)
    wait_for(lambda: len(manager.driver.registry_list("worker")) == 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, err


def test_error_when_the_supervisor_fails(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-database.db"
    bad.write_bytes(b"this is not an SQLite file at all" * 10)
    proc = cli("--url", f"sqlite:///{bad}", "work", "--stop-when-empty")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.ERROR == 1, err
    assert "not a database" in err
    assert "Traceback" not in err, "a store failure is one line, not a traceback"


def test_usage_error(sqlite_url: str) -> None:
    proc = cli("--url", sqlite_url, "work", "--workers=0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.USAGE == 2, err
    assert "--workers" in err


def test_gave_up_when_every_worker_slot_crashed_too_often(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    """Each worker takes one job that ends its process with exit code 1; after five such
    crashes within a minute the only slot is given up, and the supervisor says so."""
    for _ in range(6):
        manager.push(c.hard_exit.call([ledger], {}))
    proc = cli("--url", sqlite_url, "work", "--prefetch=1", "--app", "tests.apps.chaos_tasks")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.GAVE_UP == 3, err
    assert "giving up" in err


def test_fork_server_failed_when_a_fresh_one_cannot_load_the_app(
        manager: QueueManager, sqlite_url: str, ledger: str, tmp_path: Path) -> None:
    """The fork server is killed; its replacement cannot import the app (a broken deploy)."""
    broken = tmp_path / "broken"
    proc = cli("--url", sqlite_url, "work", "--app",
               "tests.apps.sample_tasks,tests.apps.import_probe",
               env={"TQ_TEST_IMPORT_FAIL_IF": str(broken)})
    try:
        wait_for(lambda: len(worker_pids(proc.pid)) == 1, timeout=60)
        broken.touch()
        server = psutil.Process(proc.pid).children()[0]
        server.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.FORK_SERVER_FAILED == 4, err
    assert "import_probe refuses to load" in err
