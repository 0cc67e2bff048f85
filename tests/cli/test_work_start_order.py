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
    order.append("worker forked")
    return spawn(self, slot)

def opening(cls, *args, **kwargs):
    order.append("supervisor process connection")
    return from_settings(cls, *args, **kwargs)

Supervisor.spawn = spawning
work.QueueManager.from_settings = classmethod(opening)
cli.main(["--url", sys.argv[1], "work", "--stop-when-empty", "--json"], standalone_mode=False)
print(json.dumps(order))
"""


def test_work_forks_the_workers_before_opening_its_own_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, url], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    order = json.loads(proc.stdout.strip().splitlines()[-1])
    assert order[:2] == ["worker forked", "supervisor process connection"], order
