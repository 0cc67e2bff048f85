"""A worker forked by the fork server gets a stop signal sent at any moment after its fork.

The server ignores SIGINT/SIGTERM/SIGHUP (a signal to the whole process group is the
supervisor's), and a forked child inherits that until it resets them. On a busy machine a child
may not run for a while after its fork; a SIGTERM from a supervisor stopping right then was
dropped, and the worker ran on until the grace period's SIGKILL (seen as a 30 s hang of
`taskqueue work` after SIGTERM in test_supervisor under load). The signal is sent here at the
earliest moment, from inside the child as fork() returns, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, signal, sys
from taskqueue.worker import child, forkserver

signum = getattr(signal, sys.argv[1])
signal.signal(signum, signal.SIG_IGN)  # as the server does
real_fork = os.fork

def fork():
    pid = real_fork()
    if pid == 0:
        os.kill(os.getpid(), signum)  # before the child ran a line of its own
    return pid

os.fork = fork
child.run_worker = lambda *args, **kwargs: 0  # a worker that would finish normally
pid = forkserver._fork_worker(None, 0, 0, lambda: None)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_sent_right_after_the_fork_reaches_the_worker(name: str) -> None:
    import signal

    proc = subprocess.run([sys.executable, "-c", SCRIPT, name], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    code = int(proc.stdout.strip().splitlines()[-1])
    assert code == -getattr(signal, name), f"the worker exited {code}: the {name} was dropped"
