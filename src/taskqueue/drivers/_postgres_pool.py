"""The PostgreSQL driver's connection pool and error translation (private to ``postgres``)."""

from __future__ import annotations

import contextlib
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from taskqueue.errors import Conflict, DriverError, DriverUnavailable, TaskQueueError

Connection = psycopg.Connection[TupleRow]
#: An idle connection whose socket stayed quiet is trusted for this long; older ones are
#: pinged anyway (a firewall or NAT may have dropped the flow without telling either side).
_TRUST_QUIET = 30.0


#: SQLSTATEs of a transaction the server rolled back because of a concurrent one (a
#: serialization failure, a deadlock): none of it happened, so it may run again. psycopg makes
#: each its own subclass of OperationalError; its ``TransactionRollback`` is 40000 alone.
ROLLED_BACK = frozenset({"40000", "40001", "40P01"})


def rolled_back(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the server rolled the transaction back for a concurrent one."""
    return exc.sqlstate in ROLLED_BACK


def translate(exc: psycopg.Error, where: str) -> TaskQueueError:
    """The taskqueue error for a psycopg one (messages never carry the password)."""
    if isinstance(exc, psycopg.IntegrityError):
        return Conflict(f"postgres: {exc}")
    if rolled_back(exc):
        return Conflict(f"postgres: {exc} (rolled back by a concurrent change)")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return DriverUnavailable(f"postgres at {where} is unavailable: {exc}".strip())
    return DriverError(f"postgres: {exc}")


class Pool:
    """A small LIFO pool of autocommit connections that never makes a caller wait on a dead
    server: a failed connect raises at once, a broken connection drops every idle one (a
    restart killed them all), and one idle longer than ``check_after`` s is checked before use.
    """

    def __init__(self, conninfo: str, kwargs: dict[str, Any], where: str, *,
                 max_idle: int, check_after: float) -> None:
        self._conninfo, self._kwargs, self.where = conninfo, kwargs, where
        self._max_idle, self._check_after = max_idle, check_after
        self._idle: list[tuple[Connection, float]] = []
        self._lock = threading.Lock()
        self._closed = False
        #: Connections ``warm`` has primed (each server session is primed once).
        self._primed: weakref.WeakSet[Connection] = weakref.WeakSet()

    def connect(self, conninfo: str | None = None) -> Connection:
        """A new autocommit connection (to ``conninfo`` if given), outside the pool. Its
        session time zone is UTC, so timestamptz values come back as datetimes in
        ``datetime.UTC``, ready for records (a transaction pooler such as PgBouncer carries
        the time zone over to every server connection it lends us)."""
        try:
            conn = psycopg.connect(conninfo or self._conninfo, autocommit=True, **self._kwargs)
        except psycopg.Error as exc:
            raise DriverUnavailable(f"cannot connect to postgres at {self.where}: {exc}".strip()
                                    ) from exc
        try:
            conn.execute("SET TIME ZONE 'UTC'")
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc, self.where) from exc
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> Connection:
        while True:
            with self._lock:
                if self._closed:
                    raise DriverError("the postgres driver is closed")
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            idle = time.monotonic() - since
            if idle < self._check_after or self._alive(conn, ping=idle >= _TRUST_QUIET):
                return conn
            self.clear()
        return self.connect()

    @staticmethod
    def _alive(conn: Connection, *, ping: bool) -> bool:
        """Whether an idle connection still works. A server that closed it (a restart, a
        terminated backend) has sent a FATAL message or EOF, which makes the socket readable:
        only then, or when ``ping``, is the round trip of a ping spent (it would delay the
        wake-up of an idle worker and every sporadic push)."""
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
            if not readable and not ping:
                return True
            conn.execute("")
            return True
        except (psycopg.Error, OSError, ValueError):
            conn.close()
            return False

    def _give_back(self, conn: Connection, since: float | None = None) -> None:
        if conn.broken or conn.closed:
            conn.close()
            self.clear()
            return
        if conn.info.transaction_status == TransactionStatus.IDLE:
            with self._lock:
                if not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append((conn, time.monotonic() if since is None else since))
                    return
        conn.close()

    def warm(self, count: int, prime: Callable[[Connection], None]) -> None:
        """Have ``count`` idle connections (at most ``max_idle``), each ``prime``d once: a new
        server session spends its first statements filling its caches and preparing them,
        which a worker that has yet to start can do ahead of need. The idle connections are
        taken out while this runs (no other thread uses one being primed) and put back with
        the time they went idle, so one that is old still gets checked before its next use."""
        with self._lock:
            if self._closed:
                return
            idle, self._idle = self._idle, []
        now = time.monotonic()
        try:
            while len(idle) < min(count, self._max_idle):
                idle.append((self.connect(), now))
            for conn, _ in idle:
                if conn not in self._primed:
                    prime(conn)
                    self._primed.add(conn)
        finally:
            for conn, since in idle:
                self._give_back(conn, since)

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.clear()


