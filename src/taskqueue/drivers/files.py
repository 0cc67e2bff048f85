"""Plain files: a job store with no database at all, for small setups on one machine.

Every job is one JSON file, and its directory says where it stands (see ``_files_store`` for
the layout). A ready job's file name starts with its inverted priority and due time, so a worker
finds the best job by listing one directory and sorting names, and claims it by ``rename()``
into ``processing/``: exactly one process wins a rename. Every read-check-write of a job record
(claim, settle, cancel, ...) runs under that job's ``flock`` lock, so the lease-epoch fencing
holds between any number of threads and processes. Every write goes to a temp file and is
renamed into place, so a reader sees a whole old or a whole new record, and a writer killed
midway leaves only a temp file (cleaned up later). A reservation lists ``ready/`` only when its
mtime changed and parses only names it has not seen (``_files_index``).

Durability. By default nothing is fsynced (``fsync=False``). A process killed at any point,
even with ``kill -9``, loses nothing it acknowledged: the write went to the kernel's page cache,
which outlives the process, and the rename makes it visible whole or not at all. A power cut or
an OS crash can roll back the changes of the last ~30 seconds (the kernel's write-back delay):
a job may be back in the state it had before (ready again after a claim or a completion, which
at-least-once delivery absorbs: it runs again), and a job pushed just before may be missing. A
file the crash left empty is moved to ``corrupt/`` with its reason, never silently dropped; on
ext4 (data=ordered, auto_da_alloc: the defaults) and btrfs, a rename that replaces a record
writes the new data first, so a rewritten record reads old or new. This is the trade the SQLite
backend makes with ``synchronous=NORMAL``, and less than huey's file storage, which writes in
place and never syncs. ``?fsync=1`` (``fsync=True``) makes every change durable before the call
returns: each file is fsynced before its rename, directories after new entries. It costs about
0.3-1 ms per write on a typical SSD, several per job.

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
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from taskqueue.drivers import _attempts, _views
from taskqueue.drivers import _files_scan as scan
from taskqueue.drivers._files_coord import Coordination
from taskqueue.drivers._files_counts import Counts
from taskqueue.drivers._files_index import ReadyIndex
from taskqueue.drivers._files_jobs import Records
from taskqueue.drivers._files_lease import Busy, Leases
from taskqueue.drivers._files_manage import Admin
from taskqueue.drivers._files_record import (
    Rec,
    from_job_record,
    new_record,
    to_job_record,
)
from taskqueue.drivers._files_settle import Settler
from taskqueue.drivers._files_store import (
    PROCESSING,
    WAITING,
    Store,
    fixed_id,
    parse_ready,
    warn_if_network_fs,
)
from taskqueue.drivers.base import (
    CloseHooks,
    DueFilter,
    HeartbeatResult,
    JobFilter,
    QueueStats,
    check_bulk,
)
from taskqueue.errors import ConfigError, DriverUnavailable
from taskqueue.jobs.model import Attempt, JobRecord, LeaseToken, NewJob

P = ParamSpec("P")
R = TypeVar("R")

#: Store format versions this code knows; each entry prepares the store for that version.
#: 1: the directory layout. 2: ``children/``, the lasting index of dependents (filled from the
#: jobs already stored). 3: the job counters, ``coord/counts.json`` (the jobs already stored
#: counted once; see ``_files_counts``).
FORMAT_VERSIONS = (1, 2, 3)
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
            driver._index.forget()
            with contextlib.suppress(OSError):
                driver._store.make_dirs()
            raise DriverUnavailable(f"files store {driver.root}: {exc}") from exc

    return wrapper


def file_url_path(url: str) -> Path:
    """The directory a ``file:`` URL names, read as RFC 8089 and every other tool reads it.

    ``file:///var/lib/jobs`` and ``file://localhost/var/lib/jobs`` are the absolute
    ``/var/lib/jobs`` (extra leading slashes collapse: ``file:////var/lib/jobs`` too);
    ``file:jobs`` and ``file:./jobs`` are relative to the working directory. Percent escapes
    are decoded. Another host is refused: the store must be on a local disk.
    """
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"file URL {url!r} names the host {parts.netloc!r}; the files store "
                          "must be on a local disk (file:///absolute/dir or file:relative/dir)")
    raw = unquote(parts.path)
    if not raw.strip("/"):
        raise ConfigError(f"no directory in {url!r}; use file:///var/lib/jobs (absolute) or "
                          "file:storage/jobs (relative to the working directory)")
    if raw.startswith("/"):
        return Path("/" + raw.lstrip("/"))
    if url.startswith("file://"):  # file://dir/x is a host, refused above; this is file://
        raise ConfigError(f"no directory in {url!r}")
    return Path(raw)


class FileDriver(CloseHooks, _views.ReadsEveryMatch):
    """The Driver protocol over a directory tree (see the module docstring)."""

    name = "files"
    #: ``ParallelWriters``: every write locks only the job (or document) it changes
    parallel_writers = True

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self._store = Store(self.root, fsync=fsync)
        self._coord = Coordination(self._store)
        self._jobs = Records(self._store)
        self._leases = Leases(self._store, self._jobs)
        self._settler = Settler(self._store, self._jobs, self._leases)
        self._admin = Admin(self._store, self._jobs)
        self._index = ReadyIndex(self._store)
        self._counts = Counts(self._store)
        self._next_housekeeping = 0.0
        self._locks_open = False
        try:
            self._store.make_dirs()
        except OSError as exc:
            raise DriverUnavailable(f"files store {self.root}: {exc}") from exc
        warn_if_network_fs(self.root)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileDriver:
        """``file:///absolute/dir`` (RFC 8089) or ``file:relative/dir``; ``?fsync=1`` makes
        every change durable against power loss too (see the module docstring), at a cost."""
        parts = urlsplit(url)
        path = file_url_path(url)
        old_reading = Path(str(path).lstrip("/"))
        if (path.is_absolute() and not path.exists()
                and (old_reading / "format.json").is_file()):
            raise ConfigError(
                f"{url!r} is the absolute directory {path}, which does not exist; a files store "
                f"is in the relative {old_reading} (taskqueue before 0.2 read file:/// URLs as "
                f"relative). Use file:{old_reading} for it, or move it to {path}")
        for key, values in parse_qs(parts.query).items():
            if key == "fsync":
                options.setdefault("fsync", values[-1].lower() not in ("0", "false", "no", "off"))
        migrate = options.pop("migrate", True)
        driver = cls(path, **options)
        if migrate:
            driver.migrate()
        return driver

    # -- lifecycle ------------------------------------------------------------------------
    @_translated
    def migrate(self) -> list[int]:
        self._store.make_dirs()
        path = self.root / "format.json"
        with self._store.named_lock("format").hold():
            done = self._applied()
            if max(done, default=0) > FORMAT_VERSIONS[-1]:
                raise ConfigError(f"{self.root} was written by a newer taskqueue; upgrade it")
            applied = [v for v in FORMAT_VERSIONS if v not in done]
            if 2 in applied and done:  # an existing store: index the dependents it holds
                self._index_children()
            if 3 in applied:  # count the jobs already stored (none in a new store)
                self._counts.recount()
            if applied:  # version 1 is the directory layout made above
                data = {"format": "taskqueue-files", "migrations": sorted(done | set(applied))}
                self._store.write(path, orjson.dumps(data))
        return applied

    def _index_children(self) -> None:
        after: str | None = None
        while page := self.search(JobFilter(after_id=after, limit=1000, newest_first=False)):
            for record in page:
                if record.dependencies:
                    self._jobs.add_children({"id": record.id,
                                             "dependencies": list(record.dependencies)})
            after = page[-1].id

    def schema_absent(self) -> bool:
        return self.nothing_in(self.root)

    @staticmethod
    def nothing_in(root: Path) -> bool:
        """No format file and no queue directory (or nothing in it) under ``root``."""
        queues = root / "queues"
        return not (root / "format.json").exists() and not (
            queues.is_dir() and any(queues.iterdir()))

    @classmethod
    def nothing_at(cls, url: str) -> bool:
        """No files store at the URL's directory (``drivers.nothing_at``)."""
        return cls.nothing_in(file_url_path(url))

    @_translated
    def missing_migrations(self) -> list[int]:
        done = self._applied()
        return [v for v in FORMAT_VERSIONS if v not in done]

    def _applied(self) -> set[int]:
        """The format versions ``format.json`` records as applied."""
        path = self.root / "format.json"
        try:
            return set(orjson.loads(path.read_bytes()).get("migrations", []))
        except FileNotFoundError:
            return set()
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise ConfigError(f"{path} is damaged ({exc}); fix or remove it") from exc

    def close(self) -> None:
        self._closing()
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
        self._fold_if_due()
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
        for cand in self._index.due(queues, now):
            if len(got) >= limit:
                break
            outcome = self._leases.claim(cand, worker_id, lease_seconds, now, blocking=False)
            if outcome is Busy.BUSY:
                busy.append(cand)
                continue
            self._index.drop(cand)  # taken by us, or gone: either way no longer ready here
            if outcome is not None:
                got.append(outcome)
        for cand in busy:  # held by someone else a moment ago: wait for the lock this time
            if len(got) >= limit:
                break
            outcome = self._leases.claim(cand, worker_id, lease_seconds, now, blocking=True)
            if outcome is not Busy.BUSY:
                self._index.drop(cand)
            if isinstance(outcome, JobRecord):
                got.append(outcome)
        got.sort(key=lambda j: (-j.priority, j.available_at, j.id))
        self._fold_if_due()
        return got

    @_translated
    def warm(self, queues: Sequence[str]) -> None:
        """Build the ready index of ``queues``, open the job locks' files and have inodes
        ready for the first record writes (``Warms``: a standby calls it while it waits)."""
        self._index.warm(queues)
        if not self._locks_open:
            self._store.open_job_locks()
            self._locks_open = True
        self._store.stock_spares()

    @_translated
    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        return self._leases.claim_id(job_id, worker_id, lease_seconds, time.time())

    @_translated
    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        return self._settler.heartbeat(worker_id, tokens, lease_seconds)

    @_translated
    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        return self._settler.complete_many(items)

    @_translated
    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        return self._settler.complete(token, result)

    @_translated
    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        return self._settler.fail(token, error, retry_in)

    @_translated
    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        return self._settler.release(token, delay_seconds, reason)

    @_translated
    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        return self._settler.set_progress(token, progress)

    @_translated
    def recover_expired(self) -> list[str]:
        now = time.time()
        recovered = self._recover(now)
        if now >= self._next_housekeeping:
            self._housekeeping(now)
        return recovered

    @_translated
    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        return self._recover(time.time(), worker_id, reason, started)

    def _recover(self, now: float, owner: str | None = None, cause: str = "",
                 started: Collection[str] | None = None) -> list[str]:
        """Expire the leases that ran out, or (``owner``) every lease of a dead worker."""
        recovered: list[str] = []
        for queue in self._store.queue_names():
            directory = self._store.state_dir(queue, PROCESSING)
            for name in self._store.listdir(directory):
                job_id = fixed_id(name)
                ran = started is None or job_id in started
                if job_id is not None and self._leases.recover(directory / name, job_id, now,
                                                               owner, cause, ran):
                    recovered.append(job_id)
        return recovered

    def _fold_if_due(self) -> None:
        """Fold the counters' journals now and then, so ``stats`` has little left to fold
        (skipped if another process is folding)."""
        if self._store.journal.wants_fold:
            self._counts.fold(blocking=False)

    def _housekeeping(self, now: float) -> None:
        """Remove dead writers' temp files; free waiting jobs whose wake-up was lost; fold
        the counters' journals (removing those of dead writers)."""
        self._next_housekeeping = now + _HOUSEKEEPING_EVERY
        self._counts.fold(blocking=False)
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
        wake when the next delayed job falls due. While a directory changed too recently for
        its mtime to be trusted (a push in the same clock tick leaves it unchanged), each
        poll also lists it again (``ReadyIndex.settled``)."""
        deadline = time.monotonic() + timeout
        index = self._index
        # the mtimes first: a job made ready after they are read (a push, a dependent its
        # parent's completion released) changes them, or lands in the tick next_due relists
        before = index.mtimes(queues)
        next_due = index.next_due(queues)
        if next_due is not None:
            deadline = min(deadline, time.monotonic() + max(0.0, next_due - time.time()))
        interval = 0.002
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, 0.05)
            if index.mtimes(queues) != before:
                return
            if not index.settled(queues):
                due = index.next_due(queues)
                if due is not None and due <= time.time():
                    return

    # -- managing -------------------------------------------------------------------------
    @_translated
    def get(self, job_id: str) -> JobRecord | None:
        rec = self._jobs.read_current(job_id, self._jobs.find_unlocked(job_id))
        return to_job_record(rec) if rec is not None else None

    @_translated
    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        return self._jobs.dependents(list(job_ids))

    @_translated
    def attempt_history(self, job_id: str) -> list[Attempt]:
        rec = self._jobs.read_current(job_id, self._jobs.find_unlocked(job_id))
        return _attempts.parse(rec["attempt_history"]) if rec is not None else []

    @_translated
    def search(self, criteria: JobFilter) -> list[JobRecord]:
        return scan.search(self._store, criteria, self._jobs.find_unlocked, self._jobs.read_current)

    @_translated
    def count(self, criteria: JobFilter) -> int:
        return scan.count(self._store, criteria, self._jobs.find_unlocked, self._jobs.read_current)

    # The dashboard's views read every match here (sorting, grouping: _views.ReadsEveryMatch).
    def due(self, criteria: DueFilter) -> list[JobRecord]:
        return _views.due_by_scan(self.search, self.now(), criteria)

    def count_due(self, criteria: DueFilter) -> int:
        return _views.count_due_by_scan(self.search, self.now(), criteria)

    @_translated
    def stats(self) -> dict[str, QueueStats]:
        return self._counts.stats(time.time())

    @_translated
    def cancel(self, job_id: str, reason: str) -> bool:
        return self._admin.cancel(job_id, reason)

    @_translated
    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        return self._admin.replace_payload(job_id, payload, delay_seconds)

    @_translated
    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        return self._jobs.settle_dependents(job_id, cancel, reason, time.time())

    @_translated
    def retry(self, job_id: str) -> bool:
        return self._admin.retry(job_id)

    @_translated
    def set_priority(self, job_id: str, priority: int) -> bool:
        return self._admin.set_priority(job_id, priority)

    @_translated
    def delete(self, job_id: str) -> bool:
        return self._admin.delete(job_id)

    @_translated
    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        ids = check_bulk(action, job_ids, priority)
        return self._admin.apply_many(action, ids, reason, priority)

    @_translated
    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        return self._admin.prune(completed_age, failed_age, limit, dry_run)

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

