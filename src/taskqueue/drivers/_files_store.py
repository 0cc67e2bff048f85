"""The files backend's directory layout, file naming, atomic writes and locks.

Layout under the root directory::

    format.json                       store format version and applied migrations
    queues/<queue>/ready/             pending/retrying jobs, named so that sorting names sorts
                                      jobs: <inverted priority>-<due µs>-<id>.<p|r>.json
    queues/<queue>/waiting/           pending jobs whose dependencies are open (same names)
    queues/<queue>/processing/        <id>.json, leased to a worker
    queues/<queue>/completed|failed|cancelled/   <id>.json (file mtime = finish time)
    ids/<id>                          the queue a job id lives in: a hard link to the queue's
                                      marker ids/.queue-<queue>-<n> (link() is exclusive: ids
                                      are unique; see ``_files_ids``)
    keys/<sha256(key)>.key            idempotency key -> job id (created with link(): atomic)
    deps/<parent id>/<child id>       reverse dependency edges, to wake children on completion
    children/<parent id>/<child id>   every job depending on <parent>, for as long as it exists
                                      (the ``dependents`` index; ``deps`` holds open edges only)
    locks/NN.lock, locks/<name>.lock  flock files (job locks are striped over a fixed set)
    coord/                            locks, counters and the registry as small JSON files
    coord/counts/, coord/counts.json  the job counters: each process's journal of moves, and
                                      the folded counts (see ``_files_journal``, ``_files_counts``)
    tmp/                              temp files of in-flight writes (leftovers are cleaned up)
                                      and inodes kept for reuse (``_files_spares``)
    corrupt/                          files that could not be read, each with a .reason file

Names are made file-system safe with URL quoting, so ids and queue names can hold any text.
A write goes to ``tmp/`` first, then is renamed into place, so a reader only ever sees a whole
old or a whole new file; with ``fsync`` the temp file is fsynced before the rename (see the
driver's module docstring for what each setting survives).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from taskqueue.drivers import _files_pid
from taskqueue.drivers._files_ids import Ids
from taskqueue.drivers._files_journal import Journal
from taskqueue.drivers._files_lock import FileLock
from taskqueue.drivers._files_names import from_fs_name, fs_name
from taskqueue.drivers._files_record import Rec
from taskqueue.drivers._files_spares import Spares
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.drivers.files")

READY, WAITING, PROCESSING = "ready", "waiting", "processing"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
#: Directories whose file names carry priority, due time and id (scanned, never looked up).
KEYED_DIRS = (READY, WAITING)
#: Directories holding ``<id>.json`` (looked up directly by id).
FIXED_DIRS = (PROCESSING, COMPLETED, FAILED, CANCELLED)
STATE_DIRS = KEYED_DIRS + FIXED_DIRS

STRIPES = 256
_PRIORITY_ZERO = 5_000_000_000
_MAX_INVERTED = 9_999_999_999
_MAX_DUE_US = 10**17 - 1
_READY_RE = re.compile(r"^(\d{10})-(\d{17})-(.+)\.([pr])\.json$")

_COUNTED = frozenset(STATE_DIRS)


def keyed_job_name(name: str) -> bool:
    """A ready/waiting job file name (``<inverted priority:10>-<due us:17>-<id>.<p|r>.json``,
    see ``ready_name``): its fixed widths let counters slice it instead of parsing it."""
    return (len(name) > 36 and name[10] == "-" and name[28] == "-"
            and name.endswith((".p.json", ".r.json")))


def read_file(path: Path) -> bytes:
    """A whole small file, read with plain system calls (no buffering, no tty probe)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs",
               "lustre", "afs")


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (Linux /proc/self/mounts), if known."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target, best, kind = str(path.resolve()), "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def warn_if_network_fs(path: Path) -> None:
    kind = filesystem_type(path)
    if kind is not None and kind.startswith(_NETWORK_FS):
        log.warning("files store %s is on a %s filesystem: flock() and rename() are not "
                    "reliable there; use a local disk (or another backend)", path, kind)


def ignorable(name: str) -> bool:
    """Temp files and hidden files are never ours to read."""
    return name.startswith(".") or name.endswith(".tmp")


