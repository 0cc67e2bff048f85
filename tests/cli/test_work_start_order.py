"""``taskqueue work`` forks its workers before the supervisor process opens the connection of
its own (progress, metrics, the summary): that connection, a store round trip or two and on
MySQL a migration check under a named lock, is not on the first job's way (issue #17 goal 3).
Ordering only, no timing; the command runs in a fresh interpreter, as it forks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import taskqueue.cli.work as work
from taskqueue.cli import cli
from taskqueue.worker.supervisor import Supervisor

order = []
spawn, from_settings = Supervisor.spawn, work.QueueManager.from_settings.__func__

def spawning(self, slot):
    import signal
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        order.append("SIGTERM not handled yet")
    order.append("worker forked")
    return spawn(self, slot)

def opening(cls, *args, **kwargs):
    order.append("supervisor process connection")
    if kwargs.get("migrate", True):
        order.append("its schema checked again")
    return from_settings(cls, *args, **kwargs)

ready_count = work._ready_count

def counting(*args):
    order.append("bar total counted")
    return ready_count(*args)

Supervisor.spawn = spawning
work.QueueManager.from_settings = classmethod(opening)
work._ready_count = counting
cli.main(["--url", sys.argv[1], "work", "--stop-when-empty", *sys.argv[2:]],
         standalone_mode=False)
print(json.dumps(order))
"""


def run_work(url: str, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, url, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    order: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return order


def test_work_forks_the_workers_before_opening_its_own_connection(tmp_path: Path) -> None:
    order = run_work(f"sqlite:///{tmp_path / 'q.db'}", "--json")
    assert order[:2] == ["worker forked", "supervisor process connection"], order


def test_the_progress_bar_counts_its_total_before_any_worker_starts(tmp_path: Path) -> None:
    """Else jobs done meanwhile would be missing from the total (done > total at the end)."""
    order = run_work(f"sqlite:///{tmp_path / 'q.db'}")
    assert order[:3] == ["bar total counted", "worker forked", "supervisor process connection"]


def test_the_supervisor_connection_does_not_check_the_schema_again(tmp_path: Path) -> None:
    """The supervisor migrated the store before it forked the workers; its second connection,
    opened while they reserve their first jobs, does not repeat the check."""
    order = run_work(f"sqlite:///{tmp_path / 'q.db'}", "--json")
    assert "supervisor process connection" in order
    assert "its schema checked again" not in order, order


def test_stop_signals_are_handled_before_the_first_worker_is_forked(tmp_path: Path) -> None:
    """Between forking the workers and running its loop, `taskqueue work` opens a connection
    of its own (a store round trip or an outage's wait): a SIGTERM then (systemd stopping the
    unit while the first jobs run) killed the supervisor outright, exit -15, its workers'
    jobs cut off. Its handlers are in place before the first fork."""
    order = run_work(f"sqlite:///{tmp_path / 'q.db'}", "--json")
    assert "worker forked" in order
    assert "SIGTERM not handled yet" not in order, order
