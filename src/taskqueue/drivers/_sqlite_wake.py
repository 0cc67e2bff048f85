"""Same-host wake-ups for idle SQLite workers (private to ``sqlite``; ``mysql`` rings one too).

An idle worker binds a Unix datagram socket in Linux's abstract namespace (no file, gone when
its process is) and leaves a marker file of the same name in ``<database>-wake/``. A push, once
committed, sends one byte to the socket of every marker: the worker wakes within a fraction of
a millisecond instead of at its next poll. A marker whose socket is gone (its process died) is
removed by the first push that finds it so, and the last waiter to close removes the
directory. Where abstract sockets do not exist (not Linux), or
the directory cannot be written, nothing rings: the worker's polling of ``PRAGMA data_version``
stays behind the doorbell anyway, so a missed ring costs one poll interval, never a job.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import time
from pathlib import Path

_ENABLED = sys.platform.startswith("linux") and hasattr(socket, "AF_UNIX")
#: Seconds between two looks for the directory while no worker has ever waited.
_ABSENT_RECHECK = 0.5
#: A directory changed less than this long ago (ns) may change again without its mtime
#: moving: many kernels stamp files with a clock that ticks every 1-10 ms.
_MTIME_SETTLE_NS = 100_000_000


class Doorbell:
    """``ring()`` after a push commits; ``sleep(seconds)`` returns early when rung."""

    def __init__(self, database: str) -> None:
        self.directory = Path(database + "-wake")
        self._enabled = _ENABLED and database != ":memory:"
        self._listener: socket.socket | None = None
        self._marker: Path | None = None
        self._sender: socket.socket | None = None
        if self._enabled:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        self._names: list[str] = []
        self._seen: int | None = None   # the directory's mtime when _names was read
        self._absent_until = 0.0   # no directory yet: look again after this (monotonic)

    # -- the waiting side ------------------------------------------------------------------
    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a push rang meanwhile."""
        listener = self._listen()
        if listener is None:
            time.sleep(max(0.0, seconds))
            return False
        readable, _, _ = select.select([listener], [], [], max(0.0, seconds))
        return bool(readable) and self.drain()

    def drain(self) -> bool:
        """Forget rings received so far (their pushes are visible now); True if there were."""
        rung = False
        while self._listener is not None:
            try:
                self._listener.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            rung = True
        return rung

    def _listen(self) -> socket.socket | None:
        if self._listener is None and self._enabled:
            name = f"taskqueue-{os.getpid()}-{os.urandom(8).hex()}"
            try:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                listener.setblocking(False)
                listener.bind("\0" + name)
                self._mark(name)
            except OSError:
                self._enabled = False   # poll only, as on other systems
                return None
            self._listener, self._marker = listener, self.directory / name
            self._absent_until = 0.0   # the directory exists now: ring this waiter too
        return self._listener

    def _mark(self, name: str) -> None:
        """Leave this waiter's marker, making the directory if needed (the last waiter to
        close removes it: it may vanish between the two steps, then both are done again)."""
        for attempt in range(3):
            self.directory.mkdir(exist_ok=True)
            try:
                (self.directory / name).touch()
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    # -- the pushing side ------------------------------------------------------------------
    def ring(self) -> None:
        """Wake every idle worker of this database (best effort, never raises)."""
        if self._sender is None or time.monotonic() < self._absent_until:
            return
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:   # nobody has waited yet; a worker that starts now polls meanwhile
            self._absent_until = time.monotonic() + _ABSENT_RECHECK
            return
        if mtime != self._seen:
            with contextlib.suppress(OSError):
                self._names = [entry.name for entry in os.scandir(self.directory)]
                # A marker added within the same clock tick as the change we just read would
                # not move the mtime again: trust the list only once the directory is settled.
                settled = time.time_ns() - mtime > _MTIME_SETTLE_NS
                self._seen = mtime if settled else None
        for name in self._names:
            try:
                self._sender.sendto(b"!", "\0" + name)
            except ConnectionRefusedError:   # its worker is gone: forget it
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
            except OSError:   # a full queue: that worker has rings to read already
                pass

    def close(self) -> None:
        if self._marker is not None:
            with contextlib.suppress(OSError):
                self._marker.unlink()
            # the last waiter out removes the directory (it fails while others wait): for
            # MySQL it lives in $TMPDIR, one per server and database, and would accumulate
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        for sock in (self._listener, self._sender):
            if sock is not None:
                sock.close()
        self._listener = self._sender = None
        self._marker = None
