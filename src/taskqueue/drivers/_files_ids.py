"""The id index of the files backend: ``ids/<id>`` says which queue a job id lives in.

An entry is a hard link to its queue's marker file, ``ids/.queue-<queue>-<n>``, a small file
holding the queue's name. ``link()`` is one atomic and exclusive system call (it fails if the
name exists, which keeps job ids unique), an entry is never seen half-made, and it allocates no
inode: it costs less than creating a file, and far less when the file system is slow to
allocate inodes because other processes are busy with it. A file has a limited number of links
(65,000 on ext4): when a marker is full (EMLINK) the queue's next marker takes over.

Reading an entry reads the queue's name out of the file, whatever made it: a link, a plain file
holding the name (stores written before markers, or copied without hard links), or a symlink to
the queue's file-system name (written by one earlier version). Marker names start with a dot,
which no entry's name does (``fs_name`` never returns one). With fsync a marker is fsynced once
when it is made; the caller fsyncs ``ids/`` after adding entries, so an entry needs no fsync of
its own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

from taskqueue.drivers._files_names import from_fs_name, fs_name

WriteTemp = Callable[[bytes, float | None], Path]


class Ids:
    """Entries of one store's ``ids/`` directory."""

    def __init__(self, directory: Path, write_temp: WriteTemp) -> None:
        self.dir = directory
        self._write_temp = write_temp
        self._markers: dict[str, tuple[int, Path]] = {}   # queue -> (generation, marker)
        self._guard = threading.Lock()
        self.link: Callable[[Path, Path], None] = os.link  # replaceable in tests

    def path(self, job_id: str) -> Path:
        return self.dir / fs_name(job_id)

    def _marker(self, queue: str, generation: int) -> Path:
        """The queue's marker of that generation, made if missing (whole: temp, then link)."""
        path = self.dir / f".queue-{fs_name(queue)}-{generation}"
        if not path.exists():
            tmp = self._write_temp(queue.encode(), None)
            try:
                with contextlib.suppress(FileExistsError):  # another process made it
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return path

    def claim(self, job_id: str, queue: str) -> bool:
        """Register a new job id in ``queue``; False if the id already exists."""
        entry = self.path(job_id)
        for _ in range(20):
            with self._guard:
                current = self._markers.get(queue)
            if current is None:
                current = (0, self._marker(queue, 0))
            generation, marker = current
            try:
                self.link(marker, entry)
            except FileExistsError:
                return False
            except FileNotFoundError:
                if not self.dir.is_dir():
                    raise
                current = (generation, self._marker(queue, generation))  # marker removed
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                current = (generation + 1, self._marker(queue, generation + 1))
            else:
                with self._guard:
                    self._markers[queue] = current
                return True
            with self._guard:
                self._markers[queue] = current
        raise OSError(errno.EMLINK, f"no usable id marker for queue {queue!r}", str(entry))

    def queue_of(self, job_id: str) -> str | None:
        """The queue a job id lives in, or None if no such job."""
        entry = self.path(job_id)
        for _ in range(3):
            try:
                fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                try:  # a symlink, as one earlier version wrote
                    return from_fs_name(os.readlink(entry))
                except FileNotFoundError:
                    return None
                except OSError as again:
                    if again.errno != errno.EINVAL:
                        raise
                    continue  # replaced by a file meanwhile: read that
            try:
                return os.read(fd, 4096).decode() or None
            except ValueError:
                return None
            finally:
                os.close(fd)
        return None

    def drop(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(job_id).unlink()

    def forget(self) -> None:
        with self._guard:
            self._markers.clear()
