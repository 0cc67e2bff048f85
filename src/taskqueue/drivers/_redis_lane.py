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

It also sends and reads on the connection's socket itself, with a hiredis reader of its own:
redis-py's send and read layers (health-check clock, error wrapping, its parser's buffer
handling) cost ~18,700 instructions per call against ~7,900 for the socket calls and the
reader (callgrind, PING). The connection is still made by redis-py (TLS, AUTH, SELECT, client
name); the lane skips only redis-py's idle health check, so a connection the server dropped
shows as an error on the next call, which drops it as above. Error replies are raised as
redis-py raises them (its parser's mapping: ``NoScriptError`` for NOSCRIPT, ...). Without
hiredis, or with a redis-py whose connection has no ``_sock``, the lane uses redis-py's send
and read as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from redis.client import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

pack_command: Callable[[tuple[Any, ...]], bytes] | None
make_reader: Callable[[], Any] | None
try:
    from hiredis import Reader, pack_command
    from redis._parsers.base import BaseParser

    def make_reader() -> Any:
        """A hiredis reader that turns error replies into redis-py's exceptions."""
        return Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
except ImportError:  # pragma: no cover - the redis extra installs hiredis (redis-py >= 5)
    pack_command = make_reader = None

#: Bytes read from the socket at a time.
_CHUNK = 65536


class Lane:
    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0
        self._sock: Any = None     # the connection's socket, when the lane talks on it itself
        self._reader: Any = None
        self._buffer = bytearray(_CHUNK)

    def call(self, *args: Any) -> tuple[bool, Any]:
        """Send one command: ``(True, reply)`` (an error reply is raised as redis-py raises
        it), or ``(False, None)`` at once when another thread is using the lane (the caller
        goes through the pool: concurrent producers keep their own connections).
        ``redis.ConnectionError``/``TimeoutError`` (or an ``OSError``) when the connection
        failed."""
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                conn = self._connect()
            try:
                packed = _pack(args)
                if packed is not None and self._sock is not None:
                    return True, self._exchange(packed)
                if packed is None:
                    conn.send_command(*args)
                else:
                    conn.send_packed_command([packed])
                return True, conn.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self._conn = self._sock = self._reader = None
                conn.disconnect()
                raise
        finally:
            self._lock.release()

    def _connect(self) -> Any:
        """A new connection of the pool's kind, connected (handshake by redis-py)."""
        self._conn = self._sock = self._reader = None
        conn = self._pool.make_connection()
        self._pid = os.getpid()
        conn.connect()  # type: ignore[no-untyped-call]
        self._conn = conn
        sock = getattr(conn, "_sock", None)
        if sock is not None and make_reader is not None:
            self._sock, self._reader = sock, make_reader()
        return conn

    def _exchange(self, packed: bytes) -> Any:
        """Send a packed command and read its whole reply on the socket."""
        sock, reader, buffer = self._sock, self._reader, self._buffer
        sock.sendall(packed)
        reply = reader.gets()
        while reply is False:
            count = sock.recv_into(buffer)
            if not count:
                raise RedisConnectionError("Connection closed by server.")
            reader.feed(buffer, 0, count)
            reply = reader.gets()
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def close(self) -> None:
        with self._lock:
            conn, self._conn, self._sock, self._reader = self._conn, None, None, None
        if conn is not None and self._pid == os.getpid():
            conn.disconnect()


def _pack(args: tuple[Any, ...]) -> bytes | None:
    """The command packed by hiredis, or None to let redis-py pack it (no hiredis, or an
    argument hiredis does not take as redis-py would)."""
    if pack_command is None:
        return None
    try:
        return pack_command(args)
    except TypeError:
        return None
