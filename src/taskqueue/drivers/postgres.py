"""PostgreSQL: ``FOR UPDATE SKIP LOCKED`` reservation, LISTEN/NOTIFY wake-ups, the server clock.

Many processes on many machines share one database. Reservation is one ``UPDATE … FROM (SELECT …
FOR UPDATE SKIP LOCKED)`` statement, so concurrent workers pass over each other's rows instead
of queueing on them; a partial index holds only the ready jobs. Every time is computed in SQL
from the server clock. The URL's ``schema`` parameter puts all tables in that schema (every
query names it, so the driver also works on a caller's connection whatever its search_path);
other parameters go to libpq. ``push(..., connection=conn)`` enqueues inside the caller's own
transaction: the jobs, and the NOTIFY that wakes idle workers, exist only if the caller commits.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, tuple_row

from taskqueue.drivers import _attempts, _postgres_copy, _registry, _sql, _views
from taskqueue.drivers._postgres_pool import Connection, Pool, rolled_back, translate
from taskqueue.drivers._postgres_url import split_url
from taskqueue.drivers._postgres_wait import Waiter
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
from taskqueue.errors import ConfigError, Conflict
from taskqueue.jobs.model import (
    Attempt,
    JobRecord,
    JobRun,
    LeaseToken,
    NewJob,
    record_from_values,
)
from taskqueue.jobs.states import State

try:  # hashlib.blake2b itself, without the OpenSSL backend (_hashlib) `import hashlib` loads
    from _blake2 import blake2b
except ImportError:  # not CPython
    from hashlib import blake2b

Cursor = psycopg.Cursor[TupleRow]
T = TypeVar("T")

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MIGRATIONS = sorted(int(n.removeprefix("migration_")) for n in _sql.load_queries("postgres.sql")
                     if n.startswith("migration_"))
#: Plain batches from this size on are written with COPY (a few round trips more than one
#: INSERT, paid back many times over by its cheaper rows).
_COPY_FROM = 32
#: Jobs per piece of a COPY's data: the server inserts one piece while the next is formatted.
_COPY_RUN = 256
#: Attempts for a statement that Postgres rolled back on a deadlock or serialization failure.
_ATTEMPTS = 3
#: Planner cost (its units: about a page read each) above which ``estimate_count`` answers
#: with the planner's estimate instead of letting the caller count: on a 2-core machine 10,000
#: units took 100-150 ms of reading.
ESTIMATE_ABOVE_COST = 10_000.0



@cache
def _queries(schema: str) -> dict[str, str]:
    """The named queries with the (validated, quoted) schema filled in."""
    returning = ", ".join(f"j.{column}" for column in _sql.COLUMNS)
    queries = {name: text.format(schema=f'"{schema}"', returning=returning)
               for name, text in _sql.load_queries("postgres.sql").items()}
    # A plain push (no keys, no edges): the insert and its NOTIFY as one statement.
    queries["insert_notify"] = f"WITH ins AS ({queries['insert_jobs']}) {queries['notify']}"
    queries["insert_jobs_keyed"] = f"{queries['insert_jobs']} {queries['skip_duplicate_keys']}"
    return queries


class PostgresDriver(CloseHooks):
    name = "postgres"

    def __init__(self, conninfo: str, *, schema: str = "public", max_idle: int = 8,
                 check_after: float = 1.0, connect_timeout: int = 5, prepare: bool = True,
                 listen: bool = True, notify_conninfo: str | None = None,
                 poll_interval: float = 0.2) -> None:
        """``prepare=False``: no server-side prepared statements (a transaction pooler lends
        each transaction a different server session). ``listen=False``: idle workers poll
        every ``poll_interval`` s instead of LISTENing, unless ``notify_conninfo`` names a
        direct connection to LISTEN on."""
        if not _SCHEMA_RE.match(schema):
            raise ConfigError(f"invalid postgres schema name {schema!r}: use letters, digits, _")
        try:
            params = conninfo_to_dict(conninfo)
            if notify_conninfo is not None:
                conninfo_to_dict(notify_conninfo)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"invalid postgres URL: {exc}") from exc
        if not poll_interval > 0:
            raise ConfigError(f"postgres poll_interval must be > 0 seconds, got {poll_interval}")
        defaults: dict[str, Any] = {"connect_timeout": connect_timeout,
                                    "application_name": "taskqueue"}
        kwargs = {key: value for key, value in defaults.items() if key not in params}
        if not prepare:
            kwargs["prepare_threshold"] = None
        where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/" + str(
            params.get("dbname") or params.get("user") or "")
        self.schema = schema
        self.channel = f"taskqueue_{schema}"[:63]
        self._q = _queries(schema)
        self._prepare = prepare
        self._table = f'"{schema}".job_queue'
        self._lock_key = int.from_bytes(
            blake2b(f"taskqueue.migrate.{schema}".encode(), digest_size=8).digest(),
            "big", signed=True)
        self._pool = Pool(conninfo, kwargs, where, max_idle=max_idle, check_after=check_after)
        connect: Callable[[], Connection] | None = None
        if notify_conninfo is not None:
            connect = functools.partial(self._pool.connect, notify_conninfo)
        elif listen:
            connect = self._pool.connect
        self._waiter = Waiter(self._pool, self.channel, self._q["next_due"], connect=connect,
                              poll_interval=poll_interval)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresDriver:
        """Connect to ``postgresql://user@host:port/db?schema=name&connect_timeout=…``.

        Our parameters: ``schema``; ``pooler=transaction`` (behind PgBouncer or another
        transaction pooler: no prepared statements, no LISTEN through it); ``prepare=false``;
        ``notify_url`` (a direct URL to LISTEN on); ``poll_interval`` (seconds, when not
        listening). The others go to libpq. ``migrate=False`` skips the migration."""
        migrate = options.pop("migrate", True)
        conninfo, options = split_url(url, options)
        driver = cls(conninfo, **options)
        try:
            if migrate:
                driver.migrate()
        except BaseException:
            driver.close()
            raise
        return driver

    # -- plumbing ------------------------------------------------------------------------
    def _run(self, work: Callable[[Cursor], T], *, tx: bool = False) -> T:
        """Run ``work`` on a pooled cursor (in one transaction when ``tx``), translating errors.
        A deadlock or serialization failure rolled everything back, so it is retried."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._pool.connection() as conn, conn.cursor() as cur:
                    if not tx:
                        return work(cur)
                    with conn.transaction():
                        return work(cur)
            except psycopg.Error as exc:
                if attempt == _ATTEMPTS or not rolled_back(exc):
                    raise translate(exc, self._pool.where) from exc
        raise AssertionError("unreachable")

    def _fetch(self, name: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[TupleRow]:
        return self._run(lambda cur: cur.execute(self._q[name], params).fetchall())

    def _change(self, name: str, params: Sequence[Any] | dict[str, Any]) -> bool:
        """Run a one-row write; True when it changed the row."""
        return self._run(lambda cur: cur.execute(self._q[name], params).rowcount) == 1

    def migrate(self) -> list[int]:
        """Apply missing migrations under a transaction-level advisory lock, so many processes
        starting at once apply each version exactly once."""
        def work(cur: Cursor) -> list[int]:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            exists = cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if exists.fetchone() is None:
                cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            cur.execute(self._q["migrations_table"])
            done = {v for (v,) in cur.execute(self._q["applied_migrations"])}
            applied = [v for v in _MIGRATIONS if v not in done]
            for version in applied:
                cur.execute(self._q[f"migration_{version}"])
                cur.execute(self._q["record_migration"], (version,))
            return applied
        return self._run(work, tx=True)

    def schema_absent(self) -> bool:
        def work(cur: Cursor) -> bool:
            found = cur.execute(
                "SELECT to_regclass(%s), to_regclass(%s)",
                (f'"{self.schema}".taskqueue_migrations', f'"{self.schema}".job_queue'),
            ).fetchall()[0]
            return found[0] is None and found[1] is None
        return bool(self._run(work))

    def missing_migrations(self) -> list[int]:
        def work(cur: Cursor) -> list[int]:
            table = f'"{self.schema}".taskqueue_migrations'
            if cur.execute("SELECT to_regclass(%s)", (table,)).fetchall()[0][0] is None:
                return list(_MIGRATIONS)
            done = {v for (v,) in cur.execute(self._q["applied_migrations"])}
            return [v for v in _MIGRATIONS if v not in done]
        return self._run(work)

    def close(self) -> None:
        self._closing()
        self._pool.close()
        self._waiter.close()

    def now(self) -> datetime:
        value: datetime = self._run(lambda cur: cur.execute("SELECT clock_timestamp()")
                                    .fetchall())[0][0]
        return value.astimezone(UTC)

    # -- producing -----------------------------------------------------------------------
    def push(self, jobs: Sequence[NewJob], *,
             connection: psycopg.Connection[Any] | None = None) -> list[str]:
        """Insert ``jobs`` in one round trip and NOTIFY once per queue.

        With ``connection`` (the caller's own psycopg connection, possibly inside the caller's
        transaction) the jobs are written on it and not committed: they appear, and idle
        workers are woken, only if the caller commits.
        """
        if not jobs:
            return []
        if connection is None:
            return self._run(lambda cur: self._insert(cur, jobs, own=True))
        try:
            with connection.cursor(row_factory=tuple_row) as cur:
                return self._insert(cur, jobs)
        except psycopg.Error as exc:
            raise translate(exc, self._pool.where) from exc

    def push_runs(self, count: int, runs: Callable[[], Iterator[JobRun]]) -> list[str]:
        """``push`` of ``count`` jobs without keys, dependencies or delays, made a run at a
        time: from ``_COPY_FROM`` jobs on, one COPY written a run at a time as each is made,
        so the server inserts one while the client makes the next; fewer go as one list. A
        run that cannot be made aborts the COPY (nothing is stored) and its error
        propagates."""
        if count < _COPY_FROM:
            return self.push([job for run in runs() for job in run.jobs()])
        return self._run(lambda cur: self._copy(cur, runs))

    def _copy(self, cur: Cursor, runs: Callable[[], Iterator[JobRun]]) -> list[str]:
        """COPY the jobs of ``runs()`` (autocommit: one transaction, all or nothing), then
        NOTIFY their queues (a hint sent once the jobs are visible)."""
        data = _postgres_copy.CopyRows()
        with cur.copy(self._q["copy_jobs"]) as copy:
            for run in runs():
                copy.write(data.rows(run))
            copy.write(_postgres_copy.TRAILER)
        cur.execute(self._q["notify"], (self.channel, data.queues))
        return data.ids

    def _insert(self, cur: Cursor, jobs: Sequence[NewJob], *, own: bool = False) -> list[str]:
        """Insert ``jobs``; a job skipped for its idempotency key gets the key holder's id.

        A skipped job whose key holder freed the key (it was reserved or finished) before we
        looked the key up has no id to return: it is pushed again, now that the key is free.
        On an autocommit connection that second round is a transaction of its own."""
        ids = self._insert_round(cur, jobs, own=own)
        for _ in range(_ATTEMPTS):
            lost = [i for i, job_id in enumerate(ids) if job_id is None]
            if not lost:
                return [job_id for job_id in ids if job_id is not None]
            for i, job_id in zip(lost, self._insert_round(cur, [jobs[i] for i in lost]),
                                 strict=True):
                ids[i] = job_id
        raise Conflict("postgres: idempotency keys kept changing hands during the push")

    def _insert_round(self, cur: Cursor, jobs: Sequence[NewJob], *,
                      own: bool = False) -> list[str | None]:
        """A plain batch (no keys, no edges) is one statement, or on our own connection a
        large one due now is a COPY, then its NOTIFY (a hint sent once the jobs are visible).
        Otherwise all statements go out in one pipeline, ended by one Sync. Outside a
        transaction (autocommit) Postgres runs them as one implicit transaction, committed at
        the Sync or rolled back whole; inside the caller's transaction they simply join it."""
        q = self._q
        keys = [job.idempotency_key for job in jobs if job.idempotency_key is not None]
        edges = [(job.id, dep) for job in jobs for dep in job.dependencies]
        if not keys and not edges:
            if own and len(jobs) >= _COPY_FROM and not any(j.delay_seconds for j in jobs):
                return list(self._copy(cur, lambda: _postgres_copy.runs_of(jobs, _COPY_RUN)))
            if len(jobs) == 1:
                job = jobs[0]
                delay = float(job.delay_seconds)
                cur.execute(q["insert_job"], (
                    job.id, job.queue_name, job.name, job.payload, job.priority,
                    job.max_attempts, job.timeout_seconds, delay, delay,
                    _sql.encode_list(job.tags), job.batch_id, job.idempotency_mode,
                    float(job.idempotency_window), self.channel, job.queue_name))
            else:
                cur.execute(q["insert_notify"], (*_push_arrays(jobs), self.channel,
                                                 sorted({job.queue_name for job in jobs})))
            return [job.id for job in jobs]
        with cur.connection.pipeline():
            if keys:
                cur.execute(q["expire_idempotency_keys"], (keys,))
            cur.execute(q["insert_jobs_keyed" if keys else "insert_jobs"], _push_arrays(jobs))
            if edges:
                cur.execute(q["insert_dependencies"], ([e[0] for e in edges],
                                                       [e[1] for e in edges]))
                cur.execute(q["count_waiting"],
                            {"ids": [job.id for job in jobs if job.dependencies],
                             "parents": sorted({e[1] for e in edges})})
            cur.execute(q["notify"], (self.channel, sorted({job.queue_name for job in jobs})))
            if keys:
                cur.execute(q["ids_by_keys"], (keys,))
        if not keys:
            return [job.id for job in jobs]
        # Every key we inserted is ours (nobody can change our rows before we commit); a key
        # that lost to another job maps to that job, unless its holder freed it meanwhile.
        owner: dict[str, str] = dict(cur.fetchall())
        return [owner.get(job.idempotency_key) if job.idempotency_key else job.id
                for job in jobs]

    # -- consuming -----------------------------------------------------------------------
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        if not queues or limit <= 0:
            return []
        params = _reserve_params(worker_id, queues, limit, lease_seconds)
        # Binary rows: timestamps and the payload load faster than from text (bytea as hex).
        return _batch(self._run(lambda cur: cur.execute(
            self._q["reserve"], params, prepare=self._prepare, binary=True).fetchall()))

    def warm_up(self, connections: int) -> None:
        """Open ``connections`` sessions and run the hot path's statements once on each, with
        no effect (no job matches): a new session's first reservation and acknowledgement
        cost 1-2 ms more of server CPU each, and its first UPDATE of the table another
        ~13 ms (the catalog caches, the counting trigger's PL/pgSQL). With ``prepare`` they
        are prepared here too. Behind a transaction pooler this warms whichever server
        session the pooler lends, which is harmless."""
        q, prepare = self._q, self._prepare

        def prime(conn: Connection) -> None:
            with conn.pipeline(), conn.cursor() as cur:
                cur.execute(q["reserve"], {"worker": "", "lease": 0.0, "queues": [""],
                                           "limit": 0}, prepare=prepare, binary=True)
                cur.execute(q["complete_many"], ([""], [0], [None]), prepare=prepare)
                cur.execute(q["release_dependents_many"], {"ids": [""], "channel": ""},
                            prepare=prepare)
        try:
            self._pool.warm(connections, prime)
        except psycopg.Error as exc:
            raise translate(exc, self._pool.where) from exc

    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        rows = self._fetch("reserve_job", {"worker": worker_id, "lease": float(lease_seconds),
                                           "id": job_id})
        return _record(rows[0]) if rows else None

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        if not tokens:
            return HeartbeatResult()

        def work(cur: Cursor) -> HeartbeatResult:
            ids, epochs = [t.job_id for t in tokens], [t.epoch for t in tokens]
            extended = {row[0] for row in cur.execute(self._q["extend_leases"],
                                                      (float(lease_seconds), ids, epochs))}
            rest = [t for t in tokens if t.job_id not in extended]
            if not rest:
                return HeartbeatResult(frozenset(extended))
            found = {row[0]: (row[1], row[2]) for row in
                     cur.execute(self._q["lease_states"], ([t.job_id for t in rest],))}
            cancelled = {t.job_id for t in rest if found.get(t.job_id) == (State.CANCELLED,
                                                                             t.epoch)}
            lost = {t.job_id for t in rest} - cancelled
            return HeartbeatResult(frozenset(extended), frozenset(cancelled), frozenset(lost))
        return self._run(work)

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        return self.complete_and_reserve(items, "", (), 0, 0.0)[0]

    def complete_and_reserve(
        self, items: Sequence[tuple[LeaseToken, str | None]], worker_id: str,
        queues: Sequence[str], limit: int, lease_seconds: float,
    ) -> tuple[list[bool], list[JobRecord]]:
        """The batch's completions and the next reservation in one round trip and one commit:
        one set-based ``complete_many`` statement, one ``release_dependents_many`` (its own
        snapshot, see count_waiting in postgres.sql), then ``reserve`` (which therefore sees
        the jobs these completions released), pipelined as one implicit transaction: an
        error in any of them rolls back all three. One commit (a WAL flush) per batch where
        the worker had two."""
        reserving = bool(queues) and limit > 0
        if not items:
            return [], self.reserve(worker_id, queues, limit, lease_seconds) if reserving else []
        ordered = sorted(items, key=lambda item: item[0].job_id)
        ids = [token.job_id for token, _ in ordered]
        params = (ids, [token.epoch for token, _ in ordered], [result for _, result in ordered])
        wanted = _reserve_params(worker_id, queues, limit, lease_seconds) if reserving else None
        q, prepare = self._q, self._prepare

        def work(cur: Cursor) -> tuple[set[tuple[str, int]], list[TupleRow]]:
            conn = cur.connection
            with conn.cursor() as release, conn.cursor() as picked:
                with conn.pipeline():
                    cur.execute(q["complete_many"], params, prepare=prepare)
                    release.execute(q["release_dependents_many"],
                                    {"ids": ids, "channel": self.channel}, prepare=prepare)
                    if wanted is not None:
                        picked.execute(q["reserve"], wanted, prepare=prepare, binary=True)
                rows = picked.fetchall() if wanted is not None else []
            return {(job_id, epoch) for job_id, epoch in cur.fetchall()}, rows
        done, rows = self._run(work)
        accepted = []
        for token, _ in items:  # a token given twice is accepted once, as when sent one by one
            key = (token.job_id, token.epoch)
            accepted.append(key in done)
            done.discard(key)
        return accepted, _batch(rows)

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        return self.complete_many([(token, result)])[0]

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        dead = retry_in is None
        state = State.FAILED if dead else State.RETRYING
        return self._change("fail", {"state": state.value, "error": error, "dead": dead,
                                     "clipped": _attempts.clip(error),
                                     "delay": float(retry_in or 0.0), "id": token.job_id,
                                     "epoch": token.epoch})

    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        return self._change("release", (float(delay_seconds), reason, *token))

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        return self._change("set_progress", (float(progress), *token))

    def recover_expired(self) -> list[str]:
        return [row[0] for row in self._fetch("recover_expired")]

    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        params = {"worker": worker_id, "reason": reason,
                  "started": None if started is None else sorted(started)}

        def work(cur: Cursor) -> list[str]:
            moved = cur.execute(self._q["recover_worker"], params).fetchall()
            return [r[0] for r in moved + cur.execute(self._q["release_worker"],
                                                      params).fetchall()]
        return self._run(work, tx=True)

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return on a NOTIFY for one of ``queues`` (or, when not listening, a poll that finds
        due work), when the next delayed job falls due, or at the timeout. Due work is
        re-checked at least every second, so a lost notification only delays a job that much."""
        self._waiter.wait(queues, timeout)

    # -- managing ------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        rows = self._select("WHERE id = %s", [job_id])
        return rows[0] if rows else None

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        if not job_ids:
            return []
        query = (f"SELECT DISTINCT job_id FROM \"{self.schema}\".job_dependencies "
                 "WHERE depends_on = ANY(%s)")
        rows = self._run(lambda cur: cur.execute(query, (list(job_ids),)).fetchall())
        return sorted(row[0] for row in rows)

    def attempt_history(self, job_id: str) -> list[Attempt]:
        query = f"SELECT attempt_history FROM {self._table} WHERE id = %s"
        rows = self._run(lambda cur: cur.execute(query, (job_id,)).fetchall())
        return _attempts.parse(rows[0][0]) if rows else []

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        where, params = _sql.filter_clause(criteria, ph="%s")
        tail, more = _sql.order_limit(criteria, ph="%s")
        return self._select(f"WHERE {where}{tail}", params + more)

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        where, params = _sql.filter_clause(criteria, ph="%s")
        tail, more = _sql.order_limit(criteria, ph="%s")
        query = f"SELECT {_views.NODE_COLUMNS} FROM {self._table} WHERE {where}{tail}"
        rows = self._run(lambda cur: cur.execute(query, params + more).fetchall())
        return [_views.node_row(row) for row in rows]

    def _select(self, clause: str, params: list[Any]) -> list[JobRecord]:
        query = f"SELECT {_sql.SELECT_COLUMNS} FROM {self._table} {clause}"
        rows = self._run(lambda cur: cur.execute(query, params).fetchall())
        return [_record(row) for row in rows]

    def count(self, criteria: JobFilter) -> int:
        where, params = _sql.filter_clause(criteria, ph="%s")
        query = f"SELECT count(*) FROM {self._table} WHERE {where}"
        return int(self._run(lambda cur: cur.execute(query, params).fetchall())[0][0])

    def estimate_count(self, criteria: JobFilter) -> int | None:
        """The planner's row estimate when its plan to read the matches costs more than
        ``ESTIMATE_ABOVE_COST`` (a count that reads most of a large table: hundreds of
        milliseconds at a million jobs); None when an exact count is cheap (an index finds
        few rows)."""
        where, params = _sql.filter_clause(criteria, ph="%s")
        query = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self._table} WHERE {where}"
        plan = self._run(lambda cur: cur.execute(query, params).fetchall())[0][0][0]["Plan"]
        if float(plan["Total Cost"]) <= ESTIMATE_ABOVE_COST:
            return None
        return int(plan["Plan Rows"])

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        where, params = _sql.filter_clause(criteria, ph="%s")
        query = _views.sorted_select(_sql.SELECT_COLUMNS, self._table, where, column,
                                     descending, "%s", '{} COLLATE "C"', within=within,
                                     home=self._table)
        rows = self._run(lambda cur: cur.execute(query, [*params, criteria.limit,
                                                         criteria.offset]).fetchall())
        return [_record(row) for row in rows]

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        """Grouped by the exception's digest (migration 10), for failed jobs from
        idx_failed_digest alone (in the digest's order: no sort but the per-group task and
        queue lists); only the groups that make the cut read a row (their newest job's, for
        the text). Groups tied with the ``limit``-th by count are all read, so the order by
        text among them is exact."""
        where, params = _sql.filter_clause(criteria, ph="%s")
        if {State(s) for s in criteria.states} == {State.FAILED}:
            where += " AND state = 'failed'"  # literally, so the partial index qualifies
        query = (
            "WITH groups AS (SELECT exception_digest AS digest, count(*) AS n, "
            "max(id) AS latest, max(coalesce(failed_at, updated_at)) AS at, "
            "array_agg(DISTINCT name) AS names, array_agg(DISTINCT queue_name) AS queues "
            f"FROM {self._table} WHERE {where} GROUP BY exception_digest), "
            "kept AS (SELECT * FROM groups WHERE n >= coalesce((SELECT n FROM groups "
            "ORDER BY n DESC OFFSET %s LIMIT 1), 0)) "
            "SELECT j.exception, k.n, k.latest, k.at, k.names, k.queues "
            f"FROM kept k JOIN {self._table} j ON j.id = k.latest "
            'ORDER BY k.n DESC, j.exception COLLATE "C" LIMIT %s')
        rows = self._run(lambda cur: cur.execute(
            query, [*params, max(limit - 1, 0), limit]).fetchall())
        return _views.ordered_texts(
            [ErrorText(text, int(n), latest, at.astimezone(UTC) if at else None,
                       tuple(sorted(names)), tuple(sorted(queues)))
             for text, n, latest, at, names, queues in rows], limit)

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        where, params = self._due(criteria)
        return self._select(f"WHERE {where} ORDER BY available_at, id LIMIT %s",
                            [*params, criteria.limit])

    def count_due(self, criteria: DueFilter) -> int:
        where, params = self._due(replace(criteria, after=None))
        query = f"SELECT count(*) FROM {self._table} WHERE {where}"
        return int(self._run(lambda cur: cur.execute(query, params).fetchall())[0][0])

    @staticmethod
    def _due(criteria: DueFilter) -> tuple[str, list[Any]]:
        after = criteria.after[0] if criteria.after is not None else None
        return _views.due_clause(criteria, None, after, "%s", now_sql="statement_timestamp()")

    def cancel(self, job_id: str, reason: str) -> bool:
        return self._change("cancel", (reason, job_id))

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        delay = float(delay_seconds)
        return self._change("replace_payload", (payload, delay, delay, job_id))

    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        """One statement either way: cancel the pending dependents, or satisfy their edges to
        ``job_id`` (each edge once) and return those no longer waiting on anything."""
        if cancel:
            return [row[0] for row in self._fetch("cancel_dependents", (reason, job_id))]
        return [child for child, waiting, _ in
                self._fetch("release_dependents", (job_id, self.channel)) if waiting == 0]

    def retry(self, job_id: str) -> bool:
        return self._change("retry", (job_id,))

    def set_priority(self, job_id: str, priority: int) -> bool:
        return self._change("set_priority", (priority, job_id))

    def delete(self, job_id: str) -> bool:
        return self._change("delete", (job_id, job_id))

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        """One statement per page (``bulk_<action>`` in postgres.sql); ids go in sorted, so
        concurrent pages lock rows in one order."""
        ids = check_bulk(action, job_ids, priority)
        if not ids:
            return []
        params = {"ids": sorted(ids), "reason": reason, "priority": priority}
        changed = {row[0] for row in self._fetch(f"bulk_{action}", params)}
        return [job_id for job_id in ids if job_id in changed]

    def restore(self, records: Sequence[JobRecord]) -> int:
        if not records:
            return 0
        rows = [_sql.record_to_row(rec, lambda value: value) for rec in records]

        def work(cur: Cursor) -> int:
            cur.executemany(self._q["restore_job"], rows, returning=True)
            inserted: set[str] = set()
            while True:
                inserted.update(row[0] for row in cur.fetchall())
                if not cur.nextset():
                    break
            histories = [(h, r.id) for r in records
                         if r.id in inserted and (h := _attempts.restored(r)) is not None]
            if histories:
                cur.executemany(f"UPDATE {self._table} SET attempt_history = %s::jsonb "
                                "WHERE id = %s", histories)
            edges = [(r.id, dep) for r in records if r.id in inserted for dep in r.dependencies]
            if edges:
                cur.execute(self._q["insert_dependencies"],
                            ([e[0] for e in edges], [e[1] for e in edges]))
                cur.execute(self._q["count_waiting"], {"ids": sorted({e[0] for e in edges}),
                                                       "parents": sorted({e[1] for e in edges})})
            return len(inserted)
        return self._run(work, tx=True)

    def stats(self) -> dict[str, QueueStats]:
        """From the counters the triggers keep (migration 8) and one index probe per queue
        for its oldest ready job: as fast at a million jobs as at none."""
        out: dict[str, QueueStats] = {}
        waiting: dict[str, list[int]] = {}
        for queue, state, count, priority_sum in self._fetch("stats_counts"):
            out.setdefault(queue, QueueStats()).counts[State(state)] = int(count)
            if state in (State.PENDING, State.RETRYING):
                sums = waiting.setdefault(queue, [0, 0])
                sums[0] += int(count)
                sums[1] += int(priority_sum)
        for queue, (n, total) in waiting.items():
            out[queue].avg_priority = total / n if n else None
        for queue, oldest, recent in self._fetch("stats_gauges", (sorted(out),)):
            out[queue].oldest_ready_at = _utc(oldest)
            out[queue].completed_last_minute = int(recent)
        return out

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        params = {"completed": float(completed_age), "failed": float(failed_age),
                  "limit": None if limit is None else int(limit)}
        if dry_run:
            return int(self._fetch("prune_count", params)[0][0])

        def work(cur: Cursor) -> int:
            deleted = int(cur.execute(self._q["prune"], params).fetchall()[0][0])
            cur.execute(self._q["fold_counts"])   # the stats deltas, bounded by the prune's pace
            return deleted
        return self._run(work, tx=True)

    # -- coordination --------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return self._change("lock_acquire", (name, owner, float(ttl_seconds)))

    def lock_release(self, name: str, owner: str) -> bool:
        return self._change("lock_release", (name, owner))

    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        return int(self._fetch("counter_incr", (key, amount, float(window_seconds)))[0][0])

    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        def work(cur: Cursor) -> None:  # one pipeline: one implicit transaction, one round trip
            with cur.connection.pipeline():
                cur.execute(self._q["registry_expire"])
                cur.execute(self._q["registry_put"],
                            (kind, key, json.dumps(data), float(ttl_seconds)))
        self._run(work)

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return _registry.decoded(kind, (row[0] for row in self._fetch("registry_list", (kind,))))

    def registry_remove(self, kind: str, key: str) -> None:
        self._change("registry_remove", (kind, key))


def _record(row: Sequence[Any]) -> JobRecord:
    """``_sql.row_to_record`` for our own connections (a hot path: one call per job). Their
    session time zone is UTC, so timestamps need no conversion; bytea is already bytes and
    double precision already float."""
    (id_, queue, name, payload, state, priority, attempts, max_attempts, timeout, delay,
     available, created, updated, deps, tags, started, completed, failed, exception, result,
     progress, key, batch, owner, expires, epoch) = row
    try:
        return record_from_values((
            id_, queue, name, payload, _sql.STATES[state], priority, attempts, max_attempts,
            timeout, delay, available, created, updated, tuple(json.loads(deps)) if deps else (),
            tuple(json.loads(tags)) if tags else (), started, completed, failed, exception,
            result, progress, key, batch, owner, expires, epoch, {}))
    except Exception:  # noqa: BLE001 - a column another program filled with garbage
        return _sql.row_to_record(row, _utc)  # maps it field by field, naming the failures


def _reserve_params(worker_id: str, queues: Sequence[str], limit: int,
                    lease_seconds: float) -> dict[str, Any]:
    return {"worker": worker_id, "lease": float(lease_seconds),
            "queues": list(dict.fromkeys(queues)), "limit": limit}


def _batch(rows: Sequence[Sequence[Any]]) -> list[JobRecord]:
    """Reserved rows as records in the order the worker runs them."""
    jobs = [_record(row) for row in rows]
    jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
    return jobs


def _utc(value: datetime | None) -> datetime | None:
    """timestamptz values come back in the session's time zone; records use UTC."""
    return None if value is None else value.astimezone(UTC)


def _push_arrays(jobs: Sequence[NewJob]) -> tuple[list[Any], ...]:
    """One list per column of ``insert_jobs``, in its parameter order."""
    enc = _sql.encode_list
    return ([j.id for j in jobs], [j.queue_name for j in jobs], [j.name for j in jobs],
            [j.payload for j in jobs], [j.priority for j in jobs],
            [j.max_attempts for j in jobs], [j.timeout_seconds for j in jobs],
            [float(j.delay_seconds) for j in jobs], [enc(j.dependencies) for j in jobs],
            [enc(j.tags) for j in jobs], [j.idempotency_key for j in jobs],
            [j.batch_id for j in jobs], [j.idempotency_mode for j in jobs],
            [float(j.idempotency_window) for j in jobs])
