"""SQLite: the embedded default. WAL mode, ``BEGIN IMMEDIATE`` writes, ``UPDATE … RETURNING``.

Several processes may share one database file on a local disk. Every write runs in an
immediate transaction, so a would-be writer waits on the lock (``busy_timeout``) instead of
failing on an upgrade; reservation is a single UPDATE over a sub-select, so two workers never
take the same job. The host clock is the store's clock here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from taskqueue.drivers import _attempts, _registry, _sql, _views
from taskqueue.drivers._sqlite_checkpoint import AUTOCHECKPOINT_PAGES, Checkpointer
from taskqueue.drivers._sqlite_wake import Doorbell
from taskqueue.drivers.base import (
    CloseHooks,
    DueFilter,
    ErrorText,
    GraphNode,
    HeartbeatResult,
    JobFilter,
    QueueStats,
    check_bulk,
)
from taskqueue.errors import ConfigError, Conflict, DriverError, DriverUnavailable
from taskqueue.jobs.model import Attempt, JobRecord, LeaseToken, NewJob
from taskqueue.jobs.states import State

Q = _sql.load_queries("sqlite.sql")
#: A tag or exception text found in at most this many jobs by the full-text index is looked up
#: through it; one found in more is left to the scan in id order.
FEW_MATCHES = 2000
#: Most completions written by one ``complete_many`` statement (a power of two, see _padded).
COMPLETE_ROWS = 128
#: ``estimate_count`` reads this many of the newest candidate jobs.
SAMPLE = 10_000
_KEY = _sql.COLUMNS.index("idempotency_key")
#: Ready jobs a worker waiting to start reads ahead (``warm``): a first reservation's worth
#: at the default ``--prefetch``.
PRIME_ROWS = 100
#: Longest sleep between two looks at `PRAGMA data_version` while idle: at most this long
#: from a push by another process to the worker noticing it (about 100 cheap reads a second).
IDLE_POLL_CAP = 0.01
MIGRATIONS = sorted(
    (int(name.removeprefix("migration_")), sql) for name, sql in Q.items()
    if name.startswith("migration_")
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3 errors into taskqueue errors at the boundary."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        raise DriverUnavailable(f"sqlite: {exc}") from exc


@contextlib.contextmanager
def _a_database(path: str) -> Iterator[None]:
    """Opening ``path``: a file that is not an SQLite database (a wrong path, an encrypted or
    damaged file) is a store failure (exit 1) said in one line, not a traceback."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            raise
        raise DriverError(f"sqlite: {path} is not a usable SQLite database ({exc}); point "
                          "the URL or DB_PATH at the store's file") from None


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    path = parts.netloc + parts.path
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigError(f"no database file in {url!r}; use sqlite:///storage/queue.db")
    return path


