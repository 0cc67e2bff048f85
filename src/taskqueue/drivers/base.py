"""The storage contract: the one Protocol every backend implements, and its value types.

A driver stores bytes and enforces the state machine and the lease-epoch guards atomically. It
holds no policy: backoff, encryption, schedules and limits live above it. Every settle call
(complete, fail, release, progress) is accepted only while the caller still holds the job's
lease epoch *and* the job is ``processing``; a worker that lost its lease gets ``False`` back and
cannot overwrite the job's new owner.

Times given to a driver are durations in seconds; the driver adds them to the store's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from taskqueue.jobs.model import Attempt, JobRecord, JobRun, LeaseToken, NewJob
from taskqueue.jobs.states import State


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a heartbeat learned: leases extended, jobs cancelled meanwhile, leases lost."""

    extended: frozenset[str] = frozenset()
    cancelled: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Search criteria; empty fields match everything. Results are ordered by id (time)."""

    queues: tuple[str, ...] = ()
    states: tuple[State, ...] = ()
    names: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    tag: str | None = None
    batch_id: str | None = None
    exception_contains: str | None = None
    #: Keyset paging: only ids after this one in the chosen order (faster than ``offset``).
    after_id: str | None = None
    limit: int = 100
    offset: int = 0
    newest_first: bool = True


@dataclass(slots=True)
class QueueStats:
    """Counts and gauges of one queue."""

    counts: dict[State, int] = field(default_factory=lambda: {s: 0 for s in State})
    avg_priority: float | None = None          # over pending/retrying jobs
    oldest_ready_at: datetime | None = None     # available_at of the oldest waiting job
    completed_last_minute: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {s.value: n for s, n in self.counts.items()}
        out["avg_priority"] = self.avg_priority
        out["oldest_ready_at"] = self.oldest_ready_at.isoformat() if self.oldest_ready_at else None
        out["completed_last_minute"] = self.completed_last_minute
        return out


@dataclass(frozen=True, slots=True)
class DueFilter:
    """The jobs waiting for a due time, soonest first (``Driver.due``): ``pending`` ones due
    later than the store's clock (scheduled: a delay, an eta, a snooze) or every ``retrying``
    one (waiting out its backoff). Ordered by (``available_at``, ``id``); ``after`` is the
    (``available_at``, ``id``) of the last job of the previous page (keyset paging)."""

    state: State = State.PENDING
    queues: tuple[str, ...] = ()
    after: tuple[datetime, str] | None = None
    limit: int = 100


#: The states ``Driver.due`` answers for.
DUE_STATES = frozenset({State.PENDING, State.RETRYING})

#: Columns ``Driver.sorted_search`` orders by (a whitelist) -> the job field each one is.
SORT_COLUMNS: dict[str, str] = {
    "priority": "priority", "attempts": "attempts", "updated": "updated_at",
    "state": "state", "queue": "queue_name", "name": "name",
}


@dataclass(frozen=True, slots=True)
class ErrorText:
    """One distinct exception text among the jobs a filter matches (``Driver.error_texts``):
    how many jobs carry it, the task names and queues they come from, the newest job (largest
    id) and the latest failure time among them."""

    exception: str | None
    count: int
    latest_id: str
    latest_at: datetime | None
    names: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


class GraphNode(NamedTuple):
    """What a workflow graph draws of a job (``Driver.graph_nodes``): no payload, result,
    exception or times, so a batch of thousands is read in a few milliseconds (a named tuple:
    a third of a frozen dataclass's cost to build)."""

    id: str
    name: str
    state: State
    queue_name: str
    attempts: int = 0
    progress: float | None = None
    dependencies: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: JobRecord) -> GraphNode:
        return cls(record.id, record.name, record.state, record.queue_name, record.attempts,
                   record.progress, record.dependencies)


#: The actions of ``Driver.apply_many`` and the states each one changes: the guards of the
#: single-job verbs (``retry``, ``cancel``, ``set_priority``), and for ``delete`` every state
#: but ``processing`` (a running job is cancelled first, so its worker stops it cleanly).
BULK_STATES: dict[str, frozenset[State]] = {
    "retry": frozenset({State.FAILED, State.CANCELLED}),
    "cancel": frozenset({State.PENDING, State.RETRYING, State.PROCESSING}),
    "priority": frozenset({State.PENDING, State.RETRYING, State.PROCESSING}),
    "delete": frozenset(State) - {State.PROCESSING},
}
#: Ids one ``apply_many`` call takes at most (callers page).
BULK_MAX = 5000


