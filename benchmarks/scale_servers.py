"""Store servers of our own for ``python -m benchmarks scale``: a PostgreSQL cluster (initdb +
pg_ctl in a temporary directory) and a redis-server, each on a spare port, so that their CPU
time and memory are the benchmark's alone (the shared servers serve other engineers' tests).
SQLite needs none: a temporary file."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    backend: str
    url: str
    pid: int | None  # the server's main process (postmaster, redis-server); None: SQLite
    path: str = ""   # SQLite: the database file


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds}s")


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(
        f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"{name} not found (PostgreSQL server binaries)")
    return found


@contextlib.contextmanager
def postgres() -> Iterator[Server]:
    """A fresh cluster with default settings (autovacuum on), as root run as user postgres."""
    tmp = Path(tempfile.mkdtemp(prefix="tq-scale-pg-"))
    data = tmp / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = spare_port()
    ctl = _pg_bin("pg_ctl")
    started = False
    try:
        subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                        "-A", "trust", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_user, ctl, "-D", str(data), "-l", str(tmp / "log"), "-w", "-o",
                        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        started = True
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield Server("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres", pid)
    finally:
        if started:
            subprocess.run([*as_user, ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _die_with_parent() -> None:
    """In a server's process before exec: on Linux, be killed when the benchmark process
    dies, even by SIGKILL (its clean-up does not run then); elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def redis() -> Iterator[Server]:
    """A redis-server without persistence (memory is what is measured; the driver warns)."""
    tmp = tempfile.mkdtemp(prefix="tq-scale-redis-")
    port = spare_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    try:
        _wait_port(port, proc)
        yield Server("redis", f"redis://127.0.0.1:{port}/0?prefix=scale", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def sqlite() -> Iterator[Server]:
    tmp = tempfile.mkdtemp(prefix="tq-scale-sqlite-")
    path = os.path.join(tmp, "queue.db")
    try:
        yield Server("sqlite", f"sqlite:///{path}", None, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SERVERS = {"sqlite": sqlite, "postgres": postgres, "redis": redis}


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a server: its main process, its live children and the
    children it has reaped (PostgreSQL backends that exited)."""
    if pid is None:
        return 0.0
    import psutil

    main = psutil.Process(pid)
    t = main.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in main.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return total
