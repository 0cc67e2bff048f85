"""How an idle PostgreSQL worker waits for work (private to ``postgres``).

Normally it LISTENs on a dedicated connection and returns on a NOTIFY for one of its queues.
Behind a transaction pooler (PgBouncer ``pool_mode=transaction``) LISTEN cannot work: the
session that ran it goes back to the pool after the statement, so notifications reach some
other client or nobody. There the waiter LISTENs on a direct connection when one is configured
(``notify_url``), and otherwise polls the due time of the next job every ``poll_interval``.
Either way, due work is re-checked at least every ``MAX_WAIT`` s: a NOTIFY is only a hint.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

from taskqueue.drivers._postgres_pool import Connection, Pool, translate

#: Longest single wait on LISTEN before due work is checked again (a lost NOTIFY costs this).
MAX_WAIT = 1.0


class Waiter:
    """``wait(queues, timeout)``: return when a job of ``queues`` may be ready, at the latest
    at the timeout. ``connect`` opens the LISTEN connection (None: poll through ``pool``)."""

    def __init__(self, pool: Pool, channel: str, next_due_sql: str, *,
                 connect: Callable[[], Connection] | None, poll_interval: float) -> None:
        self._pool, self.channel, self._next_due = pool, channel, next_due_sql
        self._connect, self.poll_interval = connect, poll_interval
        self._lock = threading.Lock()
        self._listener: Connection | None = None

    @property
    def listens(self) -> bool:
        return self._connect is not None

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not queues:
            time.sleep(max(0.0, timeout))
            return
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return
        try:
            if self._connect is None:
                self._poll(sorted(set(queues)), deadline)
            else:
                self._listen_wait(set(queues), deadline)
        except psycopg.Error as exc:
            self.close()
            raise translate(exc, self._pool.where) from exc
        finally:
            self._lock.release()

    def _due_in(self, conn: Connection, queues: list[str]) -> float | None:
        """Seconds until the next waiting job of ``queues`` is due (<= 0: due now)."""
        rows = conn.execute(self._next_due, (queues,)).fetchall()
        return rows[0][0] if rows else None

    def _poll(self, queues: list[str], deadline: float) -> None:
        while (remaining := deadline - time.monotonic()) > 0:
            with self._pool.connection() as conn:
                due_in = self._due_in(conn, queues)
            if due_in is not None and due_in <= 0:
                return
            time.sleep(min(remaining, self.poll_interval,
                           remaining if due_in is None else due_in))

    def _listen_wait(self, queues: set[str], deadline: float) -> None:
        ordered = sorted(queues)
        while (remaining := deadline - time.monotonic()) > 0:
            conn = self._listening()
            # Hints received since the last wait are stale: the query below sees their jobs.
            for _ in conn.notifies(timeout=0):
                pass
            due_in = self._due_in(conn, ordered)
            if due_in is not None and due_in <= 0:
                return
            step = min(remaining, MAX_WAIT, remaining if due_in is None else due_in)
            with contextlib.closing(conn.notifies(timeout=step)) as notes:
                if any(note.payload in queues for note in notes):
                    return

    def _listening(self) -> Connection:
        if self._listener is None or self._listener.closed:
            assert self._connect is not None
            conn = self._connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except BaseException:
                conn.close()
                raise
            self._listener = conn
        return self._listener

    def close(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            conn.close()
