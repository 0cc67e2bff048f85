"""The write side of the files backend's job counters: an append-only journal per process.

Every move of a job file into, out of or between state directories is a *group* in the moving
process's journal (``coord/counts/<pid>-<token>-<n>.log``): a ``?`` line written before the
move, then the move, then its delta lines and a ``!`` line, in one ``write()``. A delta line
names the queue directory, the state directory and, for ``ready/`` and ``waiting/``, the
priority, due time and kind sliced from the file name (``+\\tq\\tready\\t<inv>\\t<due>\\tp``), so
the reader (``_files_counts``) folds journals into per-queue counts without reading any job.

Crash safety. A process holds an exclusive ``flock`` on its own journal for as long as it
writes to it: a journal whose lock is free belongs to a process that is gone. If that journal
holds more ``?`` than ``!`` lines, the process died between a move and its delta, and the
reader recounts the directories. The reader can recount consistently because every group runs
under a *shared* ``flock`` on ``locks/counts.lock`` and a recount takes it exclusively: no move
is half-journaled while the directories are listed. Lock order: a job's lock, then the shared
counts lock (never the other way round); nothing else is taken inside a group.

Cost: two small appends and a shared ``flock`` per move, no fsync (a power cut can lose the
tail of a journal; the counts are then off until the next recount, e.g. ``taskqueue migrate``
on a store whose ``coord/counts.json`` was removed).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from taskqueue.drivers import _files_pid

#: A process starts a new journal file after writing this much to one (the reader removes
#: journals whose writer let go of them).
ROTATE_BYTES = 4 << 20
#: A process asks for a fold after writing this much since its last one.
FOLD_BYTES = 256 << 10


class Journal:
    """This process's journal and its share of the counts lock (fork-aware, thread-safe)."""

    def __init__(self, directory: Path, lock_path: Path) -> None:
        self.directory = directory
        self.lock_path = lock_path
        self._mutex = threading.Lock()
        self._local = threading.local()
        self._pid = _files_pid.current()
        self._token = uuid.uuid4().hex[:12]
        self._serial = itertools.count()
        self._fd: int | None = None
        self._size = 0
        self._lock_fd: int | None = None
        self._holders = 0
        self._unfolded = 0

    @property
    def wants_fold(self) -> bool:
        """This process wrote enough deltas since its last fold to fold them now."""
        return self._unfolded >= FOLD_BYTES

    def folded(self) -> None:
        self._unfolded = 0

    @contextlib.contextmanager
    def group(self) -> Iterator[list[str]]:
        """Hold the counts lock shared and yield the list to put this change's delta lines in
        (a group opened inside another, by the same thread, joins it)."""
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is not None:
            yield lines
            return
        fd = self._enter()
        lines = self._local.lines = []
        try:
            yield lines
        finally:
            self._local.lines = None
            self._leave(fd, lines)

    def _enter(self) -> int:
        with self._mutex:
            if _files_pid.current() != self._pid:
                self._forked()
            if self._fd is None:
                self._open()
            if self._holders == 0:
                if self._lock_fd is None:
                    self._lock_fd = os.open(
                        self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
                    )
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            self._holders += 1
            fd = self._fd
        assert fd is not None
        try:
            os.write(fd, b"?\n")
        except BaseException:
            self._release()
            raise
        return fd

    def _leave(self, fd: int, lines: list[str]) -> None:
        data = ("".join(lines) + "!\n").encode()
        try:
            os.write(fd, data)
        finally:
            with self._mutex:
                self._size += len(data) + 2
                self._unfolded += len(data) + 2
                if self._holders == 1 and self._size >= ROTATE_BYTES and fd == self._fd:
                    self._close_journal()
            self._release()

    def _release(self) -> None:
        with self._mutex:
            self._holders -= 1
            if self._holders == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _open(self) -> None:
        """A new journal: made under a hidden name, locked, then renamed into view, so a reader
        never sees it unlocked while its writer lives."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{_files_pid.current()}-{self._token}-{next(self._serial)}.log"
        hidden = self.directory / f".{name}"
        fd = os.open(
            hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(hidden, self.directory / name)
        except BaseException:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        self._fd, self._size = fd, 0

    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # lets go of its lock: the reader folds the rest and removes it
            self._fd = None

    def _forked(self) -> None:
        """In a forked child: the inherited descriptors share the parent's locks, so drop them
        (closing never unlocks what the parent still holds) and start a journal of our own."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None
        self._pid, self._holders, self._size, self._unfolded = _files_pid.current(), 0, 0, 0
        self._token = uuid.uuid4().hex[:12]
        self._local = threading.local()

    def close(self) -> None:
        with self._mutex:
            if _files_pid.current() != self._pid:
                self._forked()
            if self._holders == 0:  # a group in flight keeps writing to them
                self._close_journal()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
