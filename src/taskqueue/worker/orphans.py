"""No orphans: a process that must not outlive its parent.

On Linux the kernel sends a chosen signal when the parent dies (``PR_SET_PDEATHSIG``), even
after ``kill -9``. Elsewhere a daemon thread compares ``getppid()`` with the parent it was
started by, twice a second (a process that must stay single-threaded, the fork server, checks
in its own loop instead). Either way the parent may already be gone when this is called, so the
parent is checked once more right after.

And no zombies: a supervisor that is PID 1 (a container started with the exec form) is given
every process whose parent died (one left behind by a job, the workers of a dead fork
server); ``reap_adopted`` collects them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Collection

PR_SET_PDEATHSIG = 1
#: The stop reason of a worker whose parent died.
ORPHANED = "its supervisor is gone"
#: Seconds between two parent checks where the kernel cannot tell us.
CHECK_INTERVAL = 0.5


def die_with_parent(signum: int, parent: int, thread: bool = True) -> None:
    """Have ``signum`` delivered to this process when ``parent`` is no longer its parent."""
    if not _pdeathsig(signum) and thread:
        threading.Thread(target=_watch, args=(signum, parent), name="taskqueue-parent-watch",
                         daemon=True).start()
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signum)


def _pdeathsig(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch(signum: int, parent: int) -> None:
    event = threading.Event()
    while not event.wait(CHECK_INTERVAL):
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)
            return


def reap_adopted(ours: Collection[int]) -> int:
    """Reap the exited children this process did not start itself (as PID 1 the kernel gives
    it every orphan); ``ours``, waited for by their owners, are left to them. How many."""
    reaped = 0
    while True:
        try:  # look without reaping: one of ours keeps its exit status for its owner
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if info is None or info.si_pid in ours:
            return reaped  # (the others wait until its owner has reaped it)
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return reaped
        reaped += 1
