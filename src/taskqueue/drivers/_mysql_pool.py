"""The MySQL driver's sessions: opening them, pooling them, and reading PyMySQL's errors.

PyMySQL connections are not thread-safe, so every call borrows one from a small pool. After a
lost connection every idle one is dropped too (they all point at a server that went away): the
failing call raises and the next call connects afresh.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]
from pymysql.constants import CLIENT  # type: ignore[import-untyped]

from taskqueue.errors import ConfigError, Conflict, DriverError, DriverUnavailable, TaskQueueError

Connection = Any  # pymysql.connections.Connection (PyMySQL ships no type hints)

RETRYABLE = frozenset({1205, 1213})  # lock wait timeout, deadlock: the transaction can re-run
_SERVER_GONE = frozenset({1053, 1152, 1927, 4031})  # shutdown, aborted, killed, idle timeout


class _Connection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection. Given no TLS option (the driver passes none), PyMySQL 1.2 tries TLS
    without verifying the server (its "preferred" mode: certificate not checked, a server
    without TLS accepted) and, for that, builds on every connection a default context that
    reads the system's CA store: 35-50 ms of CPU per session (on every worker's first query,
    every reconnect) for certificates it then never checks. That mode gets one context per
    process here, without the CA store; any explicit TLS option is PyMySQL's as before."""

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if isinstance(sslp, dict) and not sslp:
            return _unverified_context()
        return super()._create_ssl_ctx(sslp)


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """What PyMySQL's preferred mode uses (no hostname check, ``CERT_NONE``), minus the CAs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_connection(args: dict[str, Any]) -> Connection:
    """A new autocommit session in UTC at READ COMMITTED (``args`` are PyMySQL's), with
    multi-statements on: the driver sends a transaction's statements as one script (every
    value in it escaped by PyMySQL; see ``_mysql_batch``)."""
    conn = _Connection(charset="utf8mb4", autocommit=True, binary_prefix=True,
                           client_flag=CLIENT.MULTI_STATEMENTS,
                           write_timeout=args.get("read_timeout"), **args)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    except BaseException:
        close_quietly(conn)
        raise
    return conn


def error_code(exc: BaseException) -> int:
    """The MySQL error number of a PyMySQL error (0 when it has none)."""
    args: tuple[Any, ...] = exc.args
    return args[0] if args and isinstance(args[0], int) else 0


def error_text(exc: BaseException) -> str:
    """The server's (or client's) message of a PyMySQL error."""
    args: tuple[Any, ...] = exc.args
    return str(args[1]) if len(args) > 1 else (str(exc) or type(exc).__name__)


def is_disconnect(exc: BaseException) -> bool:
    """True when the session is gone: client-side errors (2xxx) or the server dropping us."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = error_code(exc)
    return isinstance(exc, pymysql.Error) and (2000 <= code < 3000 or code in _SERVER_GONE)


def translate(exc: BaseException, database: str, where: str) -> TaskQueueError:
    """A taskqueue error for a PyMySQL one (never containing the password)."""
    code, text = error_code(exc), error_text(exc)
    if isinstance(exc, pymysql.err.IntegrityError):
        return Conflict(f"mysql: {text}")
    if code == 1049:
        return ConfigError(
            f"MySQL database {database!r} does not exist on {where.rsplit('/', 1)[0]}; "
            f"create it first: CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    if code in (1044, 1045):
        return ConfigError(f"MySQL at {where} refused the login: {text}")
    if code in RETRYABLE:
        return DriverUnavailable(f"MySQL at {where}: lock conflict, try again ({text})")
    if is_disconnect(exc):
        return DriverUnavailable(f"MySQL at {where} is unreachable: {text}")
    return DriverError(f"MySQL error {code} at {where}: {text}")


def close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class Pool:
    """A few PyMySQL connections shared by threads; a broken one is never handed out again."""

    def __init__(self, connect: Callable[[], Connection], size: int) -> None:
        self._connect = connect
        self._size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._generation = 0  # bumped when the server went away: older connections are stale
        self._closed = False

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=30):
            raise DriverUnavailable(f"all {self._size} MySQL connections stayed busy for 30 s")
        try:
            with self._lock:
                if self._closed:
                    raise DriverUnavailable("the MySQL driver is closed")
                generation, conn = self._generation, (self._idle.pop() if self._idle else None)
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            except BaseException as exc:
                self._recycle(generation, conn, exc)
                raise
            self._give_back(generation, conn)
        finally:
            self._slots.release()

    def warm(self, count: int) -> None:
        """Have ``count`` idle connections (at most the pool's size): opening one costs a
        worker that has yet to start nothing, and one that has started tens of
        milliseconds (the handshake, the session settings) before its first reservation."""
        while True:
            with self._lock:
                if self._closed or len(self._idle) >= min(count, self._size):
                    return
                generation = self._generation
            self._give_back(generation, self._connect())

    def _give_back(self, generation: int, conn: Connection) -> None:
        with self._lock:
            if generation == self._generation and not self._closed:
                self._idle.append(conn)
                return
        close_quietly(conn)

    def _recycle(self, generation: int, conn: Connection, exc: BaseException) -> None:
        """After an error: roll back and keep a healthy connection, drop a broken one."""
        if isinstance(exc, Exception) and not is_disconnect(exc):
            try:
                conn.rollback()
            except Exception as again:  # noqa: BLE001 - any failure means the session is bad
                exc = again
            else:
                self._give_back(generation, conn)
                return
        close_quietly(conn)
        if is_disconnect(exc):
            self.invalidate()

    def invalidate(self) -> None:
        """Forget every idle connection (they all point at a server that went away)."""
        with self._lock:
            self._generation += 1
            stale, self._idle = self._idle, []
        for conn in stale:
            close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.invalidate()
