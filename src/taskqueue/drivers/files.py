"""Plain files: a job store with no database at all, for small setups on one machine.

Every job is one JSON file, and its directory says where it stands (see ``_files_store`` for
the layout). A ready job's file name starts with its inverted priority and due time, so a worker
finds the best job by listing one directory and sorting names, and claims it by ``rename()``
into ``processing/``: exactly one process wins a rename. Every read-check-write of a job record
(claim, settle, cancel, ...) runs under that job's ``flock`` lock, and every write goes to a
temp file, is fsynced and renamed into place, so the lease-epoch fencing holds between any
number of threads and processes.

A move that changes both a record and its directory first rewrites the record where it is,
then renames it (or renames first when it leaves an unscanned directory): a crash in between
leaves a record in a scanned directory (ready, waiting, processing) whose content disagrees
with its place, and whoever reads it next under its lock moves it where its content says.
A file that cannot be read is moved into ``corrupt/`` with a ``.reason`` file next to it.

Idempotency keys are marker files (``keys/``) that the job's record also names. A change that
frees a key (as its mode says) clears it from the record first, then removes the marker; a
push that meets a marker whose job has let go of the key, or whose window has passed, takes it
over. Dependencies are met when they complete or no longer exist (a dependency deleted later
releases its dependents too), or when ``dependency_failed`` counts them as met for a job.

Local filesystems only: ``flock`` and ``rename`` are not reliable across NFS or SMB mounts.
The host clock is the store's clock, as for SQLite.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

import orjson

from taskqueue.drivers import _files_scan as scan
from taskqueue.drivers._files_coord import Coordination
from taskqueue.drivers._files_jobs import READY_STATES, Records
from taskqueue.drivers._files_lease import Busy, Leases
from taskqueue.drivers._files_record import (
    Rec,
    encode,
    finished_at,
    from_job_record,
    key_on_finish,
    new_record,
    payload_text,
    to_job_record,
)
from taskqueue.drivers._files_store import (
    PROCESSING,
    WAITING,
    Store,
    fixed_id,
    parse_ready,
    warn_if_network_fs,
)
from taskqueue.drivers.base import HeartbeatResult, JobFilter, QueueStats
from taskqueue.errors import ConfigError, DriverUnavailable
from taskqueue.jobs.model import JobRecord, LeaseToken, NewJob
from taskqueue.jobs.states import State

P = ParamSpec("P")
R = TypeVar("R")

#: Store format versions this code knows; each entry prepares the store for that version.
FORMAT_VERSIONS = (1,)
_CANCELLABLE = READY_STATES | {State.PROCESSING.value}
_HOUSEKEEPING_EVERY = 30.0   # seconds between tidy-ups run from recover_expired
_TMP_MAX_AGE = 3600.0        # a temp file this old belongs to a writer that died


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn OSError into DriverUnavailable at the boundary, and re-create missing directories
    afterwards so a store whose directories vanished works again on the next call."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            driver = args[0]
            assert isinstance(driver, FileDriver)
            driver._store.forget_queues()
            with contextlib.suppress(OSError):
                driver._store.make_dirs()
            raise DriverUnavailable(f"files store {driver.root}: {exc}") from exc

    return wrapper


class FileDriver:
    """The Driver protocol over a directory tree (see the module docstring)."""

    name = "files"

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._store = Store(self.root, fsync=fsync)
        self._coord = Coordination(self._store)
        self._jobs = Records(self._store)
        self._leases = Leases(self._store, self._jobs)
        self._next_housekeeping = 0.0
        try:
            self._store.make_dirs()
        except OSError as exc:
            raise DriverUnavailable(f"files store {self.root}: {exc}") from exc
        warn_if_network_fs(self.root)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileDriver:
        """``file:///relative/dir`` or ``file:////absolute/dir``; ``?fsync=0`` trades
        durability on power loss for speed."""
        parts = urlsplit(url)
        path = parts.netloc + parts.path
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigError(f"no directory in {url!r}; use file:///storage/queue")
        for key, values in parse_qs(parts.query).items():
            if key == "fsync":
                options.setdefault("fsync", values[-1].lower() not in ("0", "false", "no", "off"))
        driver = cls(path, **options)
        driver.migrate()
        return driver

    # -- lifecycle ------------------------------------------------------------------------
    @_translated
    def migrate(self) -> list[int]:
        self._store.make_dirs()
        path = self.root / "format.json"
        with self._store.named_lock("format").hold():
            try:
                done = set(orjson.loads(path.read_bytes()).get("migrations", []))
            except FileNotFoundError:
                done = set()
            except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
                raise ConfigError(f"{path} is damaged ({exc}); fix or remove it") from exc
            if max(done, default=0) > FORMAT_VERSIONS[-1]:
                raise ConfigError(f"{self.root} was written by a newer taskqueue; upgrade it")
            applied = [v for v in FORMAT_VERSIONS if v not in done]
            if applied:  # version 1 is the directory layout made above
                data = {"format": "taskqueue-files", "migrations": sorted(done | set(applied))}
                self._store.write(path, orjson.dumps(data))
        return applied

    def close(self) -> None:
        self._store.close()

    def now(self) -> datetime:
        return datetime.now(UTC)

    # -- producing ------------------------------------------------------------------------
    @_translated
    def push(self, jobs: Sequence[NewJob]) -> list[str]:
        now = time.time()
        ids: list[str] = []
        admitted: list[Rec] = []
        try:
            for job in jobs:
                existing = self._jobs.admit(job)
                ids.append(existing or job.id)
                if existing is None:
                    admitted.append(new_record(job, now))
        except BaseException:
            for rec in admitted:
                self._jobs.unadmit(rec)
            raise
        self._jobs.insert(admitted)
        return ids

    @_translated
    def restore(self, records: Sequence[JobRecord]) -> int:
        admitted: list[Rec] = []
        try:
            for record in records:
                if not self._store.claim_id(record.id, record.queue_name):
                    continue  # an existing id is skipped: restoring again resumes
                key = record.idempotency_key
                if key is not None and self._jobs.claim_key(key, record.id) not in (
                        None, record.id):
                    self._store.drop_id(record.id)
                    continue
                admitted.append(from_job_record(record))
        except BaseException:
            for rec in admitted:
                self._jobs.unadmit(rec)
            raise
        self._jobs.insert(admitted)
        return len(admitted)

    # -- consuming ------------------------------------------------------------------------
    @_translated
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        if not queues or limit <= 0:
            return []
        now = time.time()
        got: list[JobRecord] = []
        busy: list[scan.Candidate] = []
        for cand in scan.due(self._store, queues, now):
            if len(got) >= limit:
                break
            outcome = self._leases.claim(cand, worker_id, lease_seconds, now, blocking=False)
            if outcome is Busy.BUSY:
                busy.append(cand)
            elif outcome is not None:
                got.append(outcome)
        for cand in busy:  # held by someone else a moment ago: wait for the lock this time
            if len(got) >= limit:
                break
            outcome = self._leases.claim(cand, worker_id, lease_seconds, now, blocking=True)
            if isinstance(outcome, JobRecord):
                got.append(outcome)
        got.sort(key=lambda j: (-j.priority, j.available_at, j.id))
        return got

    @_translated
    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        return self._leases.claim_id(job_id, worker_id, lease_seconds, time.time())

    def _settle(self, token: LeaseToken, change: Callable[[Rec], None]) -> bool:
        """Apply ``change`` only while ``state='processing' AND lease_epoch=token.epoch``."""
        with self._store.job_lock(token.job_id).hold():
            found = self._leases.leased(token)
            if found is None:
                return False
            path, rec = found
            key = rec["idempotency_key"]
            change(rec)
            self._jobs.commit(path, rec)
            self._jobs.settle_key(key, rec)
        return True

    @_translated
    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        now = time.time()
        extended, cancelled, lost = set(), set(), set()
        for token in tokens:
            token = LeaseToken(*token)
            with self._store.job_lock(token.job_id).hold():
                found = self._leases.leased(token)
                if found is not None:
                    path, rec = found
                    rec.update(lease_expires_at=now + lease_seconds, updated_at=now)
                    self._store.write(path, encode(rec))
                    extended.add(token.job_id)
                    continue
                where = self._jobs.find(token.job_id)
                now_rec = self._jobs.load(where, token.job_id) if where is not None else None
            if (now_rec and now_rec["state"] == State.CANCELLED
                    and now_rec["lease_epoch"] == token.epoch):
                cancelled.add(token.job_id)
            else:
                lost.add(token.job_id)
        return HeartbeatResult(frozenset(extended), frozenset(cancelled), frozenset(lost))

    @_translated
    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """One ``complete`` per item (each is its own atomic step here)."""
        return [self.complete(token, result) for token, result in items]

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            rec.update(state=State.COMPLETED.value, result=result, completed_at=now,
                       updated_at=now, progress=100.0, lease_owner=None, lease_expires_at=None)
            key_on_finish(rec, now)

        if not self._settle(LeaseToken(*token), change):
            return False
        self._jobs.wake_dependents(token[0])
        return True

    @_translated
    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            if retry_in is None:
                rec.update(state=State.FAILED.value, available_at=now, failed_at=now)
                key_on_finish(rec, now)
            else:
                rec.update(state=State.RETRYING.value, available_at=now + retry_in,
                           failed_at=None)
            rec.update(exception=error, updated_at=now, lease_owner=None, lease_expires_at=None)

        return self._settle(LeaseToken(*token), change)

    @_translated
    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            rec.update(state=State.PENDING.value, attempts=max(rec["attempts"] - 1, 0),
                       available_at=now + delay_seconds, updated_at=now, lease_owner=None,
                       lease_expires_at=None)
            if reason is not None:
                rec["exception"] = reason

        return self._settle(LeaseToken(*token), change)

    @_translated
    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        now = time.time()
        return self._settle(LeaseToken(*token),
                            lambda rec: rec.update(progress=float(progress), updated_at=now))

    @_translated
    def recover_expired(self) -> list[str]:
        now = time.time()
        recovered: list[str] = []
        for queue in self._store.queue_names():
            directory = self._store.state_dir(queue, PROCESSING)
            for name in self._store.listdir(directory):
                job_id = fixed_id(name)
                if job_id is not None and self._leases.recover(directory / name, job_id, now):
                    recovered.append(job_id)
        if now >= self._next_housekeeping:
            self._housekeeping(now)
        return recovered

    def _housekeeping(self, now: float) -> None:
        """Remove dead writers' temp files; free waiting jobs whose wake-up was lost."""
        self._next_housekeeping = now + _HOUSEKEEPING_EVERY
        self._store.clean_tmp(now - _TMP_MAX_AGE)
        for queue in self._store.queue_names():
            directory = self._store.state_dir(queue, WAITING)
            for name in self._store.listdir(directory):
                parsed = parse_ready(name)
                if parsed is not None:
                    self._jobs.promote(parsed.job_id, directory / name)

    @_translated
    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Poll the ready directories' mtimes with a growing interval (2 ms .. 50 ms), and
        wake when the next delayed job falls due."""
        deadline = time.monotonic() + timeout
        dirs = scan.ready_dirs(self._store, queues)
        next_due = scan.next_due(self._store, dirs)
        if next_due is not None:
            deadline = min(deadline, time.monotonic() + max(0.0, next_due - time.time()))
        before = scan.mtimes(dirs)
        interval = 0.002
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, 0.05)
            if scan.mtimes(dirs) != before:
                return

    # -- managing -------------------------------------------------------------------------
    @_translated
    def get(self, job_id: str) -> JobRecord | None:
        rec = self._jobs.read_current(job_id, self._jobs.find_unlocked(job_id))
        return to_job_record(rec) if rec is not None else None

    @_translated
    def search(self, criteria: JobFilter) -> list[JobRecord]:
        return scan.search(self._store, criteria, self._jobs.find_unlocked, self._jobs.read_current)

    @_translated
    def count(self, criteria: JobFilter) -> int:
        return scan.count(self._store, criteria, self._jobs.find_unlocked, self._jobs.read_current)

    @_translated
    def stats(self) -> dict[str, QueueStats]:
        return scan.stats(self._store, time.time(), self._jobs.read_current)

    def _change(self, job_id: str, allowed: frozenset[str], change: Callable[[Rec], None],
                move: Callable[[Path, Rec], None]) -> bool:
        """Apply ``change`` to a job in one of the ``allowed`` states, under its lock."""
        with self._store.job_lock(job_id).hold():
            path = self._jobs.find(job_id)
            rec = self._jobs.load(path, job_id) if path is not None else None
            if path is None or rec is None or rec["state"] not in allowed:
                return False
            key = rec["idempotency_key"]
            change(rec)
            move(path, rec)
            self._jobs.settle_key(key, rec)
        return True

    @_translated
    def cancel(self, job_id: str, reason: str) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            rec.update(state=State.CANCELLED.value, exception=reason, updated_at=now,
                       lease_owner=None, lease_expires_at=None)
            key_on_finish(rec, now)

        return self._change(job_id, _CANCELLABLE, change, self._jobs.commit)

    @_translated
    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        now = time.time()
        return self._change(job_id, frozenset({State.PENDING.value}), lambda rec: rec.update(
            payload=payload_text(payload), available_at=now + delay_seconds,
            delay_seconds=float(delay_seconds), updated_at=now), self._jobs.commit)

    @_translated
    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        return self._jobs.settle_dependents(job_id, cancel, reason, time.time())

    @_translated
    def retry(self, job_id: str) -> bool:
        now = time.time()
        return self._change(
            job_id, frozenset({State.FAILED.value, State.CANCELLED.value}),
            lambda rec: rec.update(state=State.PENDING.value, attempts=0, available_at=now,
                                   updated_at=now, failed_at=None, lease_owner=None,
                                   lease_expires_at=None), self._jobs.reopen)

    @_translated
    def set_priority(self, job_id: str, priority: int) -> bool:
        now = time.time()
        return self._change(job_id, _CANCELLABLE, lambda rec: rec.update(
            priority=priority, updated_at=now), self._jobs.commit)

    @_translated
    def delete(self, job_id: str) -> bool:
        if not self._change(job_id, frozenset(s.value for s in State), lambda rec: None,
                            self._jobs.remove):
            return False
        self._jobs.wake_dependents(job_id)
        return True

    @_translated
    def prune(self, completed_age: float, failed_age: float) -> int:
        now = time.time()
        cutoffs = {State.COMPLETED.value: now - completed_age,
                   State.FAILED.value: now - failed_age, State.CANCELLED.value: now - failed_age}
        deleted: list[str] = []
        for queue in self._store.queue_names():
            for state, cutoff in cutoffs.items():
                for path, job_id in scan.finished_before(self._store, queue, state, cutoff):
                    if self._prune_one(path, job_id, state, cutoff):
                        deleted.append(job_id)
        for job_id in deleted:
            self._jobs.wake_dependents(job_id)
        return len(deleted)

    def _prune_one(self, path: Path, job_id: str, state: str, cutoff: float) -> bool:
        with self._store.job_lock(job_id).hold():
            rec = self._jobs.load(path, job_id)
            finished = finished_at(rec) if rec is not None else None
            if rec is None or rec["state"] != state or finished is None or finished >= cutoff:
                return False
            self._jobs.remove(path, rec)
        return True

    # -- coordination ---------------------------------------------------------------------
    @_translated
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return self._coord.lock_acquire(name, owner, ttl_seconds)

    @_translated
    def lock_release(self, name: str, owner: str) -> bool:
        return self._coord.lock_release(name, owner)

    @_translated
    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        return self._coord.counter_incr(key, amount, window_seconds)

    @_translated
    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        self._coord.registry_put(kind, key, data, ttl_seconds)

    @_translated
    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return self._coord.registry_list(kind)

    @_translated
    def registry_remove(self, kind: str, key: str) -> None:
        self._coord.registry_remove(kind, key)

