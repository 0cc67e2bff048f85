"""A stop signal reaches ``taskqueue work`` while it waits for a store it cannot reach at start.

The supervisor waits out an outage at start (``worker/outage.py``); a SIGTERM or Ctrl-C in that
wait used to be recorded and never looked at, so the command went on waiting (for ever, with a
store that never comes). No worker exists and no job was taken then: it exits 0 at once.
Ordering and exit status only; the bound is generous."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, path.read_text(errors="replace")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged within {within}s: {path.read_text()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("extra", [[], ["--stop-when-empty"]], ids=["work", "stop-when-empty"])
def test_a_stop_signal_ends_the_wait_for_an_unreachable_store(
        tmp_path: Path, signum: signal.Signals, extra: list[str]) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"   # nothing listens: DriverUnavailable
    log = tmp_path / "stderr"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "taskqueue", "--url", url, "work", *extra],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        wait_for(log, "the store is unreachable", proc)
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()
    assert "no worker was started" in log.read_text()
