"""The in-worker probe every benchmarked no-op job calls (standard library only).

A drain job (no enqueue stamp) takes a number from a counter shared by every process of the
run: ``BENCH_COUNT_FILE`` is opened ``O_APPEND`` once per thread, each job appends one byte
and reads its own file position back, which is how many drain jobs have started so far across
all processes (a worker that recycles, or several workers, keep one count). That is two system
calls, under a microsecond here, for every library alike. Now and then one UDP datagram goes
to the harness on loopback (``BENCH_PROBE_PORT``):

* ``F`` the first drain job this process ran (worker start time, start of the drain),
* ``P`` every 64th drain job of the run (progress: rate under a time cap, several processes),
* ``D`` the ``BENCH_EXPECT``-th drain job of the run (end of the drain),
* ``M`` this process's ``BENCH_LAST_AT``-th drain job (the last one before it recycles; the
  harness measures the gap to the next process's ``F``),
* ``L`` every job whose argument is a non-zero enqueue timestamp (enqueue-to-start latency);
  ``W`` the same for the mixed benchmark's long jobs.

Each datagram is ``KIND pid run_count process_count wall_time stamp``. Timestamps are
``time.time()`` so they compare across processes of this machine. Without a count file (a
worker started by hand) the run count is this process's count.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

_PORT = int(os.environ.get("BENCH_PROBE_PORT", "0") or 0)
_EXPECT = int(os.environ.get("BENCH_EXPECT", "0") or 0)
_LAST_AT = int(os.environ.get("BENCH_LAST_AT", "0") or 0)
_COUNT_FILE = os.environ.get("BENCH_COUNT_FILE", "")
_count = 0
#: the count file, opened once per thread: jobs of one process may run in several threads
#: (Dramatiq, --concurrency), and two threads sharing one file offset could both read back
#: the position after the second write
_local = threading.local()
_sock: socket.socket | None = None


def _forked() -> None:
    """A forked child counts its own jobs, on files of its own (an inherited descriptor shares
    its offset with the parent's)."""
    global _count, _local
    _count, _local = 0, threading.local()


os.register_at_fork(after_in_child=_forked)


def _send(kind: str, total: int, local: int, now: float, stamp: float = 0.0) -> None:
    global _sock
    if not _PORT:
        return
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg = f"{kind} {os.getpid()} {total} {local} {now!r} {stamp!r}".encode()
    with contextlib.suppress(OSError):
        _sock.sendto(msg, ("127.0.0.1", _PORT))


def _next() -> tuple[int, int]:
    """(jobs started by the whole run, by this process), this job included: one byte appended
    to the shared count file, whose new end is this thread's file position."""
    global _count
    _count += 1
    local = _count
    if not _COUNT_FILE:
        return local, local
    fd = getattr(_local, "fd", -1)
    if fd < 0:
        fd = _local.fd = os.open(_COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"x")
    return os.lseek(fd, 0, os.SEEK_CUR), local


def hit(stamp: float = 0.0, kind: str = "L") -> None:
    """Record one job run; ``stamp`` is the wall time the job was enqueued (0: a drain job)."""
    if stamp:
        _send(kind, 0, 0, time.time(), float(stamp))
        return
    total, local = _next()
    if local == 1:
        _send("F", total, local, time.time())
    if total == _EXPECT:
        _send("D", total, local, time.time())
    elif not total & 63:
        _send("P", total, local, time.time())
    if local == _LAST_AT:
        _send("M", total, local, time.time())


async def ahit(stamp: float = 0.0) -> None:
    hit(stamp)
