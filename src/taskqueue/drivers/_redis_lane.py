"""A producer's own Redis connection for single pushes (private to ``redis``).

redis-py's pool costs a call more client CPU than sending and reading it: taking a
connection checks with a system call that no stray reply is pending, and every checkout and
release records pool metrics. A producer pushing one job at a time pays that per job. The lane
keeps one connection of the client's pool aside for one call at a time (a call that finds it busy,
from another thread, goes through the pool as before), and uses it only for calls whose reply it
always reads whole, so no stray reply can be pending on it. Any connection
error drops the connection (the next call makes a new one) and is raised for the caller to
retry through the pool, with the client's retry policy. A process that inherited the lane
across a fork makes its own connection instead of sharing the parent's socket.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis


class Lane:
    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def call(self, *args: Any) -> tuple[bool, Any]:
        """Send one command: ``(True, reply)`` (an error reply is raised as redis-py raises
        it), or ``(False, None)`` at once when another thread is using the lane (the caller
        goes through the pool: concurrent producers keep their own connections).
        ``redis.ConnectionError``/``TimeoutError`` when the connection failed."""
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                conn = self._conn = self._pool.make_connection()
                self._pid = os.getpid()
            try:
                conn.send_command(*args)
                return True, conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._conn = None
                conn.disconnect()
                raise
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.disconnect()
