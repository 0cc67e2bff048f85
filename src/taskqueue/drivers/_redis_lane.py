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

The lane packs a command with hiredis (when installed: the ``redis`` extra depends on it)
straight from its arguments (str, bytes, int): redis-py's packer runs its encoder over every
argument first, which for a push's sixteen arguments cost about six times the packing itself
(30 against 4.5 us, timeit on this project's loaded 2-core machine).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from redis.client import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    pack_command = None


class Lane:
    def __init__(self, client: Redis) -> None:
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
                packed = _pack(args)
                if packed is None:
                    conn.send_command(*args)
                else:
                    conn.send_packed_command(packed)
                return True, conn.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError):
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


def _pack(args: tuple[Any, ...]) -> list[bytes] | None:
    """The command as redis-py's ``send_packed_command`` takes it, or None to let redis-py
    pack it (no hiredis, or an argument hiredis does not take as redis-py would)."""
    if pack_command is None:
        return None
    try:
        return [pack_command(args)]
    except TypeError:
        return None
