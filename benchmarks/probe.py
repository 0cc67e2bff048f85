"""The in-worker probe every benchmarked no-op job calls (standard library only).

It costs one integer increment per job; now and then it sends one UDP datagram to the harness
on loopback (``BENCH_PROBE_PORT``):

* ``F`` the first job this process ran (worker start time, start of the drain),
* ``P`` every 64th job (progress: drain rate under a time cap, several worker processes),
* ``D`` the ``BENCH_EXPECT``-th job (end of the drain),
* ``L`` every job whose argument is a non-zero enqueue timestamp (enqueue-to-start latency).

Each datagram is ``KIND pid count wall_time stamp``. Timestamps are ``time.time()`` so they
compare across processes of this machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

_PORT = int(os.environ.get("BENCH_PROBE_PORT", "0") or 0)
_EXPECT = int(os.environ.get("BENCH_EXPECT", "0") or 0)
_count = 0
_sock: socket.socket | None = None


def _send(kind: str, now: float, stamp: float = 0.0) -> None:
    global _sock
    if not _PORT:
        return
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg = f"{kind} {os.getpid()} {_count} {now!r} {stamp!r}".encode()
    with contextlib.suppress(OSError):
        _sock.sendto(msg, ("127.0.0.1", _PORT))


def hit(stamp: float = 0.0) -> None:
    """Record one job run; ``stamp`` is the wall time the job was enqueued (0: a drain job)."""
    global _count
    _count += 1
    if stamp:
        _send("L", time.time(), float(stamp))
        return
    if _count == 1:
        _send("F", time.time())
    if _count == _EXPECT:
        _send("D", time.time())
    elif not _count & 63:
        _send("P", time.time())


async def ahit(stamp: float = 0.0) -> None:
    hit(stamp)
