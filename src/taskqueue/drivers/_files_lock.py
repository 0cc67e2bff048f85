"""The files backend's lock: a mutex between threads and ``flock`` between processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path


class FileLock:
    """Exclusive between the threads of this process (a mutex) and between processes (flock).

    Each FileLock keeps its own open file description, so two drivers in one process exclude
    each other too. Never take a second FileLock while holding one: that can deadlock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None

    @contextlib.contextmanager
    def hold(self, blocking: bool = True) -> Iterator[bool]:
        """Yield True while the lock is held; yield False at once if not ``blocking`` and busy."""
        if not self._mutex.acquire(blocking=blocking):
            yield False
            return
        try:
            self._open()
            assert self._fd is not None
            flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
            try:
                fcntl.flock(self._fd, flags)
                got = True
            except BlockingIOError:
                got = False
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def open(self) -> None:
        """Open the lock file now instead of at the first ``hold`` (nothing is locked)."""
        with self._mutex:
            self._open()

    def _open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