def check_bulk(action: str, job_ids: Sequence[str], priority: int | None) -> list[str]:
    """Validate ``apply_many``'s arguments; return the ids, each once, in the given order."""
    if action not in BULK_STATES:
        raise ValueError(f"unknown bulk action {action!r}; actions: {', '.join(BULK_STATES)}")
    if action == "priority" and priority is None:
        raise ValueError("apply_many('priority', ...) needs the new priority")
    ids = list(dict.fromkeys(job_ids))
    if len(ids) > BULK_MAX:
        raise ValueError(f"apply_many takes at most {BULK_MAX} ids per call, got {len(ids)}")
    return ids


class CloseHooks:
    """``before_close`` for a driver: its ``close()`` calls ``_closing()`` before releasing
    anything. A callback that raises is logged and the others still run."""

    def before_close(self, callback: Callable[[], None]) -> None:
        hooks: list[Callable[[], None]] = self.__dict__.setdefault("_close_hooks", [])
        hooks.append(callback)

    def _closing(self) -> None:
        hooks: list[Callable[[], None]] = self.__dict__.pop("_close_hooks", [])
        for hook in reversed(hooks):
            try:
                hook()
            except Exception:  # noqa: BLE001 - the store is closed all the same
                logging.getLogger("taskqueue.drivers").exception("before_close callback failed")


