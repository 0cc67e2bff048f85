"""MySQL 8.0.1+ / MariaDB 10.6+ through PyMySQL: short transactions and ``SKIP LOCKED``.

Reserving reads the best candidate ids without locks, locks those still free with ``FOR UPDATE
SKIP LOCKED`` (locking the sorted ready set itself would lock every ready row and starve the
other workers), claims them with one UPDATE and reads them back (no ``RETURNING`` here).
Deadlocks and lock-wait timeouts re-run the transaction. Sessions are UTC and READ COMMITTED;
times come from the server's ``UTC_TIMESTAMP(6)``. Calls borrow a connection from a small pool
(``_mysql_pool``); after a lost connection the failing call raises DriverUnavailable and the
next call connects afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]

from taskqueue.drivers import _attempts, _mysql_batch, _registry, _sql, _views
from taskqueue.drivers._mysql_counts import Tally, corrections
from taskqueue.drivers._mysql_pool import (
    RETRYABLE,
    Connection,
    Pool,
    error_code,
    open_connection,
    translate,
)
from taskqueue.drivers._sqlite_wake import Doorbell
from taskqueue.drivers.base import (
    BULK_STATES,
    CloseHooks,
    DueFilter,
    ErrorText,
    GraphNode,
    HeartbeatResult,
    JobFilter,
    QueueStats,
    check_bulk,
)
from taskqueue.errors import ConfigError, Conflict, DriverUnavailable, TaskQueueError
from taskqueue.jobs.model import Attempt, JobRecord, LeaseToken, NewJob
from taskqueue.jobs.states import State

Q = _sql.load_queries("mysql.sql")
MIGRATIONS = sorted(
    (int(name.removeprefix("migration_")), sql) for name, sql in Q.items()
    if name.removeprefix("migration_").isdigit()
)
T = TypeVar("T")
#: Priority levels whose oldest ready job ``stats`` asks for in one statement.
_LEVELS_PER_STATEMENT = 100
Cursor = Any

_RETRIES = 5
_ALREADY_DONE = frozenset({1060, 1061, 1091})  # duplicate column/key, no such key: done
#: Rows one prune transaction deletes at most (their ids come back to count them).
_PRUNE_CHUNK = 5000
_STATEMENT_CHARS = 1_000_000  # split multi-row INSERTs well below max_allowed_packet
_OPTIONS: dict[str, Callable[[str], Any]] = {
    "pool_size": int, "connect_timeout": float, "read_timeout": float, "unix_socket": str,
}


def _us(seconds: float) -> int:
    """Seconds as whole microseconds, for ``INTERVAL %s MICROSECOND``."""
    return int(round(seconds * 1_000_000))


def _ph(count: int) -> str:
    return _sql.placeholders(count, "%s")


class MySQLDriver(CloseHooks):
    """The Driver protocol on MySQL 8.0.1+ or MariaDB 10.6+ (InnoDB, utf8mb4)."""

    name = "mysql"

    def __init__(self, database: str, *, where: str, pool_size: int = 8, **connect: Any) -> None:
        """``connect`` holds PyMySQL's connection arguments (host, port, user, password, …)."""
        self._database, self._where = database, where
        self._connect_args = {"database": database, "connect_timeout": 5.0, **connect}
        self._pool = Pool(lambda: open_connection(self._connect_args), pool_size)
        self._migration_lock = f"taskqueue:{database}"[:64]  # GET_LOCK names are server-wide
        # Same-host wake-ups (see _sqlite_wake), one doorbell per server and database as this
        # host reaches it; workers of other hosts, and pushes from them, keep to polling.
        name = "taskqueue-mysql-" + re.sub(r"[^\w.-]", "_", where)
        self._doorbell = Doorbell(os.path.join(os.environ.get("TMPDIR") or "/tmp", name))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLDriver:
        """Connect to ``mysql://user:pass@host:port/database`` (or ``mariadb://``) and migrate.

        Query parameters (or keyword options): ``pool_size``, ``connect_timeout``,
        ``read_timeout``, ``unix_socket``. The database must already exist.
        """
        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise ConfigError(f"no database in the MySQL URL; use {parts.scheme}://user:pass@"
                              "host:3306/database (the database must exist)")
        migrate = options.pop("migrate", True)
        settings = {k: v[-1] for k, v in parse_qs(parts.query).items()} | options
        if unknown := sorted(set(settings) - set(_OPTIONS)):
            raise ConfigError(f"unknown MySQL option(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(_OPTIONS))}")
        try:
            typed = {k: _OPTIONS[k](v) for k, v in settings.items()}
            host, port = parts.hostname or "127.0.0.1", parts.port or 3306
        except ValueError as exc:
            raise ConfigError(f"bad value in the MySQL URL or options: {exc}") from exc
        where = f"{typed.get('unix_socket') or f'{host}:{port}'}/{database}"
        driver = cls(database, where=where, host=host, port=port,
                     user=unquote(parts.username or "root"),
                     password=unquote(parts.password or ""), **typed)
        try:
            if migrate:
                driver.migrate()
        except BaseException:
            driver.close()
            raise
        return driver

    # -- plumbing ------------------------------------------------------------------------
    def _run(self, work: Callable[[Cursor], T], *, tx: bool = False) -> T:
        """Run ``work`` on a pooled connection, in a transaction when ``tx`` (re-run on a
        deadlock or lock-wait timeout), translating PyMySQL errors."""
        attempt = 0
        while True:
            try:
                with self._pool.borrow() as conn:
                    if tx:
                        conn.begin()
                    with conn.cursor() as cur:
                        result = work(cur)
                    if tx:
                        conn.commit()
                    return result
            except pymysql.Error as exc:
                if error_code(exc) in RETRYABLE and attempt < _RETRIES:
                    attempt += 1
                    time.sleep(random.uniform(0.001, 0.01) * attempt)
                    continue
                raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> TaskQueueError:
        return translate(exc, self._database, self._where)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def work(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(sql, params)
            return list(cur.fetchall())
        return self._run(work)

    def _change(self, sql: str, params: Sequence[Any]) -> bool:
        """One single-row UPDATE/DELETE (atomic on its own); True when it changed the row."""
        return self._run(lambda cur: bool(cur.execute(sql, params) == 1))

    def migrate(self) -> list[int]:
        """Apply missing migrations under a server-wide named lock (GET_LOCK), so processes
        starting together do not race; DDL is idempotent (``IF NOT EXISTS``, and a column or
        index that a crashed run already added is skipped: MySQL commits DDL one by one)."""
        def work(cur: Cursor) -> list[int]:
            cur.execute(Q["get_migration_lock"], (self._migration_lock,))
            if cur.fetchone()[0] != 1:
                raise DriverUnavailable("timed out waiting for another process to migrate MySQL")
            try:
                cur.execute(Q["create_migrations"])
                cur.execute(Q["applied_migrations"])
                done = {v for (v,) in cur.fetchall()}
                applied = []
                for version, sql in MIGRATIONS:
                    if version not in done:
                        for statement in _statements(sql):
                            _ddl(cur, statement)
                        cur.execute(Q["record_migration"], (version,))
                        applied.append(version)
                return applied
            finally:
                with contextlib.suppress(pymysql.Error):
                    cur.execute(Q["release_migration_lock"], (self._migration_lock,))
        return self._run(work)

    def schema_absent(self) -> bool:
        return not self._rows("SELECT 1 FROM information_schema.tables WHERE table_schema = "
                              "DATABASE() AND table_name IN ('taskqueue_migrations', "
                              "'job_queue')")

    def missing_migrations(self) -> list[int]:
        if not self._rows("SHOW TABLES LIKE 'taskqueue_migrations'"):
            return [version for version, _ in MIGRATIONS]
        done = {v for (v,) in self._rows(Q["applied_migrations"])}
        return [version for version, _ in MIGRATIONS if version not in done]

    def close(self) -> None:
        self._closing()
        self._doorbell.close()
        self._pool.close()

    def now(self) -> datetime:
        value: datetime = self._rows(Q["now"])[0][0]
        return value.replace(tzinfo=UTC)

    # -- producing -----------------------------------------------------------------------
    def push(self, jobs: Sequence[NewJob], *, connection: Connection | None = None) -> list[str]:
        """Insert ``jobs`` (see the protocol). With ``connection`` (the caller's own PyMySQL
        connection, inside their transaction) the rows are written on it and not committed:
        they appear only if the caller commits."""
        if not jobs:
            return []
        if connection is None:
            if all(j.idempotency_key is None and not j.dependencies for j in jobs):
                ids = self._run(lambda cur: _push_plain(cur, jobs))
            else:
                ids = self._run(lambda cur: _push(cur, jobs), tx=True)
            self._doorbell.ring()
            return ids
        try:
            with connection.cursor(pymysql.cursors.Cursor) as cur:
                ids = _push(cur, jobs)
        except pymysql.Error as exc:
            raise self._error(exc) from exc
        self._doorbell.ring()  # a hint only: before the caller commits, polling finds them
        return ids

    # -- consuming -----------------------------------------------------------------------
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        if not queues or limit <= 0:
            return []

        def work(cur: Cursor) -> list[JobRecord]:
            taken = _mysql_batch.lock_ready(cur, Q, queues, limit)
            if not taken:
                cur.execute("COMMIT")
                return []
            ids = [row[0] for row in taken]
            marks = _ph(len(ids))
            counts = Tally().moves((row[1:] for row in taken), State.PROCESSING.value)
            done = _mysql_batch.script(cur, [
                (Q["reserve_update"].format(ids=marks), (worker_id, _us(lease_seconds), *ids)),
                *[(sql, ()) for sql in counts.statements(cur, Q)],
                (Q["select_ordered"].format(columns=_sql.SELECT_COLUMNS, ids=marks), ids),
                ("COMMIT", ())], tx=False)
            return [_sql.row_to_record(r, _aware) for r in done[-2][1]]
        return self._run(work)

    def warm_up(self, connections: int) -> None:
        """Open ``connections`` sessions ahead of need (PyMySQL's handshake and the session
        settings cost a new worker 10-80 ms on a busy machine; statements are not prepared
        server-side, so there is nothing else to warm)."""
        try:
            self._pool.warm(connections)
        except pymysql.Error as exc:
            raise self._error(exc) from exc

    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        def work(cur: Cursor) -> JobRecord | None:
            if cur.execute(Q["reserve_job_lock"], (job_id,)) != 1:
                return None
            Tally().moves([cur.fetchone()[1:]], State.PROCESSING.value).run(cur, Q)
            cur.execute(Q["reserve_update"].format(ids=_ph(1)),
                        (worker_id, _us(lease_seconds), job_id))
            cur.execute(Q["select_ordered"].format(columns=_sql.SELECT_COLUMNS, ids=_ph(1)),
                        (job_id,))
            return _sql.row_to_record(cur.fetchone(), _aware)
        return self._run(work, tx=True)

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        if not tokens:
            return HeartbeatResult()
        ids = [job_id for job_id, _ in tokens]
        extend = Q["extend_leases"].format(ids=_ph(len(ids)),
                                           pairs=", ".join(["(%s, %s)"] * len(tokens)))
        flat = [value for token in tokens for value in token]

        def work(cur: Cursor) -> dict[str, tuple[str, int]]:
            cur.execute(extend, (_us(lease_seconds), *ids, *flat))
            cur.execute(Q["lease_states"].format(ids=_ph(len(ids))), ids)
            return {job_id: (state, epoch) for job_id, state, epoch in cur.fetchall()}
        # A row still processing at the token's epoch was extended by us (we hold its lock);
        # a row that did not match cannot start matching later, epochs only grow.
        found = self._run(work, tx=True)
        kinds = {State.PROCESSING.value: "extended", State.CANCELLED.value: "cancelled"}
        out: dict[str, set[str]] = {"extended": set(), "cancelled": set(), "lost": set()}
        for job_id, epoch in tokens:
            state, current = found.get(job_id, ("", -1))
            out[kinds.get(state, "lost") if current == epoch else "lost"].add(job_id)
        return HeartbeatResult(**{kind: frozenset(ids) for kind, ids in out.items()})

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """All items in one transaction and one round trip (see ``_mysql_batch``)."""
        if not items:
            return []
        answers, released = self._run(lambda cur: _mysql_batch.complete_many(cur, Q, items))
        if released:
            self._doorbell.ring()  # a dependent waits on nothing now: wake this host's workers
        return answers

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        """A batch of one (the same statements, counted the same way)."""
        return self.complete_many([(token, result)])[0]

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        dead = retry_in is None
        state = State.FAILED if dead else State.RETRYING
        params = (state.value, _attempts.clip(error), state.value, error, _us(retry_in or 0.0),
                  *[int(dead)] * 3, *token)
        return bool(self._move(Q["lock_token"], token, [(Q["fail"], params)], state.value))

    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        return bool(self._move(Q["lock_token"], token,
                               [(Q["release"], (_us(delay_seconds), reason, *token))],
                               State.PENDING.value))

    def _move(self, lock: str, params: Sequence[Any],
              change: Sequence[tuple[str, Sequence[Any]]], state: str) -> list[str]:
        """Lock the rows ``lock`` selects (id, queue, state, priority), then run ``change``,
        which moves exactly those rows to ``state``, with its counters, and commit: two round
        trips. Returns the ids moved."""
        def work(cur: Cursor) -> list[str]:
            found = _mysql_batch.script(cur, [("START TRANSACTION", ()), (lock, params)],
                                        tx=False)[1][1]
            if not found:
                cur.execute("COMMIT")
                return []
            counts = Tally().moves((row[1:] for row in found), state)
            _mysql_batch.script(cur, [*change, *[(sql, ()) for sql in counts.statements(cur, Q)],
                                      ("COMMIT", ())], tx=False)
            return [row[0] for row in found]
        return self._run(work)

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        return self._change(Q["set_progress"], (progress, *token))

    def recover_expired(self) -> list[str]:
        def work(cur: Cursor) -> list[str]:
            cur.execute(Q["expired_leases"])
            rows = cur.fetchall()
            ids = [r[0] for r in rows]
            if ids:
                cur.execute(Q["recover_expired"].format(ids=_ph(len(ids))), ids)
                _recovered(rows).run(cur, Q)
            return ids
        return self._run(work, tx=True)

    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        def work(cur: Cursor) -> list[str]:
            cur.execute(Q["worker_leases"], (worker_id,))
            rows = cur.fetchall()
            ids = [r[0] for r in rows]
            ran = [r for r in rows if started is None or r[0] in started]
            unrun = [r for r in rows if not (started is None or r[0] in started)]
            if ran:
                cur.execute(Q["recover_worker"].format(ids=_ph(len(ran))),
                            (reason, reason, *[r[0] for r in ran], worker_id))
            if unrun:
                cur.execute(Q["release_worker"].format(ids=_ph(len(unrun))),
                            (*[r[0] for r in unrun], worker_id))
            _recovered(ran).moves((r[1:4] for r in unrun), State.PENDING.value).run(cur, Q)
            return ids
        return self._run(work, tx=True)

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Poll when the next job is due (5 ms, doubling to 200 ms); return once one is, or
        when a push on this host rings the doorbell (``_sqlite_wake``) meanwhile."""
        deadline = time.monotonic() + timeout
        if not queues:
            time.sleep(max(0.0, timeout))
            return
        self._doorbell.drain()   # rings of pushes made before now: the look below sees them
        sql = Q["next_due"].format(queues=_ph(len(queues)))
        interval = 0.005
        while True:
            due_us = self._rows(sql, list(queues))[0][0]
            if due_us is not None and due_us <= 0:
                return
            pause = min(interval, deadline - time.monotonic())
            if due_us is not None:
                pause = min(pause, due_us / 1_000_000)
            if pause <= 0 or self._doorbell.sleep(pause):
                return
            interval = min(interval * 2, 0.2)

    # -- managing ------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        rows = self._rows(f"SELECT {_sql.SELECT_COLUMNS} FROM job_queue WHERE id = %s", (job_id,))
        return _sql.row_to_record(rows[0], _aware) if rows else None

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        return _sql.dependents(self._rows, job_ids, "%s")

    def attempt_history(self, job_id: str) -> list[Attempt]:
        rows = self._rows("SELECT attempt_history FROM job_queue WHERE id = %s", (job_id,))
        return _attempts.parse(rows[0][0]) if rows else []

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        where, params = _sql.filter_clause(criteria, "%s")
        tail, more = _sql.order_limit(criteria, "%s")
        sql = f"SELECT {_sql.SELECT_COLUMNS} FROM job_queue WHERE {where}{tail}"
        return [_sql.row_to_record(r, _aware) for r in self._rows(sql, params + more)]

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        where, params = _sql.filter_clause(criteria, "%s")
        tail, more = _sql.order_limit(criteria, "%s")
        sql = f"SELECT {_views.NODE_COLUMNS} FROM job_queue WHERE {where}{tail}"
        return [_views.node_row(r) for r in self._rows(sql, params + more)]

    def count(self, criteria: JobFilter) -> int:
        where, params = _sql.filter_clause(criteria, "%s")
        return int(self._rows(f"SELECT count(*) FROM job_queue WHERE {where}", params)[0][0])

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        where, params = _sql.filter_clause(criteria, "%s")
        sql = _views.sorted_select(_sql.SELECT_COLUMNS, "job_queue", where, column, descending,
                                   "%s", "BINARY {}", within=within, deferred=False)
        return [_sql.row_to_record(r, _aware)
                for r in self._rows(sql, [*params, criteria.limit, criteria.offset])]

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        """Grouped by the text's MD5 as well as by task and queue: MySQL compares TEXT values
        in GROUP BY by their first ``max_sort_length`` bytes only (long tracebacks would merge),
        and has no DISTINCT array aggregate; the rows are merged per text here."""
        where, params = _sql.filter_clause(criteria, "%s")
        rows = self._rows(
            "SELECT MIN(exception), name, queue_name, count(*), max(id), "
            f"max(coalesce(failed_at, updated_at)) FROM job_queue WHERE {where} "
            "GROUP BY md5(exception), name, queue_name", params)
        return _views.merge_text_rows(rows, limit, _aware)

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        where, params = _due(criteria)
        sql = (f"SELECT {_sql.SELECT_COLUMNS} FROM job_queue WHERE {where} "
               "ORDER BY available_at, id LIMIT %s")
        return [_sql.row_to_record(r, _aware) for r in self._rows(sql, [*params, criteria.limit])]

    def count_due(self, criteria: DueFilter) -> int:
        where, params = _due(replace(criteria, after=None))
        return int(self._rows(f"SELECT count(*) FROM job_queue WHERE {where}", params)[0][0])

    def cancel(self, job_id: str, reason: str) -> bool:
        return bool(self.apply_many("cancel", [job_id], reason=reason))

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        return self._change(Q["replace_payload"],
                            (payload, _us(delay_seconds), delay_seconds, job_id))

    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        def work(cur: Cursor) -> list[str]:
            if not cancel:
                return _release_dependents(cur, job_id)
            cur.execute(Q["dependents"], (job_id,))
            children = [r[0] for r in cur.fetchall()]
            if not children:
                return []
            cur.execute(Q["lock_pending"].format(ids=_ph(len(children))), children)
            rows = cur.fetchall()
            doomed = [r[0] for r in rows]
            if doomed:
                cur.execute(Q["cancel_dependents"].format(ids=_ph(len(doomed))),
                            (reason, *doomed))
                Tally().moves((r[1:] for r in rows), State.CANCELLED.value).run(cur, Q)
            return doomed
        changed = self._run(work, tx=True)
        if changed and not cancel:
            self._doorbell.ring()
        return changed

    def retry(self, job_id: str) -> bool:
        return bool(self.apply_many("retry", [job_id]))

    def set_priority(self, job_id: str, priority: int) -> bool:
        return bool(self.apply_many("priority", [job_id], priority=priority))

    def delete(self, job_id: str) -> bool:
        return bool(self._move(Q["lock_any"].format(ids=_ph(1)), (job_id,),
                               [(Q["delete_edges"], (job_id,)), (Q["delete"], (job_id,))], ""))

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        """One transaction per page: ``bulk_lock`` finds and locks the jobs the action applies
        to, one ``bulk_<action>`` statement changes them (mysql.sql)."""
        ids = check_bulk(action, job_ids, priority)
        if not ids:
            return []
        states = ", ".join(f"'{s.value}'" for s in sorted(BULK_STATES[action]))
        extra: list[Any] = [reason] if action == "cancel" else [priority] if action == "priority" \
            else []

        moved = {"retry": State.PENDING.value, "cancel": State.CANCELLED.value, "delete": ""}

        def work(cur: Cursor) -> set[str]:
            cur.execute(Q["bulk_lock"].format(ids=_ph(len(ids)), states=states), sorted(ids))
            rows = cur.fetchall()
            found = [row[0] for row in rows]
            if found:
                marks = _ph(len(found))
                if action == "delete":
                    cur.execute(Q["bulk_delete_edges"].format(ids=marks), found)
                cur.execute(Q[f"bulk_{action}"].format(ids=marks), [*extra, *found])
                Tally().moves((row[1:] for row in rows), moved.get(action),
                              priority if action == "priority" else None).run(cur, Q)
            return set(found)
        changed = self._run(work, tx=True)
        return [job_id for job_id in ids if job_id in changed]

    def restore(self, records: Sequence[JobRecord]) -> int:
        if not records:
            return 0
        linked = [rec for rec in records if rec.dependencies]

        def work(cur: Cursor) -> int:
            groups: dict[tuple[str, str, int], list[tuple[Any, ...]]] = {}
            for rec in records:   # one INSERT per counter: its affected rows are the new ones
                key = (rec.queue_name, State(rec.state).value, rec.priority)
                groups.setdefault(key, []).append(_sql.record_to_row(rec, _naive))
            inserted, counts = 0, Tally()
            for key, rows in groups.items():
                added = _insert(cur, Q["restore_jobs"], Q["restore_row"], rows)
                counts.add(*key, added)
                inserted += added
            counts.run(cur, Q)
            histories = [(h, r.id) for r in records if (h := _attempts.restored(r)) is not None]
            if histories:  # (a job kept from an earlier, interrupted run has it already)
                cur.executemany("UPDATE job_queue SET attempt_history = %s "
                                "WHERE id = %s AND attempt_history IS NULL", histories)
            if linked:  # (re)link the stored ones; linking an id restored earlier is a no-op
                cur.execute(Q["existing_ids"].format(ids=_ph(len(linked))), [r.id for r in linked])
                stored = {r[0] for r in cur.fetchall()}
                _link(cur, [(rec.id, rec.dependencies) for rec in linked if rec.id in stored])
            return inserted
        return self._run(work, tx=True)

    def recount(self) -> int:
        """Bring the counters in line with the table, for writes they did not see (SQL of
        other programs: the driver counts its own, see ``_mysql_counts``). The table and the
        counters are read in one snapshot without locking either (one scan of the table, about
        as long as a ``count`` of every job), and the difference is added to the counters: a
        write committed meanwhile changes both or (uncounted) is found by the next recount.
        Under a named lock, so two recounts do not both add it. Returns the jobs corrected."""
        lock = f"taskqueue-recount:{self._database}"[:64]

        def work(cur: Cursor) -> int:
            cur.execute(Q["get_migration_lock"], (lock,))
            if cur.fetchone()[0] != 1:
                raise DriverUnavailable("timed out waiting for another recount of MySQL")
            try:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                cur.execute(Q["recount_table"])
                table = cur.fetchall()
                cur.execute(Q["recount_counters"])
                counters = cur.fetchall()
                cur.execute("COMMIT")
                fix = corrections(table, counters)
                cur.execute("START TRANSACTION")
                fix.run(cur, Q)
                cur.execute("COMMIT")
                return sum(abs(n) for n in fix.counts.values())
            finally:
                with contextlib.suppress(pymysql.Error):
                    cur.execute(Q["release_migration_lock"], (lock,))
        return self._run(work)

    def stats(self) -> dict[str, QueueStats]:
        """From the counters the driver keeps (migrations 6 and 8) and, per queue with waiting jobs,
        one index dive per waiting state and priority level in use for its oldest ready job:
        as fast at a million jobs as at none."""
        out: dict[str, QueueStats] = {}
        levels: dict[str, list[tuple[str, int, int]]] = {}
        for queue, state, priority, count in self._rows(Q["stats_counts"]):
            out.setdefault(queue, QueueStats()).counts[State(state)] += int(count)
            if state in (State.PENDING, State.RETRYING) and count:
                levels.setdefault(queue, []).append((state, int(priority), int(count)))
        for queue, waiting in levels.items():
            n = sum(count for _, _, count in waiting)
            out[queue].avg_priority = sum(p * count for _, p, count in waiting) / n
            out[queue].oldest_ready_at = self._oldest_ready(queue, waiting)
        for queue, count in self._rows(Q["stats_recent"]):
            out.setdefault(queue, QueueStats()).completed_last_minute = int(count)
        return out

    def _oldest_ready(self, queue: str, levels: list[tuple[str, int, int]]) -> datetime | None:
        """The earliest due time of the queue's ready jobs, over the given (state, priority)
        levels in one statement (at most ``_LEVELS_PER_STATEMENT`` levels each)."""
        oldest: datetime | None = None
        for start in range(0, len(levels), _LEVELS_PER_STATEMENT):
            chunk = levels[start:start + _LEVELS_PER_STATEMENT]
            sql = ("SELECT MIN(due) FROM ("
                   + " UNION ALL ".join([Q["stats_level"].strip().rstrip(";")] * len(chunk))
                   + ") AS levels")
            params = [x for state, priority, _ in chunk for x in (state, queue, priority)]
            due = _aware(self._rows(sql, params)[0][0])
            if due is not None and (oldest is None or due < oldest):
                oldest = due
        return oldest

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        ages = (_us(completed_age), _us(failed_age))
        if dry_run:
            def count(cur: Cursor) -> int:
                cur.execute(Q["prune_count"], ages)
                return int(cur.fetchone()[0])
            return self._run(count)

        def work(most: int) -> Callable[[Cursor], int]:
            def chunk(cur: Cursor) -> int:
                rows: list[Any] = []
                for kind, age in enumerate(ages, start=1):  # completed, then failed
                    if len(rows) < most:
                        cur.execute(Q["prune_lock"], (kind, age, most - len(rows)))
                        rows.extend(cur.fetchall())
                if rows:
                    ids = [r[0] for r in rows]
                    cur.execute(Q["prune_delete"].format(ids=_ph(len(rows))), ids)
                    cur.execute(Q["prune_edges"].format(ids=_ph(len(rows))), ids)
                    Tally().moves((r[1:] for r in rows), "").run(cur, Q)
                cur.execute(Q["prune_completions"])
                return len(rows)
            return chunk

        left = 2**62 if limit is None else int(limit)
        deleted = 0
        while True:   # a transaction per chunk: the ids come back to be counted
            most = min(left - deleted, _PRUNE_CHUNK)
            done = self._run(work(most), tx=True)
            deleted += done
            if done < most or deleted >= left:
                return deleted

    # -- coordination --------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        def work(cur: Cursor) -> bool:
            cur.execute(Q["lock_acquire"], (name, owner, _us(ttl_seconds)))
            cur.execute(Q["lock_owner"], (name,))  # the upsert locked the row: this is current
            return bool(cur.fetchone()[0] == owner)
        return self._run(work, tx=True)

    def lock_release(self, name: str, owner: str) -> bool:
        return self._change(Q["lock_release"], (name, owner))

    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        def work(cur: Cursor) -> int:
            cur.execute(Q["counter_incr"], (key, amount, _us(window_seconds)))
            cur.execute(Q["counter_value"], (key,))
            return int(cur.fetchone()[0])
        return self._run(work, tx=True)

    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        def work(cur: Cursor) -> None:
            cur.execute(Q["registry_expire"])
            cur.execute(Q["registry_put"], (kind, key, json.dumps(data), _us(ttl_seconds)))
        self._run(work, tx=True)

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return _registry.decoded(kind, (r[0] for r in self._rows(Q["registry_list"], (kind,))))

    def registry_remove(self, kind: str, key: str) -> None:
        self._change(Q["registry_remove"], (kind, key))


# -- statements run inside a transaction (on a pooled or the caller's connection) -------------
def _push_plain(cur: Cursor, jobs: Sequence[NewJob]) -> list[str]:
    """Jobs without key or dependencies, on a pooled session: the INSERT and its counters in one
    script, one round trip (several statements if the rows exceed ``_STATEMENT_CHARS``)."""
    counts = Tally()
    for job in jobs:
        counts.add(job.queue_name, State.PENDING.value, job.priority)
    inserts = _rendered(cur, Q["insert_jobs"], Q["job_row"], [_job_row(j) for j in jobs])
    if len(inserts) == 1:
        _mysql_batch.script(cur, [(inserts[0], ()),
                                  *[(sql, ()) for sql in counts.statements(cur, Q)]])
    else:
        cur.execute("START TRANSACTION")
        for sql in inserts:
            cur.execute(sql)
        counts.run(cur, Q)
        cur.execute("COMMIT")
    return [job.id for job in jobs]


def _push(cur: Cursor, jobs: Sequence[NewJob]) -> list[str]:
    """Insert jobs: keyless ones in plain multi-row INSERTs (a duplicate id is a Conflict),
    keyed ones with ``ON DUPLICATE KEY UPDATE id = id`` and then a look-up of their keys.
    The counters count the inserted rows in the same transaction: the keyed ones by queue and
    priority, one INSERT each, whose affected rows are the jobs it added (an existing key
    changes nothing). Also on a caller's connection, inside their transaction."""
    plain = [j for j in jobs if j.idempotency_key is None]
    keyed = [j for j in jobs if j.idempotency_key is not None]
    counts = Tally()
    _insert(cur, Q["insert_jobs"], Q["job_row"], [_job_row(j) for j in plain])
    for job in plain:
        counts.add(job.queue_name, State.PENDING.value, job.priority)
    by_key: dict[str, str] = {}
    if keyed:
        keys = list(dict.fromkeys(str(j.idempotency_key) for j in keyed))
        cur.execute(Q["expire_idempotency_keys"].format(ids=_ph(len(keys))), keys)
        groups: dict[tuple[str, int], list[NewJob]] = {}
        for job in keyed:
            groups.setdefault((job.queue_name, job.priority), []).append(job)
        for (queue, priority), group in groups.items():
            added = _insert(cur, Q["insert_keyed_jobs"], Q["job_row"], [_job_row(j) for j in group])
            counts.add(queue, State.PENDING.value, priority, added)
        cur.execute(Q["ids_by_idempotency_key"].format(ids=_ph(len(keys))), keys)
        by_key = {key: job_id for key, job_id in cur.fetchall()}
    ids: list[str] = []
    for job in jobs:
        job_id = job.id if job.idempotency_key is None else by_key.get(job.idempotency_key)
        if job_id is None:
            raise Conflict(f"job {job.id} conflicts with an existing job (same id, or an "
                           f"idempotency key equal to {job.idempotency_key!r} up to padding)")
        ids.append(job_id)
    _link(cur, [(j.id, j.dependencies) for j, i in zip(jobs, ids, strict=True)
                if i == j.id and j.dependencies])
    counts.run(cur, Q)
    return ids


def _recovered(rows: Sequence[Sequence[Any]]) -> Tally:
    """The counters' moves of jobs whose lease is recovered: (id, queue, state, priority,
    attempts spent) rows go to failed or retrying."""
    counts = Tally()
    for row in rows:
        counts.move(row[1:4], State.FAILED.value if row[4] else State.RETRYING.value)
    return counts


def _job_row(job: NewJob) -> tuple[Any, ...]:
    return (job.id, job.queue_name, job.name, job.payload, job.priority, job.max_attempts,
            job.timeout_seconds, job.delay_seconds, _us(job.delay_seconds),
            _sql.encode_list(job.dependencies), _sql.encode_list(job.tags),
            job.idempotency_key, job.batch_id, job.idempotency_mode, job.idempotency_window)


def _insert(cur: Cursor, head: str, row_sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run ``_rendered``'s INSERT(s); returns the affected-row count."""
    return sum(int(cur.execute(sql)) for sql in _rendered(cur, head, row_sql, rows))


def _rendered(cur: Cursor, head: str, row_sql: str, rows: Sequence[Sequence[Any]]) -> list[str]:
    """Multi-row INSERT(s): rows rendered with ``row_sql`` and joined into ``head``'s
    ``{rows}``, split so no statement grows past ~1 MB."""
    out: list[str] = []
    size = 0
    batch: list[str] = []
    for row in rows:
        text = cur.mogrify(row_sql, row)
        if batch and size + len(text) > _STATEMENT_CHARS:
            out.append(head.format(rows=", ".join(batch)))
            batch, size = [], 0
        batch.append(text)
        size += len(text) + 2
    if batch:
        out.append(head.format(rows=", ".join(batch)))
    return out


def _link(cur: Cursor, edges: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Record dependency edges and set each job's count of unsatisfied dependencies.

    The parents are share-locked first (see ``lock_parents``): a parent completing concurrently
    is either seen completed (its edge is satisfied now), or blocked until we commit and then
    finds our edges to release.
    """
    if not edges:
        return
    pairs = [(job_id, dep) for job_id, deps in edges for dep in dict.fromkeys(deps)]
    _insert(cur, Q["insert_dependencies"], Q["dependency_row"], pairs)
    ids = [job_id for job_id, _ in edges]
    for name in ("lock_parents", "mark_satisfied_edges", "count_waiting"):
        cur.execute(Q[name].format(ids=_ph(len(ids))), ids)
    waiting = {job_id: int(n) for job_id, n in cur.fetchall()}
    cases = " ".join(["WHEN %s THEN %s"] * len(ids))
    params = [v for job_id in ids for v in (job_id, waiting.get(job_id, 0))]
    cur.execute(Q["set_waiting"].format(cases=cases, ids=_ph(len(ids))), params + ids)


def _release_dependents(cur: Cursor, job_id: str) -> list[str]:
    """Satisfy the edges to ``job_id`` not satisfied yet (each edge once, see ``claim_edges``):
    their jobs wait on one dependency less. Returns the jobs that now wait on none."""
    if not cur.execute(Q["claim_edges"], (job_id,)):
        return []
    cur.execute(Q["claimed_edges"], (job_id,))
    children = [r[0] for r in cur.fetchall()]
    cur.execute(Q["lock_waiting"].format(ids=_ph(len(children))), children)
    waiting = {child: int(n) for child, n in cur.fetchall()}
    if blocked := [child for child, n in waiting.items() if n > 0]:
        cur.execute(Q["release_dependents"].format(ids=_ph(len(blocked))), blocked)
    cur.execute(Q["satisfy_edges"], (job_id,))
    return [child for child, n in waiting.items() if n == 1]


def _statements(sql: str) -> list[str]:
    """A migration's statements: each ends with a semicolon at the end of a line whose next line
    is not indented (a trigger's body, with semicolons of its own, is indented)."""
    return [part.strip() for part in re.split(r";[ \t]*(?:\n|$)(?=\S|$)", sql) if part.strip()]


def _ddl(cur: Cursor, statement: str) -> None:
    """Run one migration statement, skipping a column or index that exists already (or, for
    a DROP, is gone already)."""
    try:
        cur.execute(statement)
    except pymysql.Error as exc:
        if error_code(exc) not in _ALREADY_DONE:
            raise


# -- conversions -------------------------------------------------------------------------------
def _due(criteria: DueFilter) -> tuple[str, list[Any]]:
    after = _naive(criteria.after[0]) if criteria.after is not None else None
    return _views.due_clause(criteria, None, after, "%s", now_sql="UTC_TIMESTAMP(6)")


def _aware(value: Any) -> datetime | None:
    """DATETIME columns hold UTC: attach the zone PyMySQL leaves off."""
    return _sql.dt_identity(value) if isinstance(value, datetime) else None


def _naive(value: datetime | None) -> datetime | None:
    """An aware datetime as the naive UTC value a DATETIME column stores."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)

