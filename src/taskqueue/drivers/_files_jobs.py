"""The record layer of the files backend: find, read and place job files; dependencies;
admission of new ids and idempotency keys, and freeing keys as their modes say.

A job's directory says where it stands, and its content is the truth: when the two disagree
(a move cut short by a crash), :meth:`Records.place` moves the file where its content says.
Methods documented "caller holds the lock" must run under ``store.job_lock(job_id)``; the rest
take locks themselves and must be called with no lock held (locks never nest).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from taskqueue.drivers._files_names import from_fs_name, fs_name
from taskqueue.drivers._files_record import (
    CorruptRecord,
    Rec,
    decode,
    encode,
    finished_at,
    key_let_go,
    key_on_finish,
)
from taskqueue.drivers._files_store import (
    FIXED_DIRS,
    KEYED_DIRS,
    READY,
    WAITING,
    Store,
    ignorable,
    parse_ready,
    read_file,
    ready_name,
)
from taskqueue.errors import Conflict
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State

#: States a worker may reserve from (``pending`` and ``retrying``).
READY_STATES = frozenset({State.PENDING.value, State.RETRYING.value})
_KEY_STALE_AFTER = 60.0  # an idempotency marker whose job never appeared is abandoned


class Records:
    """Job files of one store (see the module docstring for the locking rules)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- records: find, load, place ------------------------------------------------------
    def find(self, job_id: str) -> Path | None:
        """The file holding a job now (stable only while its lock is held)."""
        queue = self.store.queue_of(job_id)
        if queue is None:
            return None
        for sdir in FIXED_DIRS:
            path = self.store.fixed_path(queue, sdir, job_id)
            if path.exists():
                return path
        needle = fs_name(job_id)
        for sdir in KEYED_DIRS:
            directory = self.store.state_dir(queue, sdir)
            for name in self.store.listdir(directory):
                parsed = parse_ready(name) if needle in name else None
                if parsed is not None and parsed.job_id == job_id:
                    return directory / name
        return None

    def find_unlocked(self, job_id: str) -> Path | None:
        """``find`` without the lock: a job moving between two directories can slip past
        one look, so look again while its id entry says it exists."""
        for _ in range(5):
            path = self.find(job_id)
            if path is not None or self.store.queue_of(job_id) is None:
                return path
        return None

    def load(self, path: Path, job_id: str) -> Rec | None:
        """Read a record (caller holds its lock); a corrupt file is moved aside -> None."""
        try:
            data = read_file(path)
        except FileNotFoundError:
            return None
        try:
            return decode(data, job_id)
        except CorruptRecord as exc:
            if self.store.quarantine(path, str(exc)) is not None:
                self.store.drop_id(job_id)  # the job is gone from the store
            return None

    def read_current(self, job_id: str, path: Path | None) -> Rec | None:
        """Read a record without its lock, following it if it moved meanwhile; fall back to
        reading under the lock (which also moves a corrupt file aside)."""
        for _ in range(3):
            if path is None:
                break
            try:
                data = read_file(path)
            except FileNotFoundError:
                path = self.find(job_id)
                continue
            try:
                return decode(data, job_id)
            except CorruptRecord:
                break
        if self.store.queue_of(job_id) is None:
            return None
        with self.store.job_lock(job_id).hold():
            path = self.find(job_id)
            return self.load(path, job_id) if path is not None else None

    def target(self, rec: Rec, *, waiting: bool = False) -> Path:
        """Where a record belongs given its state (``waiting``: its dependencies are open)."""
        queue = rec["queue_name"]
        self.store.ensure_queue(queue)
        if rec["state"] in READY_STATES:
            return self.store.state_dir(queue, WAITING if waiting else READY) / ready_name(rec)
        return self.store.fixed_path(queue, rec["state"], rec["id"])

    def commit(self, path: Path, rec: Rec) -> None:
        """Rewrite a record where it is, then move it where its state belongs (caller holds
        the lock; the source is a scanned directory, so a crash between is repaired)."""
        self.store.write_job(path, encode(rec), finished_at(rec))
        target = self.target(rec, waiting=path.parent.name == WAITING)
        if target != path:
            self.store.move(path, target)

    def reopen(self, path: Path, rec: Rec) -> None:
        """Move a finished record back into play (caller holds the lock): rename first, then
        rewrite, so a crash between leaves it in a scanned directory to be repaired."""
        waiting = not self.deps_done(rec)
        if waiting:
            self.add_edges(rec)
        target = self.target(rec, waiting=waiting)
        self.store.move(path, target)
        self.store.write_job(target, encode(rec), finished_at(rec))

    def place(self, path: Path, rec: Rec) -> Path:
        """Repair (caller holds the lock): move a record whose place disagrees with its content
        to where it belongs; return where it is now."""
        waiting = rec["state"] in READY_STATES and not self.deps_done(rec)
        target = self.target(rec, waiting=waiting)
        if target != path:
            if waiting:
                self.add_edges(rec)
            self.store.move(path, target)
        return target

    def remove(self, path: Path, rec: Rec) -> None:
        self.store.unlink_job(path)
        if rec["idempotency_key"] is not None:
            self.drop_key(rec["idempotency_key"], rec["id"])
        self.store.drop_id(rec["id"])
        self.drop_children(rec)

    # -- dependencies ---------------------------------------------------------------------
    def dep_done(self, dep: str) -> bool:
        """A dependency is met when it is completed or does not exist."""
        queue = self.store.queue_of(dep)
        if queue is None or self.store.fixed_path(queue, State.COMPLETED, dep).exists():
            return True
        return self.find_unlocked(dep) is None

    def deps_done(self, rec: Rec) -> bool:
        """All met: completed, gone, or counted as met by ``settle_dependents``."""
        released = rec["satisfied_deps"]
        return all(dep in released or self.dep_done(dep) for dep in rec["dependencies"])

    def add_children(self, rec: Rec) -> None:
        """Index ``rec`` under each of its parents: ``children/<parent>/<child>``."""
        self._touch_under(self.store.children, rec)

    def drop_children(self, rec: Rec) -> None:
        child = fs_name(rec["id"])
        for dep in rec["dependencies"]:
            with contextlib.suppress(ValueError, OSError):
                directory = self.store.children / fs_name(dep)
                (directory / child).unlink(missing_ok=True)
                if not self.store.listdir(directory):
                    directory.rmdir()

    def dependents(self, job_ids: list[str]) -> list[str]:
        found: set[str] = set()
        for job_id in job_ids:
            try:
                directory = self.store.children / fs_name(job_id)
            except ValueError:
                continue  # no job can have that id
            found.update(from_fs_name(n) for n in self.store.listdir(directory)
                         if not ignorable(n))
        return sorted(c for c in found if self.store.queue_of(c) is not None)

    def add_edges(self, rec: Rec) -> None:
        """Record ``deps/<parent>/<child>`` so a completing parent can wake its children."""
        self._touch_under(self.store.deps, rec)

    def _touch_under(self, root: Path, rec: Rec) -> None:
        """An empty file ``root/<parent>/<child>`` for each of ``rec``'s dependencies."""
        child = fs_name(rec["id"])
        for dep in rec["dependencies"]:
            try:
                directory = root / fs_name(dep)
            except ValueError:
                continue  # no job can have that id
            for _ in range(3):
                with contextlib.suppress(FileNotFoundError):
                    os.close(os.open(directory / child, os.O_CREAT | os.O_WRONLY, 0o644))
                    break
                directory.mkdir(exist_ok=True)

    def promote(self, job_id: str, hint: Path | None = None) -> None:
        """Move a waiting job to ready once all its dependencies are met."""
        with self.store.job_lock(job_id).hold():
            path = hint if hint is not None and hint.exists() else self.find(job_id)
            if path is None or path.parent.name != WAITING:
                return
            rec = self.load(path, job_id)
            if rec is not None:
                self.place(path, rec)

    def wake_dependents(self, parent_id: str) -> None:
        """Re-check the children of a job that completed or disappeared."""
        directory = self.store.deps / fs_name(parent_id)
        names = self.store.listdir(directory)
        for name in names:
            if not ignorable(name):
                self.promote(from_fs_name(name))
                (directory / name).unlink(missing_ok=True)
        if names:
            with contextlib.suppress(OSError):
                directory.rmdir()

    def settle_dependents(self, parent: str, cancel: bool, reason: str, now: float) -> list[str]:
        """The jobs waiting on ``parent``, which failed for good or was cancelled: cancel the
        pending ones (``cancel``), or count ``parent`` as met for them, once per edge. Return the
        ids cancelled, or released (moved to ready). Each child changes under its own lock, and
        its edge is consumed with it."""
        try:
            directory = self.store.deps / fs_name(parent)
        except ValueError:
            return []  # no job can have that id, so none waits on it
        out: list[str] = []
        names = sorted(n for n in self.store.listdir(directory) if not ignorable(n))
        for name in names:
            child = from_fs_name(name)
            with self.store.job_lock(child).hold():
                path = self.find(child)
                rec = self.load(path, child) if path is not None else None
                if path is not None and rec is not None and parent in rec["dependencies"]:
                    settle = self._cancel_child if cancel else self._release_child
                    if settle(path, rec, parent, reason, now):
                        out.append(child)
                (directory / name).unlink(missing_ok=True)
        if names:
            with contextlib.suppress(OSError):
                directory.rmdir()
        return out

    def _cancel_child(self, path: Path, rec: Rec, parent: str, reason: str, now: float) -> bool:
        if rec["state"] != State.PENDING:
            return False
        key = rec["idempotency_key"]
        rec.update(state=State.CANCELLED.value, exception=reason, updated_at=now)
        key_on_finish(rec, now)
        self.commit(path, rec)
        self.settle_key(key, rec)
        return True

    def _release_child(self, path: Path, rec: Rec, parent: str, reason: str, now: float) -> bool:
        if parent in rec["satisfied_deps"]:
            return False  # an edge is satisfied once
        rec["satisfied_deps"].append(parent)
        self.store.write_job(path, encode(rec), finished_at(rec))
        if path.parent.name != WAITING:
            return False
        return self.place(path, rec).parent.name == READY

    # -- admission: ids and idempotency keys ----------------------------------------------
    def key_path(self, key: str) -> Path:
        import hashlib  # with OpenSSL's _hashlib (3.4 MB): only for jobs with a key

        return self.store.keys / (hashlib.sha256(key.encode()).hexdigest() + ".key")

    def claim_key(self, key: str, job_id: str) -> str | None:
        """Claim an idempotency key for ``job_id``; return the holder's id if it is taken."""
        path = self.key_path(key)
        for _ in range(10):
            if self.store.create_exclusive(path, job_id.encode()):
                return None
            try:
                holder = read_file(path).decode()
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if self.store.queue_of(holder) is not None:
                if not self._let_go(key, holder):
                    return holder
                continue
            if age < _KEY_STALE_AFTER:
                return holder
            lock = self.store.job_lock("key:" + path.name)
            with lock.hold(), contextlib.suppress(FileNotFoundError):  # abandoned: take over
                if read_file(path).decode() == holder:
                    path.unlink()
        raise Conflict(f"could not claim idempotency key {key!r} (contended)")

    def _let_go(self, key: str, holder: str) -> bool:
        """Free ``key`` if the job holding it has let go of it: its window after finishing has
        passed (the key is then cleared from its record, as a push does on SQLite), or its
        record no longer names the key (a marker a crash left behind). Caller holds no lock."""
        rec = self.read_current(holder, self.find_unlocked(holder))
        if rec is None or not key_let_go(rec, key, time.time()):
            return False  # it still blocks, or it is being written
        with self.store.job_lock(holder).hold():
            path = self.find(holder)
            rec = self.load(path, holder) if path is not None else None
            if path is None or rec is None or not key_let_go(rec, key, time.time()):
                return False
            if rec["idempotency_key"] == key:
                rec["idempotency_key"] = None
                self.commit(path, rec)
            self.drop_key(key, holder)
        return True

    def settle_key(self, key: str | None, rec: Rec) -> None:
        """After a change that freed the key a record held (caller holds the lock): drop its
        marker. The record is written first: a crash between leaves a marker that
        :meth:`claim_key` recognises as let go."""
        if key is not None and rec["idempotency_key"] != key:
            self.drop_key(key, rec["id"])

    def drop_key(self, key: str, job_id: str) -> None:
        path = self.key_path(key)
        with contextlib.suppress(FileNotFoundError):
            if read_file(path).decode() == job_id:
                path.unlink()

    def admit(self, job: NewJob) -> str | None:
        """Register a new job's key and id; the existing id if its key is taken."""
        fs_name(job.queue_name)  # unusable names fail before anything changes
        fs_name(job.id)
        if job.idempotency_key is not None:
            holder = self.claim_key(job.idempotency_key, job.id)
            if holder is not None and holder != job.id:
                return holder
        if not self.store.claim_id(job.id, job.queue_name):
            if job.idempotency_key is not None:
                self.drop_key(job.idempotency_key, job.id)
            raise Conflict(f"a job with id {job.id!r} already exists")
        return None

    def unadmit(self, rec: Rec) -> None:
        if rec["idempotency_key"] is not None:
            self.drop_key(rec["idempotency_key"], rec["id"])
        self.store.drop_id(rec["id"])

    def insert(self, recs: list[Rec]) -> None:
        """Write admitted records; jobs with dependencies wait until a re-check frees them.
        The id entries are made durable first: a record must never outlive its id entry."""
        if recs:
            keyed = any(rec["idempotency_key"] is not None for rec in recs)
            self.store.sync_dirs([self.store.ids, self.store.keys] if keyed else [self.store.ids])
        synced: set[Path] = set()
        held: list[tuple[str, Path]] = []
        with self.store.counted() as lines:  # one journal group for the batch
            for index, rec in enumerate(recs):
                waiting = rec["state"] in READY_STATES and bool(rec["dependencies"])
                try:
                    self.add_children(rec)
                    if waiting:
                        self.add_edges(rec)
                    path = self.target(rec, waiting=waiting)
                    self.store.write_job(path, encode(rec), finished_at(rec),
                                         replacing=False)
                except BaseException:
                    for rest in recs[index:]:
                        self.unadmit(rest)
                    raise
                self.store.note(lines, None, path)
                synced.add(path.parent)
                if waiting:
                    held.append((rec["id"], path))
        self.store.sync_dirs(synced)
        for job_id, path in held:
            self.promote(job_id, path)