class SQLiteDriver(CloseHooks):
    name = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 synchronous: str = "normal") -> None:
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigError(f"synchronous={synchronous!r}: use 'normal' (survives any "
                              "process crash) or 'full' (also a power cut, slower commits)")
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # under a file, in /proc, no permission: the path is wrong
                raise ConfigError(f"sqlite: cannot make the folder {exc.filename or ''} for "
                                  f"{self.path}: {exc.strerror or exc}") from None
        self._lock = threading.RLock()
        with _translated(), _a_database(self.path):
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._checkpointer: Checkpointer | None = None
            if self.path != ":memory:":
                self._conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
                self._checkpointer = Checkpointer(self.path)
                # a driver dropped without close() must not leave the thread (and its
                # connection) running for the rest of the process
                weakref.finalize(self, self._checkpointer.close)
        self._migrated = False
        self._doorbell = Doorbell(self.path)
        #: Queues whose counter rows a commit of ours made sure of: they are never deleted
        #: (only migration 6 rebuilds them), so a push to one skips ensuring them again,
        #: 70 index probes that cost a single push more than its own row.
        self._counted: set[str] = set()
        self._primed = False  # warm() read the head of the ready jobs

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteDriver:
        parts = urlsplit(url)
        path = _path_of(url)
        for key, values in parse_qs(parts.query).items():
            if key == "busy_timeout":
                options.setdefault("busy_timeout", float(values[-1]))
            elif key == "synchronous":
                options.setdefault("synchronous", values[-1])
        migrate = options.pop("migrate", True)
        driver = cls(path, **options)
        if migrate:
            driver.migrate()
        return driver

    # -- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.committed()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, _translated():
            return self._conn.execute(sql, params).fetchall()

    def migrate(self) -> list[int]:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS taskqueue_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            done = {v for (v,) in conn.execute("SELECT version FROM taskqueue_migrations")}
            applied = []
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                for statement in _statements(sql):
                    _apply(conn, statement)
                conn.execute("INSERT INTO taskqueue_migrations VALUES (?, ?)",
                             (version, time.time()))
                applied.append(version)
        self._migrated = True
        return applied

    def schema_absent(self) -> bool:
        return not self._read("SELECT 1 FROM sqlite_master WHERE name IN "
                              "('taskqueue_migrations', 'job_queue')")

    @staticmethod
    def nothing_at(url: str) -> bool:
        """No database file (``drivers.nothing_at``)."""
        path = _path_of(url)
        return path != ":memory:" and not Path(path).exists()

    def missing_migrations(self) -> list[int]:
        if not self._read("SELECT 1 FROM sqlite_master WHERE name = 'taskqueue_migrations'"):
            return [version for version, _ in MIGRATIONS]
        done = {v for (v,) in self._read("SELECT version FROM taskqueue_migrations")}
        return [version for version, _ in MIGRATIONS if version not in done]

    def warm_up(self, connections: int) -> None:
        """``WarmsUp``: a driver has one connection, open already; what a worker waiting to
        start can do ahead is start the checkpoint thread (with its own connection), which
        otherwise starts inside the first commit, on the path of the first jobs."""
        if self._checkpointer is not None:
            self._checkpointer.start()

    def warm(self, queues: Sequence[str]) -> None:
        """``Warms``, once per driver: read what a first reservation from ``queues`` reads,
        the next ready jobs, whole, made into records (a read waits for no writer). Their
        pages are read again if another connection writes meanwhile (SQLite then drops this
        connection's cache), but the memory they fill stays filled: in a process just forked
        (a standby), the first reservation otherwise pays ~200 page faults of its own
        (~0.5 ms of a recycle's hand-over, measured)."""
        if self._primed or not queues:
            return
        self._primed = True
        sql = Q["ready_head"].format(queues=_sql.placeholders(len(queues)),
                                     columns=_sql.SELECT_COLUMNS)
        _records(self._read(sql, (*queues, time.time(), PRIME_ROWS)))

    def close(self) -> None:
        self._closing()
        self._doorbell.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._conn.close()

    def now(self) -> datetime:
        return datetime.now(UTC)

    # -- producing -----------------------------------------------------------------------
    def push(self, jobs: Sequence[NewJob], *,
             connection: sqlite3.Connection | None = None) -> list[str]:
        """Insert ``jobs`` in one transaction.

        With ``connection`` (the caller's own ``sqlite3`` connection to the same file) the rows
        are written on it, inside the caller's open transaction: they appear only if the caller
        commits. With no transaction open there, they are committed at once, together."""
        if connection is None:
            if len(jobs) == 1 and _plain(job := jobs[0]) and job.queue_name in self._counted:
                return [self._push_plain(job)]
            queues = {job.queue_name for job in jobs}
            with self._write() as conn:
                ids = self._insert(conn, jobs, queues - self._counted)
            self._counted |= queues  # committed: the rows exist now
            self._doorbell.ring()
            return ids
        self._check_same_file(connection)
        with _translated():
            connection.execute("SAVEPOINT taskqueue_push")
            try:
                ids = self._insert(connection, jobs, {job.queue_name for job in jobs})
            except BaseException:
                connection.execute("ROLLBACK TO taskqueue_push")
                connection.execute("RELEASE taskqueue_push")
                raise
            connection.execute("RELEASE taskqueue_push")
        self._doorbell.ring()  # a hint only: before the caller commits, polling finds them
        return ids

    def _push_plain(self, job: NewJob) -> str:
        """One job with no key, tags, dependencies or batch, to a queue whose counter rows
        exist: a single INSERT (its counter trigger included), committed by itself. SQLite
        runs one statement outside ``BEGIN`` as its own transaction, taking the write lock the
        way ``BEGIN IMMEDIATE`` does (waiting on ``busy_timeout``), so this is the same write
        as ``_write`` + ``_insert`` in one call instead of three, with no ``NULL`` parameters
        (sqlite3 looks for an adapter for every ``None`` it binds: ~1 µs each)."""
        now = time.time()
        with self._lock, _translated():
            if self._conn.in_transaction:   # never: every writer here commits before unlocking
                raise DriverUnavailable("sqlite: a transaction was left open on the connection")
            self._conn.execute(Q["insert_plain_job"], (
                job.id, job.queue_name, job.name, job.payload, job.priority, job.max_attempts,
                job.timeout_seconds, job.delay_seconds, now + job.delay_seconds, now, now))
            if self._checkpointer is not None:
                self._checkpointer.committed()
        self._doorbell.ring()
        return job.id

    def _check_same_file(self, connection: object) -> None:
        """Refuse a connection that is not sqlite3, or is open on another database file."""
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigError(f"connection= must be a sqlite3.Connection to {self.path}, got "
                              f"{type(connection).__name__}")
        rows = connection.execute("PRAGMA database_list").fetchall()
        theirs = next((str(r[2]) for r in rows if r[1] == "main"), "")
        if self.path == ":memory:" or not theirs or \
                Path(theirs).resolve() != Path(self.path).resolve():
            raise ConfigError(f"connection= is open on {theirs or 'a memory database'!r}, not "
                              f"on this store's file {self.path!r}")

    def _insert(self, conn: sqlite3.Connection, jobs: Sequence[NewJob],
                uncounted: Collection[str]) -> list[str]:
        """Insert ``jobs``, first creating the counter rows of the ``uncounted`` queues."""
        now = time.time()
        _ensure_counters(conn, uncounted)
        ids: list[str] = []
        for job in jobs:
            if job.idempotency_key is not None:
                conn.execute(Q["expire_idempotency_key"], (job.idempotency_key, now))
            tags = _sql.encode_list(job.tags)
            cur = conn.execute(Q["insert_job"], (
                job.id, job.queue_name, job.name, job.payload, job.priority,
                job.max_attempts, job.timeout_seconds, job.delay_seconds,
                now + job.delay_seconds, _sql.encode_list(job.dependencies),
                tags, now, now, job.idempotency_key, job.batch_id,
                job.idempotency_mode, job.idempotency_window,
            ))
            if cur.rowcount == 0:
                (existing,) = conn.execute(Q["id_by_idempotency_key"],
                                           (job.idempotency_key,)).fetchone()
                ids.append(existing)
                continue
            ids.append(job.id)
            if tags is not None:
                conn.execute(Q["add_job_text"], (job.id, tags, None))
            for dep in job.dependencies:
                conn.execute(Q["insert_dependency"], (job.id, dep))
        for job in jobs:
            if job.dependencies:
                conn.execute(Q["mark_satisfied_edges"], (job.id,))
                conn.execute(Q["count_waiting"], (job.id,))
        return ids

    # -- consuming -----------------------------------------------------------------------
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        if not queues or limit <= 0:
            return []
        with self._write() as conn:
            rows = self._reserve_in(conn, worker_id, queues, limit, lease_seconds, time.time())
        return _records(rows)

    def complete_and_reserve(
        self, items: Sequence[tuple[LeaseToken, str | None]], worker_id: str,
        queues: Sequence[str], limit: int, lease_seconds: float,
    ) -> tuple[list[bool], list[JobRecord]]:
        """``complete_many(items)`` then ``reserve(...)`` in one transaction: one commit
        where there were two (the worker acknowledges a batch as it takes the next)."""
        now = time.time()
        with self._write() as conn:
            answers, released = self._complete_in(conn, items, now) if items else ([], False)
            rows = (self._reserve_in(conn, worker_id, queues, limit, lease_seconds, now)
                    if queues and limit > 0 else [])
        if released:
            self._doorbell.ring()
        return answers, _records(rows)

    def _reserve_in(self, conn: sqlite3.Connection, worker_id: str, queues: Sequence[str],
                    limit: int, lease_seconds: float, now: float) -> list[Any]:
        sql = Q["reserve"].format(queues=_sql.placeholders(len(queues)),
                                  columns=_sql.SELECT_COLUMNS)
        rows = conn.execute(sql, (worker_id, now + lease_seconds, now, now, *queues, now,
                                  limit)).fetchall()
        keyed = [r[0] for r in rows if r[_KEY] is not None]
        if not keyed:
            return rows
        cleared = set(self._release_started_keys(conn, keyed))
        return [r[:_KEY] + (None,) + r[_KEY + 1:] if r[0] in cleared else r for r in rows]

    @staticmethod
    def _release_started_keys(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
        sql = Q["release_started_keys"].format(ids=_sql.placeholders(len(ids)))
        return [r[0] for r in conn.execute(sql, ids)]

    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        now = time.time()
        sql = Q["reserve_job"].format(columns=_sql.SELECT_COLUMNS)
        with self._write() as conn:
            row = conn.execute(sql, (worker_id, now + lease_seconds, now, now, job_id,
                                     now)).fetchone()
        return _sql.row_to_record(row) if row else None

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        now = time.time()
        extended, cancelled, lost = set(), set(), set()
        with self._write() as conn:
            for job_id, epoch in tokens:
                cur = conn.execute(Q["extend_lease"], (now + lease_seconds, now, job_id, epoch))
                if cur.rowcount:
                    extended.add(job_id)
                    continue
                row = conn.execute(Q["lease_state"], (job_id,)).fetchone()
                if row and row[0] == State.CANCELLED and row[1] == epoch:
                    cancelled.add(job_id)
                else:
                    lost.add(job_id)
        return HeartbeatResult(frozenset(extended), frozenset(cancelled), frozenset(lost))

    def _settle(self, sql: str, params: Sequence[Any]) -> bool:
        with self._write() as conn:
            return conn.execute(sql, params).rowcount == 1

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        return self.complete_many([(token, result)])[0]

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """One statement for the whole batch; follow-ups only for the rows that need them
        (an idempotency key to release, dependents to unblock)."""
        if not items:
            return []
        with self._write() as conn:
            answers, released = self._complete_in(conn, items, time.time())
        if released:
            self._doorbell.ring()
        return answers

    def _complete_in(self, conn: sqlite3.Connection,
                     items: Sequence[tuple[LeaseToken, str | None]],
                     now: float) -> tuple[list[bool], bool]:
        """The answers, and whether a dependent now waits on nothing (the caller rings the
        doorbell once committed: idle workers take it at once, as after a push)."""
        entries = [[t.job_id, t.epoch, result] for t, result in items]
        if len({t.job_id for t, _ in items}) < len(items):
            # UPDATE … FROM updates a row once, from any one of its matching entries: keep
            # each token's first entry, so the result stored is the first one given
            first: dict[tuple[str, int], list[Any]] = {}
            for (token, _), entry in zip(items, entries, strict=True):
                first.setdefault((token.job_id, token.epoch), entry)
            entries = list(first.values())
        rows: list[Any] = []
        for start in range(0, len(entries), COMPLETE_ROWS):
            part = entries[start:start + COMPLETE_ROWS]
            size = _padded(len(part))
            params: list[Any] = [now, now]
            for entry in part:
                params += entry
            params += [None] * (3 * (size - len(part)))
            sql = Q["complete_many"].format(rows=", ".join(["(?, ?, ?)"] * size))
            rows += conn.execute(sql, params).fetchall()
        keyed = [job_id for job_id, _, has_key, _ in rows if has_key]
        if keyed:
            conn.execute(Q["finish_keys"].format(ids=_sql.placeholders(len(keyed))),
                         (now, *keyed))
        closing = [job_id for job_id, _, _, unfinished in rows if unfinished]
        if closing:
            conn.execute(Q["close_attempts"].format(ids=_sql.placeholders(len(closing))),
                         (now, *closing))
        done = [job_id for job_id, _, _, _ in rows]
        released = False
        for start in range(0, len(done), 500):
            chunk = done[start:start + 500]
            probe = Q["has_dependents"].format(ids=_sql.placeholders(len(chunk)))
            if conn.execute(probe, chunk).fetchone():
                for job_id in chunk:
                    released = bool(self._release_dependents(conn, job_id)) or released
        # Each job's live token, accepted the first time it is named (a repeat or a stale
        # token of the same job is refused, as completing them one by one would).
        accepted = {job_id: epoch for job_id, epoch, _, _ in rows}
        answers = []
        for token, _ in items:
            ok = accepted.get(token.job_id) == token.epoch
            if ok:
                del accepted[token.job_id]
            answers.append(ok)
        return answers, released

    @staticmethod
    def _release_dependents(conn: sqlite3.Connection, job_id: str) -> list[str]:
        rows = conn.execute(Q["release_dependents"], (job_id,)).fetchall()
        conn.execute(Q["satisfy_edges"], (job_id,))
        return [job for job, waiting in rows if waiting == 0]

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        now = time.time()
        state = "failed" if retry_in is None else "retrying"
        due = now if retry_in is None else now + retry_in
        failed_at = now if retry_in is None else None
        return self._settle(Q["fail"], (state, error, due, failed_at, now, state, state, now,
                                        now, state, _attempts.clip(error), *token))

    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        now = time.time()
        return self._settle(Q["release"], (now + delay_seconds, now, reason, *token))

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        return self._settle(Q["set_progress"], (progress, time.time(), *token))

    def recover_expired(self) -> list[str]:
        now = time.time()
        with self._write() as conn:
            return [r[0] for r in conn.execute(Q["recover_expired"],
                                               (now, now, now, now, now, now))]

    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        now = time.time()
        everything = started is None
        listed = json.dumps(sorted(started or ()))
        with self._write() as conn:
            moved = [r[0] for r in conn.execute(
                Q["recover_worker"], (now, reason, now, now, now, now, reason, worker_id,
                                      everything, listed))]
            return moved + [r[0] for r in conn.execute(Q["release_worker"],
                                                       (now, now, worker_id))]

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return when a push on this host rings the doorbell (``_sqlite_wake``), when the
        next delayed job falls due, or when ``PRAGMA data_version`` (it changes when another
        connection commits) shows a change, polled with a growing interval behind the bell."""
        self._doorbell.drain()   # rings of pushes made before now: the look below sees them
        deadline = time.monotonic() + timeout
        sql = Q["next_due"].format(queues=_sql.placeholders(len(queues)))
        ((next_due,),) = self._read(sql, list(queues)) if queues else [(None,)]
        if next_due is not None:
            deadline = min(deadline, time.monotonic() + max(0.0, next_due - time.time()))
        ((version,),) = self._read("PRAGMA data_version")
        interval = 0.001
        while (remaining := deadline - time.monotonic()) > 0:
            if self._doorbell.sleep(min(interval, remaining)):
                return
            interval = min(interval * 2, IDLE_POLL_CAP)
            if self._read("PRAGMA data_version")[0][0] != version:
                return

    # -- managing ------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        rows = self._read(f"SELECT {_sql.SELECT_COLUMNS} FROM job_queue WHERE id = ?", (job_id,))
        return _sql.row_to_record(rows[0]) if rows else None

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        return _sql.dependents(self._read, job_ids)

    def attempt_history(self, job_id: str) -> list[Attempt]:
        rows = self._read("SELECT attempt_history FROM job_queue WHERE id = ?", (job_id,))
        return _attempts.parse(rows[0][0]) if rows else []

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        table, where, params = self._filter(criteria)
        tail, more = _sql.order_limit(criteria)
        sql = f"SELECT {_sql.SELECT_COLUMNS} FROM {table} WHERE {where}{tail}"
        return [_sql.row_to_record(r) for r in self._read(sql, params + more)]

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        table, where, params = self._filter(criteria)
        tail, more = _sql.order_limit(criteria)
        sql = f"SELECT {_views.NODE_COLUMNS} FROM {table} WHERE {where}{tail}"
        return [_views.node_row(r) for r in self._read(sql, params + more)]

    def count(self, criteria: JobFilter) -> int:
        if not (criteria.names or criteria.ids or criteria.tag is not None or criteria.batch_id
                or criteria.exception_contains or criteria.after_id):
            return self._count_from_counters(criteria)
        table, where, params = self._filter(criteria)
        return int(self._read(f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0])

    def _count_from_counters(self, criteria: JobFilter) -> int:
        """Queue and state filters alone are counted by the counters the triggers keep
        (migration 6), exact in every transaction: a few rows read, whatever the table holds
        (counting the index took 0.1-0.2 s at a million jobs)."""
        where, params = _sql.filter_clause(replace(criteria, names=(), ids=(), tag=None))
        query = f"SELECT coalesce(sum(n), 0) FROM job_counts WHERE {where}"
        return int(self._read(query, params)[0][0])

    def estimate_count(self, criteria: JobFilter) -> int | None:
        """For a task name, tag or text over more than ``2 * SAMPLE`` candidate jobs (those
        the indexed filters leave: queue, state, ids, batch): the share of matches among the
        newest ``SAMPLE`` of them times their number, when the sample holds at least 20
        matches. Otherwise None: an index counts it (a rare tag or text is counted through the
        trigram index, and asking that index first would cost a common text more than the
        sample does). The number of candidates comes from the counters when only queue and
        state filters are left."""
        if not (criteria.names or criteria.tag is not None or criteria.exception_contains):
            return None  # the indexes count it
        base = replace(criteria, names=(), tag=None, exception_contains=None)
        table, base_where, base_params = _filter(base)
        # the candidates: queue and state filters alone are read from the counters (counting
        # the table's index took 0.2-0.4 s at a million jobs, before every text count)
        total = self.count(base)
        if total <= 2 * SAMPLE:
            return None
        table, where, params = _filter(criteria)
        edge, edge_params = _sample_edge(base, table, base_where, base_params)
        found = int(self._read(f"SELECT count(*) FROM {table} WHERE {where} AND id >= ({edge})",
                               params + edge_params)[0][0])
        return round(found * total / SAMPLE) if found >= 20 else None

    def _filter(self, criteria: JobFilter) -> tuple[str, str, list[Any]]:
        """``_filter``, narrowed to the jobs the full-text index names when a tag or
        exception text matches few of them (the LIKE terms still decide)."""
        table, where, params = _filter(criteria)
        ids = self._text_matches(criteria)
        if ids is not None:
            where += " AND id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(ids))
        return table, where, params

    def _text_matches(self, criteria: JobFilter) -> list[str] | None:
        """The jobs whose tags or exception contain the searched texts, by the trigram index
        (migration 7): at most ``FEW_MATCHES`` of them, else None (a text found in many jobs
        is found soon enough by reading the jobs in id order). None too without such a
        filter, or for an exception text shorter than a trigram."""
        terms = []
        if criteria.tag is not None:
            terms.append(("tags", json.dumps(criteria.tag)))
        text = criteria.exception_contains
        if text and len(text) >= 3:
            terms.append(("exception", text))
        if not terms:
            return None
        query = " AND ".join(f'{column} : "{value.replace(chr(34), chr(34) * 2)}"'
                             for column, value in terms)
        rows = self._read(Q["search_text"], (query, FEW_MATCHES + 1))
        return None if len(rows) > FEW_MATCHES else [row[0] for row in rows]

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        table, where, params = self._filter(criteria)
        sql = _views.sorted_select(_sql.SELECT_COLUMNS, table, where, column, descending, "?",
                                   within=within)
        return [_sql.row_to_record(r) for r in
                self._read(sql, [*params, criteria.limit, criteria.offset])]

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        """Failed jobs alone are grouped by the number of their text (migration 12) from
        idx_failed_ref, which holds every column the statement reads: no table reads; each
        group's text is one lookup in job_error_texts. Other states group by the text. The
        index is named: the planner, left to itself, reads idx_state_id and every failed
        row (140 instead of 23 ms of CPU over 30,000 failed jobs)."""
        table, where, params = self._filter(criteria)
        if {State(s) for s in criteria.states} == {State.FAILED}:
            table = "job_queue INDEXED BY idx_failed_ref"
            where += " AND state = 'failed'"  # literally, so the partial index qualifies
            sql = ("SELECT e.exception, g.n, g.latest, g.at, g.names, g.queues FROM ("
                   "SELECT exception_ref AS ref, count(*) AS n, max(id) AS latest, "
                   "max(coalesce(failed_at, updated_at)) AS at, "
                   "json_group_array(DISTINCT name) AS names, "
                   "json_group_array(DISTINCT queue_name) AS queues "
                   f"FROM {table} WHERE {where} GROUP BY exception_ref) AS g "
                   "LEFT JOIN job_error_texts AS e ON e.n = g.ref "
                   "ORDER BY g.n DESC, e.exception LIMIT ?")
        else:
            sql = ("SELECT exception, count(*), max(id), max(coalesce(failed_at, updated_at)), "
                   "json_group_array(DISTINCT name), json_group_array(DISTINCT queue_name) "
                   f"FROM {table} WHERE {where} GROUP BY exception "
                   "ORDER BY count(*) DESC, exception LIMIT ?")
        rows = self._read(sql, [*params, limit])
        return _views.ordered_texts(
            [ErrorText(text, int(n), latest, _sql.epoch_to_dt(at),
                       tuple(sorted(json.loads(names))), tuple(sorted(json.loads(queues))))
             for text, n, latest, at, names, queues in rows], limit)

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        where, params = self._due(criteria)
        sql = (f"SELECT {_sql.SELECT_COLUMNS} FROM job_queue WHERE {where} "
               "ORDER BY available_at, id LIMIT ?")
        return [_sql.row_to_record(r) for r in self._read(sql, [*params, criteria.limit])]

    def count_due(self, criteria: DueFilter) -> int:
        where, params = self._due(replace(criteria, after=None))
        return int(self._read(f"SELECT count(*) FROM job_queue WHERE {where}", params)[0][0])

    def _due(self, criteria: DueFilter) -> tuple[str, list[Any]]:
        after = None
        if criteria.after is not None:  # the stored float, within a microsecond either way
            at = criteria.after[0].timestamp()
            after = (at - 1e-6, at + 1e-6)
        return _views.due_clause(criteria, time.time(), after, "?")

    def cancel(self, job_id: str, reason: str) -> bool:
        now = time.time()
        return self._settle(Q["cancel"], (reason, now, now, job_id))

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        now = time.time()
        return self._settle(Q["replace_payload"], (payload, now + delay_seconds, delay_seconds,
                                                   now, job_id))

    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        now = time.time()
        with self._write() as conn:
            if cancel:
                rows = conn.execute(Q["cancel_dependents"], (reason, now, now, job_id))
                return [r[0] for r in rows.fetchall()]
            released = self._release_dependents(conn, job_id)
        if released:
            self._doorbell.ring()
        return released

    def retry(self, job_id: str) -> bool:
        now = time.time()
        return self._settle(Q["retry"], (now, now, job_id))

    def set_priority(self, job_id: str, priority: int) -> bool:
        return self._settle(Q["set_priority"], (priority, time.time(), job_id))

    def delete(self, job_id: str) -> bool:
        with self._write() as conn:
            conn.execute(Q["delete_edges"], (job_id,))
            return conn.execute(Q["delete"], (job_id,)).rowcount == 1

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        """One statement per page (``bulk_<action>`` in sqlite.sql), the ids as a JSON array."""
        ids = check_bulk(action, job_ids, priority)
        if not ids:
            return []
        params = {"ids": json.dumps(ids), "now": time.time(), "reason": reason,
                  "priority": priority}
        with self._write() as conn:
            if action == "delete":
                conn.execute(Q["bulk_delete_edges"], params)
            changed = {row[0] for row in conn.execute(Q[f"bulk_{action}"], params).fetchall()}
        return [job_id for job_id in ids if job_id in changed]

    def restore(self, records: Sequence[JobRecord]) -> int:
        inserted = 0
        with self._write() as conn:
            _ensure_counters(conn, {rec.queue_name for rec in records})
            for rec in records:
                row = _sql.record_to_row(rec, _to_epoch)
                if conn.execute(Q["restore_job"], row).rowcount != 1:
                    continue
                inserted += 1
                if rec.tags or rec.exception is not None:
                    conn.execute(Q["add_job_text"], (rec.id, _sql.encode_list(rec.tags),
                                                     rec.exception))
                if (history := _attempts.restored(rec)) is not None:
                    conn.execute("UPDATE job_queue SET attempt_history = ? WHERE id = ?",
                                 (history, rec.id))
                for dep in rec.dependencies:
                    conn.execute(Q["insert_dependency"], (rec.id, dep))
            for rec in records:
                if rec.dependencies:
                    conn.execute(Q["mark_satisfied_edges"], (rec.id,))
                    conn.execute(Q["count_waiting"], (rec.id,))
        return inserted

    def stats(self) -> dict[str, QueueStats]:
        """From the counters the triggers keep (migration 6) and one index probe per priority
        level for the oldest ready job: the same few milliseconds at a million jobs as at
        none."""
        out: dict[str, QueueStats] = {}
        waiting: dict[str, tuple[int, int]] = {}
        for queue, state, count, priority_sum in self._read(Q["stats_counts"]):
            out.setdefault(queue, QueueStats()).counts[State(state)] = count
            if state in (State.PENDING, State.RETRYING):
                n, total = waiting.get(queue, (0, 0))
                waiting[queue] = (n + count, total + priority_sum)
        for queue, (n, total) in waiting.items():
            out[queue].avg_priority = total / n if n else None
            if n:
                ((oldest,),) = self._read(Q["stats_oldest"], (queue,))
                out[queue].oldest_ready_at = _sql.epoch_to_dt(oldest)
        for queue, count in self._read(Q["stats_recent"], (int(time.time()) - 60,)):
            out.setdefault(queue, QueueStats()).completed_last_minute = count
        return out

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        now = time.time()
        cutoffs = (now - completed_age, now - failed_age)
        if dry_run:
            return int(self._read(Q["prune_count"], cutoffs)[0][0])
        with self._write() as conn:
            gone = [row[0] for row in conn.execute(
                Q["prune"], (*cutoffs, -1 if limit is None else int(limit))).fetchall()]
            if gone:
                conn.execute(Q["prune_edges"], (json.dumps(gone),))
                conn.execute(Q["prune_error_texts"])
            return len(gone)

    # -- coordination --------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        now = time.time()
        return self._settle(Q["lock_acquire"], (name, owner, now + ttl_seconds, now))

    def lock_release(self, name: str, owner: str) -> bool:
        return self._settle(Q["lock_release"], (name, owner))

    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(Q["counter_incr"],
                               (key, amount, now + window_seconds, now, now)).fetchone()
        return int(row[0])

    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        now = time.time()
        with self._write() as conn:
            conn.execute(Q["registry_expire"], (now,))
            conn.execute(Q["registry_put"], (kind, key, json.dumps(data), now + ttl_seconds))

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return _registry.decoded(kind, (r[0] for r in self._read(Q["registry_list"],
                                                                 (kind, time.time()))))

    def registry_remove(self, kind: str, key: str) -> None:
        with self._write() as conn:
            conn.execute(Q["registry_remove"], (kind, key))


def _records(rows: list[Any]) -> list[JobRecord]:
    """Reserved rows as records, best first. A batch shares most of its timestamps (the
    reservation's own, and the enqueue time of jobs pushed together): each distinct one is
    converted once."""
    seen: dict[float, datetime] = {}

    def to_dt(value: float | None) -> datetime | None:
        if value is None:
            return None
        moment = seen.get(value)
        if moment is None:
            moment = seen[value] = datetime.fromtimestamp(value, UTC)
        return moment

    jobs = [_sql.row_to_record(r, to_dt) for r in rows]
    jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
    return jobs


def _filter(criteria: JobFilter) -> tuple[str, str, list[Any]]:
    """The table, the shared WHERE clause plus the literal term that lets SQLite use the
    listing indexes (they leave out `processing` rows), and the parameters. Running jobs are
    few: they are found through the lease index and sorted."""
    where, params = _sql.filter_clause(criteria)
    states = {State(s) for s in criteria.states}
    if states == {State.PROCESSING}:
        return "job_queue INDEXED BY idx_lease", where + " AND state = 'processing'", params
    if states and State.PROCESSING not in states:
        where += " AND state != 'processing'"
    return "job_queue", where, params


def _sample_edge(base: JobFilter, table: str, where: str, params: list[Any]
                 ) -> tuple[str, list[Any]]:
    """The id of the ``SAMPLE``-th newest job matching ``base``: what the estimate samples
    is the jobs from there on. With several states, the newest ``SAMPLE`` of each state
    (each read in order from the state's index) are merged: for ``state IN (a, b)`` SQLite
    walked the primary key newest first and read every job's row until ``SAMPLE`` of them
    matched (140,000 rows for the failed and retrying jobs of 200,000, 0.1-0.3 s)."""
    if len(base.states) < 2:
        return (f"SELECT id FROM {table} WHERE {where} ORDER BY id DESC "
                f"LIMIT 1 OFFSET {SAMPLE - 1}", params)
    branches = [f"SELECT id FROM (SELECT id FROM {table} WHERE {where} AND state = ? "
                f"ORDER BY id DESC LIMIT {SAMPLE})" for _ in base.states]
    merged = [value for state in base.states for value in (*params, State(state).value)]
    return (f"SELECT id FROM ({' UNION ALL '.join(branches)}) ORDER BY id DESC "
            f"LIMIT 1 OFFSET {SAMPLE - 1}", merged)


def _to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _ensure_counters(conn: sqlite3.Connection, queues: Collection[str]) -> None:
    """Create the stats counter rows of these queues if missing: the triggers only update."""
    for queue in queues:
        conn.execute(Q["ensure_counts"], (queue,))
        conn.execute(Q["ensure_completions"], (queue,))


def _padded(count: int) -> int:
    """The number of rows ``complete_many`` is written for: the next power of two, so that a
    worker's changing batch sizes reuse a few prepared statements."""
    return 1 << (count - 1).bit_length()


def _plain(job: NewJob) -> bool:
    """A job ``insert_plain_job`` stores whole: every column it leaves out is at its default."""
    return (job.idempotency_key is None and not job.tags and not job.dependencies
            and job.batch_id is None and job.idempotency_mode == "exists"
            and not job.idempotency_window)


def _apply(conn: sqlite3.Connection, statement: str) -> None:
    """One statement of a migration; an ``ADD COLUMN`` of a column that is there already is
    skipped (SQLite has no ``IF NOT EXISTS`` for it), so a migration can run again."""
    try:
        conn.execute(statement)
    except sqlite3.OperationalError as exc:
        if "ADD COLUMN" not in statement or "duplicate column name" not in str(exc):
            raise


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, a trigger's body (``BEGIN ... ; END``) kept whole."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