@dataclass(frozen=True, slots=True)
class ReadyName:
    """What a ready/waiting file name says about its job."""

    inverted: int
    due_us: int
    job_id: str
    retrying: bool

    @property
    def priority(self) -> int:
        return _PRIORITY_ZERO - self.inverted

    @property
    def state(self) -> State:
        return State.RETRYING if self.retrying else State.PENDING

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Highest priority first, then oldest due time, then oldest id."""
        return (self.inverted, self.due_us, self.job_id)


def ready_name(rec: Rec) -> str:
    inverted = min(max(_PRIORITY_ZERO - int(rec["priority"]), 0), _MAX_INVERTED)
    due_us = min(max(int(rec["available_at"] * 1_000_000), 0), _MAX_DUE_US)
    kind = "r" if rec["state"] == State.RETRYING else "p"
    return f"{inverted:010d}-{due_us:017d}-{fs_name(rec['id'])}.{kind}.json"


def ready_key(name: str) -> tuple[int, int, str] | None:
    """``parse_ready(name).sort_key`` without the ReadyName: the ready index parses every name
    of a directory it lists (20,000 on a large backlog's first reservation)."""
    match = _READY_RE.match(name)
    if match is None:
        return None
    inverted, due, job, _ = match.groups()
    return (int(inverted), int(due), from_fs_name(job))


def parse_ready(name: str) -> ReadyName | None:
    match = _READY_RE.match(name)
    if match is None:
        return None
    inverted, due, job, kind = match.groups()
    return ReadyName(int(inverted), int(due), from_fs_name(job), kind == "r")


def fixed_id(name: str) -> str | None:
    """The job id of a ``<id>.json`` file name, or None for anything else."""
    if ignorable(name) or not name.endswith(".json"):
        return None
    return from_fs_name(name[: -len(".json")])


class Store:
    """Paths, atomic file operations and locks of one store directory."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.queues = root / "queues"
        self.ids = root / "ids"
        self.keys = root / "keys"
        self.deps = root / "deps"
        self.children = root / "children"
        self.locks = root / "locks"
        self.coord = root / "coord"
        self.tmp = root / "tmp"
        self.corrupt = root / "corrupt"
        self._guard = threading.Lock()
        self._pid = _files_pid.current()
        self._locks: dict[str, FileLock] = {}
        self._known_queues: set[str] = set()
        self._dirs: dict[tuple[str, str], Path] = {}
        self._ids = Ids(self.ids, self._write_temp)
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._spares = Spares(self._temp)
        self.counts = self.coord / "counts"
        self.journal = Journal(self.counts, self.locks / "counts.lock")

    def make_dirs(self) -> None:
        for path in (self.queues, self.ids, self.keys, self.deps, self.children, self.locks,
                     self.coord, self.counts, self.tmp, self.corrupt):
            path.mkdir(parents=True, exist_ok=True)

    # -- locks -----------------------------------------------------------------------------
    def _lock(self, name: str) -> FileLock:
        with self._guard:
            if _files_pid.current() != self._pid:  # forked: inherited descriptors share flock state
                self._pid, self._locks = _files_pid.current(), {}
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = FileLock(self.locks / f"{name}.lock")
            return lock

    def job_lock(self, job_id: str) -> FileLock:
        """The lock guarding a job's read-check-write (striped over a fixed set of files)."""
        return self._lock(f"{zlib.crc32(job_id.encode()) % STRIPES:03d}")

    def stock_spares(self) -> None:
        """Have inodes ready for the next record writes (``Spares.stock``)."""
        self._spares.stock()

    def open_job_locks(self) -> None:
        """Open every job lock's file now (a worker waiting to start does, so its claims open
        none; a new process used to open one per stripe over its first few hundred jobs)."""
        for stripe in range(STRIPES):
            self._lock(f"{stripe:03d}").open()

    def named_lock(self, name: str) -> FileLock:
        return self._lock(name)

    def close(self) -> None:
        with self._guard:
            locks, self._locks = list(self._locks.values()), {}
        for lock in locks:
            lock.close()
        self.journal.close()
        self._spares.clear()

    # -- counted moves (see ``_files_journal``) ------------------------------------------------
    def counted(self) -> contextlib.AbstractContextManager[list[str]]:
        """A group of job-file moves whose deltas :meth:`note` puts in the journal."""
        return self.journal.group()

    def note(self, lines: list[str], gone: Path | None, new: Path | None) -> None:
        """Journal a job file leaving ``gone`` and/or arriving at ``new``."""
        if gone is not None and (line := self._delta(gone, "-")) is not None:
            lines.append(line)
        if new is not None and (line := self._delta(new, "+")) is not None:
            lines.append(line)

    def _delta(self, path: Path, sign: str) -> str | None:
        """The journal line for a job file at ``path`` (None: not a counted place)."""
        parent = path.parent
        sdir, qdir = parent.name, parent.parent
        if sdir not in _COUNTED or qdir.parent != self.queues:
            return None
        name = path.name
        if sdir in KEYED_DIRS:
            if not keyed_job_name(name):
                return None
            return f"{sign}\t{qdir.name}\t{sdir}\t{name[:10]}\t{name[11:28]}\t{name[-6]}\n"
        if not name.endswith(".json") or ignorable(name):
            return None
        stamp = int(time.time()) if sign == "+" and sdir == COMPLETED else ""
        return f"{sign}\t{qdir.name}\t{sdir}\t{stamp}\n"

    def move(self, src: Path, dst: Path) -> None:
        """Rename a job file, counted."""
        with self.counted() as lines:
            os.rename(src, dst)
            self.note(lines, src, dst)

    def unlink_job(self, path: Path) -> bool:
        """Remove a job file, counted; False if it was not there."""
        with self.counted() as lines:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self.note(lines, path, None)
        return True

    # -- paths -----------------------------------------------------------------------------
    def state_dir(self, queue: str, sdir: str) -> Path:
        path = self._dirs.get((queue, sdir))
        if path is None:
            path = self.queues / fs_name(queue) / sdir
            if len(self._dirs) < 10_000:
                self._dirs[(queue, sdir)] = path
        return path

    def fixed_path(self, queue: str, sdir: str, job_id: str) -> Path:
        return self.state_dir(queue, sdir) / f"{fs_name(job_id)}.json"

    def ensure_queue(self, queue: str) -> None:
        if queue in self._known_queues:
            return
        for sdir in STATE_DIRS:
            self.state_dir(queue, sdir).mkdir(parents=True, exist_ok=True)
        self._known_queues.add(queue)

    def forget_queues(self) -> None:
        """Re-check queue directories on next use (after an error: they may have vanished)."""
        self._known_queues.clear()
        self._ids.forget()

    def queue_names(self) -> list[str]:
        return sorted(from_fs_name(n) for n in self.listdir(self.queues) if not ignorable(n))

    def listdir(self, path: Path) -> list[str]:
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []

    # -- the id index (see ``_files_ids``) ----------------------------------------------------
    def id_path(self, job_id: str) -> Path:
        return self._ids.path(job_id)

    def claim_id(self, job_id: str, queue: str) -> bool:
        """Register a new job id; False if the id already exists."""
        return self._ids.claim(job_id, queue)

    def queue_of(self, job_id: str) -> str | None:
        """The queue a job id lives in, or None if no such job."""
        return self._ids.queue_of(job_id)

    def drop_id(self, job_id: str) -> None:
        self._ids.drop(job_id)

    # -- atomic I/O ------------------------------------------------------------------------
    def _temp(self) -> Path:
        """A fresh temp file name: this process, this store, a counter (cheaper than uuid4)."""
        return self.tmp / f"{_files_pid.current()}-{self._token}-{next(self._counter)}.tmp"

    def _fill(self, fd: int, data: bytes, mtime: float | None) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if mtime is not None:
            ns = int(mtime * 1_000_000_000)
            os.utime(fd, ns=(ns, ns))
        if self.fsync:
            os.fsync(fd)

    def _write_temp(self, data: bytes, mtime: float | None) -> Path:
        tmp = self._temp()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        return self._filled(tmp, fd, data, mtime)

    def _filled(self, tmp: Path, fd: int, data: bytes, mtime: float | None) -> Path:
        """Fill and close the temp file ``tmp`` open as ``fd`` (removed if that fails)."""
        try:
            self._fill(fd, data, mtime)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def write(self, path: Path, data: bytes, mtime: float | None = None) -> None:
        """Replace ``path`` atomically with ``data`` (temp file, fsync, rename)."""
        tmp = self._write_temp(data, mtime)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_job(self, path: Path, data: bytes, mtime: float | None = None, *,
                  replacing: bool = True) -> None:
        """:meth:`write` for a job record, on an inode a replaced record left (``_files_spares``)
        when there is one; ``replacing``: keep the inode of the record at ``path`` for later."""
        reused = self._spares.open()
        tmp = (self._write_temp(data, mtime) if reused is None
               else self._filled(*reused, data, mtime))
        kept = self._spares.keep(path) if replacing else None
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if kept is not None:
                kept.unlink(missing_ok=True)
            raise
        if kept is not None:
            self._spares.put(kept)

    def create_exclusive(self, path: Path, data: bytes) -> bool:
        """Create ``path`` holding ``data`` only if it does not exist (link() is atomic)."""
        tmp = self._write_temp(data, None)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def sync_dirs(self, dirs: Iterable[Path]) -> None:
        """fsync directories so renames into them survive a power loss."""
        if not self.fsync:
            return
        for path in set(dirs):
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def clean_tmp(self, older_than: float) -> int:
        """Remove temp files left behind by killed writers; return how many."""
        removed = 0
        for name in self.listdir(self.tmp):
            path = self.tmp / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
        return removed

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move an unreadable file into ``corrupt/`` with a ``.reason`` file; log a warning."""
        target = self.corrupt / f"{path.parent.parent.name}.{path.parent.name}.{path.name}"
        if target.exists():
            target = target.with_name(f"{target.name}.{time.time_ns()}")
        try:
            self.move(path, target)
        except FileNotFoundError:
            return None
        stamp = datetime.now(UTC).isoformat()
        text = f"{reason}\noriginal path: {path}\nmoved aside at: {stamp}\n"
        target.with_name(target.name + ".reason").write_text(text)
        log.warning("files store: moved unreadable job file %s to %s: %s", path, target, reason)
        return target
