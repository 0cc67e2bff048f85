"""A worker forked by the fork server gets a stop signal, and what its supervisor sends (pause,
resume, recycle), at any moment after its fork.

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

#: Script lines: the signals the server ignores are ignored, and ``signum`` is sent from
#: inside the child as fork() returns, before it ran a line of its own.
AT_FORK = """
for ignored in forkserver.GROUP_SIGNALS:  # as the server does
    signal.signal(ignored, signal.SIG_IGN)
real_fork = os.fork

def fork():
    pid = real_fork()
    if pid == 0:
        os.kill(os.getpid(), signum)  # before the child ran a line of its own
    return pid

os.fork = fork
"""

SCRIPT = """
import os, signal, sys
from taskqueue.worker import child, forkserver

signum = getattr(signal, sys.argv[1])
""" + AT_FORK + """
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


# -- what a supervisor sends: pause, resume, recycle ------------------------------------------
# The server ignores these signals (one sent to the whole process group is the supervisor's) and
# a forked child inherits that until its handlers are installed, after it has opened the store.
# A pause sent by a supervisor in that window (SIGUSR2 right after a recycle forked a worker) was
# dropped: the new worker took jobs while every other one was paused. The signal is sent here at
# the earliest moment, from inside the child as fork() returns, to the real worker
# (``run_worker``) on every backend, in a fresh interpreter.

CONTROL_SCRIPT = """
import os, signal, sys, time
from taskqueue import QueueManager, set_default_manager
from taskqueue.config import Settings
from taskqueue.drivers import open_driver
from taskqueue.worker import forkserver, signals
from taskqueue.worker.board import Boards
from taskqueue.worker.runner import WorkerOptions
from tests.apps import sample_tasks as t

url, what, ledger = sys.argv[1:4]
signum = {"pause": signals.pause_signal(True), "resume": signals.pause_signal(False),
          "recycle": signals.recycle_signal()}[what]
manager = QueueManager.from_url(url)
set_default_manager(manager)
job = t.mark.delay(ledger).id
set_default_manager(None)
manager.close()
""" + AT_FORK + """
boards = Boards(1)
notes_r, notes_w = os.pipe()
options = WorkerOptions(poll_interval=0.05)
recipe = forkserver.Recipe(Settings(url=url), options, [], None, boards.fd, 1, notes_w, boards)
extra = forkserver._PAUSED if what == "resume" else 0
pid = forkserver._fork_worker(recipe, 0, extra, lambda: None)
os.fork = real_fork
driver = open_driver(url)

def seen(deadline):
    while time.monotonic() < deadline:
        if what == "recycle":
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reason = (boards.summary(0) or {}).get("stop_reason") or ""
                return "recycled" if "recycle" in reason else f"stopped: {reason}"
        elif what == "pause":
            if any(w.get("paused") for w in driver.registry_list("worker")):
                return "paused"
        elif driver.get(job).state.value == "completed":
            return "ran the job"
        time.sleep(0.05)
    return None

result = seen(time.monotonic() + 30)
try:
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
except (ProcessLookupError, ChildProcessError):
    pass
if what == "pause" and driver.get(job).state.value != "pending":
    result = "took a job while paused"
print(result)
"""

EXPECTED = {"pause": "paused", "resume": "ran the job", "recycle": "recycled"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("what", ["pause", "resume", "recycle"])
def test_what_a_supervisor_sends_right_after_the_fork_reaches_the_worker(
        what: str, store_url: str, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    proc = subprocess.run([sys.executable, "-c", CONTROL_SCRIPT, store_url, what, ledger], cwd=REPO,
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    result = proc.stdout.strip().splitlines()[-1]
    assert result == EXPECTED[what], f"{what}: {result} (the signal was dropped)"
