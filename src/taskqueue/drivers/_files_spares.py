"""Reused inodes for the files backend's job records.

Rewriting a record (a claim, a completion, a heartbeat) writes a temp file and renames it over
the old one, so every rewrite used to make a new inode and free the old one. On ext4 both are
dear when files are made and removed by the thousand: the inode allocator looks past every
recently freed inode of its group (without a journal it reads each one's deletion time), and
freeing a file frees its block (a discard request under ``-o discard``). Profiled on the
benchmark host (ext4 without a journal), inode allocation was half the CPU of a drain.

So before a record is replaced, its old inode is kept under a temp name (``link()``: a directory
entry, no new inode) and the next record this process writes reuses it: opened, checked to have
no other name (``st_nlink == 1``; a hard-linked backup is never written through), truncated,
filled and renamed into place like a fresh temp file. Only job records take part: every reader
of a record checks the id inside it and reads it again under the job's lock when a read fails
(``Records.read_current``), and the truncation empties the file before the new record goes in,
so a reader that opened the old file before it was replaced sees the whole old record, an
empty or cut file (a failed read), or a whole other record (a different id: a failed read), never
a mix. Spares belong to one process (a forked child starts with none) and are removed when
the store is closed; one a crash leaves behind is a temp file like any other, removed by the
housekeeping after an hour.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from taskqueue.drivers import _files_pid

#: Spares kept per process (a worker writes a record or two at a time; threads share them).
KEEP = 8
#: A spare is reused only while this many are kept, the oldest first: the rename that replaced
#: its record started writing that record back (ext4's ``auto_da_alloc``), and truncating a
#: file waits for its write-back, so the spare reused is the one kept longest ago.
SLACK = 4


class Spares:
    """Inodes of replaced job records, kept under temp names for the next write."""

    def __init__(self, new_name: Callable[[], Path]) -> None:
        self._new_name = new_name
        self._pid = _files_pid.current()
        self._free: list[Path] = []
        self._guard = threading.Lock()

    def _pool(self) -> list[Path]:
        if _files_pid.current() != self._pid:  # forked: the parent's spares are the parent's
            self._pid, self._free = _files_pid.current(), []
        return self._free

    def open(self) -> tuple[Path, int] | None:
        """A spare opened for writing, truncated; None if there is none fit to reuse."""
        while True:
            with self._guard:
                pool = self._pool()
                if len(pool) < SLACK:
                    return None
                path = pool.pop(0)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                continue  # removed meanwhile (a housekeeping pass): try the next one
            try:
                if os.fstat(fd).st_nlink == 1:
                    os.ftruncate(fd, 0)
                    return path, fd
            except OSError:
                pass
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()

    def keep(self, target: Path) -> Path | None:
        """Give the file at ``target``, about to be replaced, a temp name to keep its inode;
        None when the pool is full or nothing is there."""
        with self._guard:
            if len(self._pool()) >= KEEP:
                return None
        name = self._new_name()
        try:
            os.link(target, name)
        except OSError:
            return None
        return name

    def stock(self) -> None:
        """Make empty files up to :data:`SLACK`, so the next writes reuse inodes at once (a
        worker waiting to start calls this: a new process otherwise made a new inode for each
        of its first few writes, and on ext4 a new inode can cost a millisecond)."""
        while True:
            with self._guard:
                if len(self._pool()) >= SLACK:
                    return
            name = self._new_name()
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            os.close(fd)
            self.put(name)

    def clear(self) -> None:
        """Remove this process's spares (the store is being closed)."""
        with self._guard:
            pool, self._free = self._pool(), []
        for name in pool:
            with contextlib.suppress(OSError):
                name.unlink()

    def put(self, name: Path) -> None:
        """``name`` (from :meth:`keep`) now holds a replaced record's inode alone: reuse it."""
        with self._guard:
            pool = self._pool()
            if len(pool) < KEEP:
                pool.append(name)
                return
        with contextlib.suppress(OSError):
            name.unlink()
