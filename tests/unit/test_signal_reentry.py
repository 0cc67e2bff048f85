"""A signal handler interrupted by another: the second one's action waits for the first.

Python runs a handler between any two bytecodes of the main thread, another handler's
included. A worker's SIGTERM handler sets its stop event; a SIGHUP (its parent died) arriving
while that handler was inside ``Event.set``, holding the event's lock, set the same event and
waited for the lock for ever: seen in CI as a standby left behind, orphaned, holding the
command's output pipes. The test makes that interleaving certain: the event sends the SIGHUP
to its own process while it holds its lock. It runs in a subprocess; a hang fails it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, signal, threading
    from taskqueue.worker import signals

    class SlowToSet(threading.Event):
        hup = True

        def set(self):
            with self._cond:
                self._flag = True
                if SlowToSet.hup:  # the first time: delivered before the lock is let go
                    SlowToSet.hup = False
                    os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(1000):
                    pass
                self._cond.notify_all()

    class Worker:
        def __init__(self):
            self.stop = SlowToSet()
            self.reasons = []
        def request_stop(self, reason="stop requested"):
            self.reasons.append(reason)
            self.stop.set()
        def stop_now(self, reason="stopped at once"):
            self.reasons.append(reason)
            self.stop.set()
            return False
        def toggle_pause(self):
            return False
        def pause(self):
            pass
        def resume(self):
            pass

    worker = Worker()
    signals.install(worker, supervised=True)
    signals.on_orphaned(worker, "orphaned")
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
        pass
    print(worker.reasons)
""")


def test_a_handler_interrupting_another_does_not_deadlock_on_the_stop_event() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['received SIGTERM', 'orphaned']", proc.stdout
