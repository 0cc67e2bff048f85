"""A store that is up but not ready is waited for (issue #16, item 18).

Small fake servers on spare ports answer every connection the way a restarting server does:
Redis replies ``-LOADING Redis is loading the dataset in memory`` to every command, PostgreSQL
refuses the start-up with SQLSTATE 57P03 ("the database system is starting up" / "is shutting
down"). ``taskqueue work`` must keep waiting with capped backoff, logging each failure, and
``taskqueue health`` must report the store unhealthy (never a crash, never "given up").
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import cli, free_port, stop, wait_for

LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"


def _redis_commands(buffer: bytes) -> tuple[int, bytes]:
    """How many whole RESP commands ``buffer`` holds, and what is left after them."""
    count = 0
    while buffer.startswith(b"*"):
        head, sep, rest = buffer.partition(b"\r\n")
        if not sep:
            break
        for _ in range(int(head[1:])):
            size, sep, rest = rest.partition(b"\r\n")
            if not sep or len(rest) < int(size[1:]) + 2:
                return count, buffer
            rest = rest[int(size[1:]) + 2:]
        count, buffer = count + 1, rest
    return count, buffer


def _redis_loading(conn: socket.socket) -> None:
    buffer = b""
    while data := conn.recv(65536):
        count, buffer = _redis_commands(buffer + data)
        conn.sendall(LOADING * count)


def _postgres_refusing(message: bytes) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        while True:
            head = conn.recv(8)
            if len(head) < 8:
                return
            length, code = struct.unpack("!ii", head)
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: not here
                conn.sendall(b"N")
                continue
            conn.recv(max(0, length - 8))  # the rest of the StartupMessage
            fields = (b"SFATAL\0VFATAL\0C57P03\0M" + message + b"\0") + b"\0"
            conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            return
    return serve


class FakeServer:
    """Accepts connections on a spare loopback port and hands each to ``serve``."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.port = free_port()
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.closed = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.serve(conn)

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


SERVERS = {
    "redis loading": ("redis://127.0.0.1:{port}/0", _redis_loading, "loading the dataset"),
    "postgres starting up": ("postgresql://postgres@127.0.0.1:{port}/test",
                             _postgres_refusing(b"the database system is starting up"),
                             "starting up"),
    "postgres shutting down": ("postgresql://postgres@127.0.0.1:{port}/test",
                               _postgres_refusing(b"the database system is shutting down"),
                               "shutting down"),
}


@pytest.fixture(params=sorted(SERVERS))
def not_ready(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, FakeServer]]:
    template, serve, said = SERVERS[request.param]
    server = FakeServer(serve)
    try:
        yield template.format(port=server.port), said, server
    finally:
        server.close()


def test_work_waits_for_a_store_that_is_not_ready_and_health_says_so(
        not_ready: tuple[str, str, FakeServer], tmp_path: Path) -> None:
    url, said, _ = not_ready
    health = cli("--url", url, "health")
    health.communicate(timeout=60)
    assert health.returncode not in (0, None), "the store is reported unhealthy"
    log = tmp_path / "work.log"
    with open(log, "w") as sink:
        proc = cli("--url", url, "work", "--workers=2", stdout=subprocess.DEVNULL, stderr=sink)
    try:
        wait_for(lambda: log.read_text().count("the store is unreachable") >= 3, timeout=30,
                 what="three failed attempts, logged")
        assert proc.poll() is None, "taskqueue work keeps waiting for its store"
    finally:
        stop(proc, timeout=30)
    err = log.read_text()
    assert said in err, err[-2000:]
    assert "giving up" not in err and "Traceback" not in err
