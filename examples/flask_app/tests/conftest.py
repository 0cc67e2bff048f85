"""Start the example for real: the Flask server process and ``taskqueue work`` processes, on a
store of the test's own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The example's environment: its own SQLite store and outbox."""
    return {**os.environ, "TASKQUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
            "SHOP_LEDGER": str(tmp_path / "ledger.log"), "PYTHONPATH": str(HERE)}


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    """``flask --app flask_shop run`` on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "flask_shop", "run",
                             "--port", str(port)], cwd=HERE, env=env)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def flask_taskqueue(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app flask_shop taskqueue ARGS``: the taskqueue CLI with the app's settings."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "flask_shop", "taskqueue",
                           *args], cwd=HERE, env=env, capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.fixture(autouse=True)
def _outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs run in the test process write their ledger lines into the test's own folder."""
    monkeypatch.setenv("SHOP_LEDGER", str(tmp_path / "ledger.log"))
