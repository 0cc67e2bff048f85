"""A private PgBouncer in transaction-pooling mode in front of the test PostgreSQL server.

Started once per test process (on a spare port, from a config written to a temporary
directory) the first time a test asks for it, and stopped when the process exits. It installs
nothing: CI installs the ``pgbouncer`` package (see ``.ci/run``); without it the tests that
need it are skipped, or fail under ``CI=true``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

_started: tuple[subprocess.Popen[bytes], Path, int] | None = None


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(directory: Path, port: int, server: str) -> Path:
    parts = urlsplit(server)
    user = parts.username or "postgres"
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "pool_mode = transaction\nauth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
        "max_client_conn = 500\ndefault_pool_size = 20\n"
    )
    for path in (directory / "users.txt", ini):
        path.chmod(0o644)
    return ini


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(server: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    directory = Path(tempfile.mkdtemp(prefix="tq-pgbouncer-"))
    directory.chmod(0o777)  # pgbouncer refuses root, so as root it runs as nobody
    last = ""
    for _ in range(3):  # a spare port can be taken between the probe and the bind
        port = _spare_port()
        ini = _config(directory, port, server)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        proc = subprocess.Popen([binary, *user, str(ini)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _listening(port):
                return proc, directory, port
            time.sleep(0.05)
        _stop(proc)
        log = directory / "pgbouncer.log"
        last = log.read_text()[-500:] if log.exists() else (proc.stderr.read() or b"").decode()
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"pgbouncer did not start: {last}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shutdown() -> None:
    global _started
    if _started is not None:
        proc, directory, _ = _started
        _started = None
        _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def pgbouncer_port(server: str) -> int:
    """The port of this process's PgBouncer in front of ``server`` (started on first use)."""
    global _started
    if _started is None or _started[0].poll() is not None:
        if _started is None:
            atexit.register(_shutdown)
        _started = _start(server)
    return _started[2]
