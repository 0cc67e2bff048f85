"""Start the example for real: ``manage.py migrate``, ``manage.py runserver`` and
``manage.py taskqueue_work``, each a separate process, on databases of the test's own."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Shop:
    """The running example: its environment, its server and its management commands."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.manage("migrate", "--verbosity", "0")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=HERE, env=env)
        _wait_for_port(self.port, self.proc)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, env=self.env,
                              capture_output=True, text=True, timeout=120, check=True)

    def manage_json(self, *args: str) -> Any:
        return json.loads(self.manage(*args, "--json").stdout)

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=15)


@contextlib.contextmanager
def running_shop(env: dict[str, str]) -> Iterator[Shop]:
    shop = Shop(env)
    try:
        yield shop
    finally:
        shop.stop()


@pytest.fixture
def sqlite_shop(tmp_path: Path) -> Iterator[Shop]:
    """Django on SQLite; jobs in a separate SQLite store, enqueued on commit."""
    env = {**os.environ, "SHOP_DATABASE": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
           "TASKQUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}"}
    with running_shop(env) as shop:
        yield shop


@pytest.fixture
def postgres_shop() -> Iterator[Shop]:
    """Django on a fresh PostgreSQL database that also holds the jobs."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        message = f"postgres server not reachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: every backend must be tested)", pytrace=False)
        pytest.skip(message)
    name = "tq_shop_" + uuid.uuid4().hex[:10]
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            env = {**os.environ, "SHOP_DATABASE": url}
            env.pop("TASKQUEUE_URL", None)
            with running_shop(env) as shop:
                yield shop
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")