@runtime_checkable
class Driver(Protocol):
    """The atomic verbs a storage backend offers. See the conformance suite for the semantics."""

    #: Short backend name ("sqlite", "postgres", ...).
    name: str

    # -- lifecycle ------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Create or upgrade the schema; return the versions applied now (idempotent)."""

    def missing_migrations(self) -> list[int]:
        """The schema versions this code knows that the store has not applied, without
        writing anything (read-only commands and replicas check this instead of migrating).
        ``from_url(url, migrate=False)`` opens a store without migrating it."""

    def schema_absent(self) -> bool:
        """True when the store holds no taskqueue schema at all (never migrated: a new
        database, file, directory or key prefix), as opposed to an older schema; without
        writing anything. Read-only commands show such a store as empty."""

    def close(self) -> None:
        """Release connections. The driver must not be used afterwards."""

    def before_close(self, callback: Callable[[], None]) -> None:
        """Have ``close()`` call ``callback`` first, while the store is still open: the last
        writes of what uses this driver in the background (a statistics recorder's final
        flush), whoever closes it. Callbacks run once each, the latest first
        (:class:`CloseHooks`)."""

    def now(self) -> datetime:
        """The store's clock (UTC)."""

    # -- producing ------------------------------------------------------------------------
    def push(self, jobs: Sequence[NewJob]) -> list[str]:
        """Insert jobs in one round trip; return their ids in order.

        A job whose ``idempotency_key`` already exists is not inserted: the existing job's id is
        returned in its place. The key stops blocking duplicates as its ``idempotency_mode``
        says: "exists" never (until the job is deleted or pruned); "started"/"debounce" when the
        job is reserved; "finished" when it completes, fails for good or is cancelled; "window"
        ``idempotency_window`` seconds after that. A job with dependencies stays pending until
        all of them complete (dependencies that do not exist count as complete).
        """

    # -- consuming ------------------------------------------------------------------------
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        """Atomically take up to ``limit`` ready jobs, highest priority first then FIFO.

        Each becomes ``processing`` with ``attempts + 1``, a lease for ``worker_id`` expiring
        ``lease_seconds`` from now, and ``lease_epoch + 1``. Two callers never get the same job.
        """

    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        """Reserve one given job if it is ready now, with the same effects as ``reserve``."""

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        """Extend the leases still held; report jobs cancelled meanwhile and leases lost."""

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        """processing -> completed (stores ``result``); releases dependents."""

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """``complete`` for many jobs in one round trip; acceptance per item, in order."""

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        """processing -> retrying (due in ``retry_in`` s), or -> failed if ``retry_in`` is None.

        The attempt is appended to the job's attempt history in the same statement (attempt,
        worker, started, ended, outcome, the error clipped by ``_attempts.clip``); so are the
        attempts ended by ``recover_expired`` and ``recover_worker``. ``complete`` clears
        ``exception`` and closes a history that exists with a ``completed`` entry (a job that
        never failed has none: a first-time success writes nothing more)."""

    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        """processing -> pending without using an attempt (hand back, snooze, held by a limit).

        A ``reason`` (e.g. "rate limit 100/m reached") is stored in ``exception`` so people can
        see why the job waits; without one, ``exception`` is left as it was."""

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        """Record a running job's progress (0..100)."""

    def recover_expired(self) -> list[str]:
        """Expired leases: processing -> retrying, or -> failed when attempts are spent."""

    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        """A worker process is known to be dead (its supervisor saw it exit): every job still
        ``processing`` under its ``lease_owner`` moves at once, without waiting for its lease.

        Jobs it had started (ids in ``started``; every job it held when ``started`` is None)
        move as an expired lease would: -> retrying due now, or -> failed when attempts are
        spent, with ``exception`` = ``"<reason> (attempt N of M)"``. The others (reserved, not
        started) go back to pending with their attempt refunded, like ``release``. Owner and
        state fence it: a worker id is unique per process and every reservation writes a new
        owner with a new epoch, so a job another worker holds now is never touched. Returns
        the ids moved, both kinds."""

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Block up to ``timeout`` s, returning early when work may be ready (a hint only)."""

    # -- managing -------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None: ...

    def search(self, criteria: JobFilter) -> list[JobRecord]: ...

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        """The ids of the jobs that depend on any of ``job_ids``, from the store's index of
        dependency edges (kept for the life of the child, whatever the edges' state), sorted,
        each once. Used to walk a workflow downward without scanning the jobs."""

    def attempt_history(self, job_id: str) -> list[Attempt]:
        """The attempts recorded for the job, oldest first (empty for an unknown job or one
        that never failed). See ``fail`` for what is recorded."""

    def count(self, criteria: JobFilter) -> int:
        """How many jobs match ``criteria`` (ignoring limit and offset)."""

    def cancel(self, job_id: str, reason: str) -> bool:
        """pending/retrying/processing -> cancelled; a running job learns it at its heartbeat."""

    def retry(self, job_id: str) -> bool:
        """failed/cancelled -> pending, with attempts reset and due now."""

    def set_priority(self, job_id: str, priority: int) -> bool:
        """Change the priority of a job that has not finished."""

    def delete(self, job_id: str) -> bool: ...

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        """One action on a page of jobs (up to ``BULK_MAX`` ids) in one statement or script:
        ``retry``, ``cancel`` (with ``reason``), ``priority`` (to ``priority``) or ``delete``.
        Each job changes exactly as the single-job verb would change it, and only from the
        states ``BULK_STATES`` gives the action; jobs in other states and unknown ids are
        skipped. Returns the ids changed, in the order given. Cascades (a cancelled job's
        dependents, batch callbacks) are the caller's, as after ``cancel``."""

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        """``search`` ordered by ``column`` (a key of ``SORT_COLUMNS``; anything else is a
        ``ValueError``), then by id newest first, paged by ``criteria.offset``/``limit``
        (``after_id`` still bounds the ids). States sort by their names, times by time.
        ``within``: only the newest that many matches are sorted (a bound on the work for a
        filter that matches a large part of a big store)."""

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        """The distinct exception texts of the jobs matching ``criteria`` (its ``limit``,
        ``offset`` and order ignored) with their counts, most common first then by text: one
        GROUP BY on the SQL stores. At most ``limit`` texts: a caller that gets ``limit`` back
        knows there may be more. The dashboard groups these by error pattern."""

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        """``search`` (the same filter, order and paging) reading only what a graph draws of
        each job (``GraphNode``): the dashboard's workflow and batch graphs."""

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        """A page of the jobs waiting for a due time, soonest first (see ``DueFilter``), read
        from the store's index of due times."""

    def count_due(self, criteria: DueFilter) -> int:
        """How many jobs ``due`` would list over all its pages (``after``/``limit`` ignored)."""

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        """Replace a *pending* job's payload and due time (debounced unique jobs)."""

    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        """Job ``job_id`` failed for good or was cancelled; settle the jobs waiting on it.

        ``cancel=True``: its pending dependents become ``cancelled`` with ``reason`` (their ids
        are returned so the caller can cascade further). ``cancel=False``: it counts as
        satisfied for them, as a completion would; the ids released are returned."""

    def restore(self, records: Sequence[JobRecord]) -> int:
        """Insert complete records as they are (state, attempts, timestamps, result, lease
        epoch), skipping ids that already exist; return how many were inserted. Used by
        ``taskqueue transfer`` to move a store to another backend, resumably. A record whose
        ``extra["attempt_history"]`` holds entries (``Attempt.entry()``) keeps that history."""

    def stats(self) -> dict[str, QueueStats]:
        """Per-queue counts by state and gauges."""

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        """Delete completed jobs older than ``completed_age`` s, failed/cancelled older than
        ``failed_age`` s (by their finish time); return how many were deleted. ``limit``: at
        most that many, in one short transaction (callers loop, so workers interleave);
        ``dry_run``: delete nothing, return how many would go (ignoring ``limit``)."""

    # -- coordination ---------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or renew, when ``owner`` holds it) a named lock that expires after the TTL."""

    def lock_release(self, name: str, owner: str) -> bool: ...

    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        """Add to a counter that resets when its window (started at first use) ends."""

    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        """Publish an entry (worker, node, ...) that disappears unless refreshed within the TTL."""

    def registry_list(self, kind: str) -> list[dict[str, Any]]: ...

    def registry_remove(self, kind: str, key: str) -> None: ...


@runtime_checkable
class CompletesAndReserves(Protocol):
    """An optional verb: a driver that can acknowledge completions and reserve the next batch
    in ONE transaction offers it, and the worker then uses it instead of ``complete_many``
    followed by ``reserve`` (one commit per batch instead of two). Retried after an error,
    nothing may happen twice: one transaction (SQLite, PostgreSQL), or steps that are each
    atomic and safe to repeat, sent in one round trip (Redis: the completion scripts refuse a
    replayed completion, and the reservation's script is the one ``reserve`` runs, so a retry
    is what a retried ``reserve`` would be). Drivers that could do neither do not offer it."""

    def complete_and_reserve(
        self, items: Sequence[tuple[LeaseToken, str | None]], worker_id: str,
        queues: Sequence[str], limit: int, lease_seconds: float,
    ) -> tuple[list[bool], list[JobRecord]]:
        """``complete_many(items)`` (answers in order), then ``reserve(...)``; jobs released by
        these completions may be among those reserved."""


@runtime_checkable
class PushesRuns(Protocol):
    """An optional verb: a driver that can insert the first jobs of a large batch while the
    producer is still making the rest (PostgreSQL: one COPY written a run at a time) offers
    it. ``Client.push_many`` then makes each run of jobs while the store inserts the previous
    one, instead of making every job first."""

    def push_runs(self, count: int, runs: Callable[[], Iterator[JobRun]]) -> list[str]:
        """``push`` of ``count`` jobs, none with an idempotency key, a dependency or a delay,
        that ``runs()`` yields a run at a time (jobs that differ only in their ids and
        payloads), each made as it is taken. All or nothing: when making a run raises, no job
        is stored and that error propagates unchanged. ``runs`` may be called again (a retry):
        it then yields every job again, from the first."""


@runtime_checkable
class WarmsUp(Protocol):
    """An optional verb: a driver whose first calls on a new connection cost much more than the
    later ones (a session to open, the server's caches to fill, statements to prepare) offers
    it. A worker waiting for its turn (a standby) calls it, so that when it starts, its first
    reservation does not open a session while another thread takes the only one it had."""

    def warm_up(self, connections: int) -> None:
        """Have ``connections`` idle sessions open, each with its first calls done (cheap once
        they are). Nothing in the store changes."""


@runtime_checkable
class Warms(Protocol):
    """An optional verb: a driver whose first reservation fills an in-process cache (the files
    backend's index of ready jobs; SQLite's page cache, and a process's memory just after its
    fork) offers it. A worker waiting to start (a standby, pre-forked until the worker it
    replaces leaves) calls it while it waits, so its first reservation finds the cache built
    instead of losing processing time to it."""

    def warm(self, queues: Sequence[str]) -> None:
        """Fill what the next ``reserve`` from ``queues`` would fill (errors are the caller's
        to ignore: the reservation does it again)."""


@runtime_checkable
class ParallelWriters(Protocol):
    """An optional mark: a store where one process's writes never wait for another's (no
    store-wide write lock: the files backend locks each job on its own). A worker that recycles
    on such a store says it leaves first, then settles its last completions and its registry
    entries while its replacement claims jobs. On a store with one writer at a time (SQLite)
    those writes would queue with the replacement's reservations, so there it settles first."""

    parallel_writers: bool


@runtime_checkable
class EstimatesCounts(Protocol):
    """An optional verb: a driver whose store can tell, without counting, that counting would
    be slow, and about how many jobs would be counted (PostgreSQL's planner) offers it. The
    dashboard then shows that figure labelled as an estimate instead of waiting for the exact
    count of a large match."""

    def estimate_count(self, criteria: JobFilter) -> int | None:
        """About how many jobs match ``criteria`` when an exact count would read many rows;
        None when counting exactly is cheap (the caller then calls ``count``)."""


@runtime_checkable
class Recounts(Protocol):
    """An optional verb: a store whose stats counters see only the driver's own writes (MySQL:
    no triggers) offers it to bring them back in line with the jobs after SQL of other
    programs. ``taskqueue migrate`` calls it."""

    def recount(self) -> int:
        """Correct the counters from the jobs as they are; returns how many jobs the counters
        had wrong (0 when they were exact)."""
