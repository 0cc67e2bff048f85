"""Fixtures for the dashboard: an app over a fresh store, clients logged in as each role, and
jobs put straight into any state (``driver.restore``) so tests need no worker."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from starlette.testclient import TestClient  # noqa: E402

from taskqueue import QueueManager  # noqa: E402
from taskqueue.dashboard import DashboardSettings, User, create_app, hash_password  # noqa: E402
from taskqueue.jobs.ids import uuid7  # noqa: E402
from taskqueue.jobs.model import JobRecord  # noqa: E402
from taskqueue.jobs.states import State  # noqa: E402

PASSWORDS = {"alice": "alice-secret-pw", "rita": "rita-secret-pw"}
TOKEN = "admin-token-0123456789abcdef"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="session")
def users() -> dict[str, User]:
    """A cheap scrypt cost keeps logins fast in tests (verification reads N from the hash)."""
    return {"alice": User("alice", hash_password(PASSWORDS["alice"], n=2**10), "admin", True),
            "rita": User("rita", hash_password(PASSWORDS["rita"], n=2**10), "read-only",
                         False)}


@pytest.fixture
def settings(users: dict[str, User]) -> DashboardSettings:
    return DashboardSettings(users=users, token=TOKEN, secret_key="test-secret",
                             live_interval=0.05)


@pytest.fixture
def manager(store_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(store_url)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def sqlite_manager(sqlite_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(sqlite_url)
    try:
        yield m
    finally:
        m.close()


def client_for(manager: QueueManager, settings: DashboardSettings,
               base_url: str = "http://127.0.0.1") -> TestClient:
    """A client for the app; it calls itself 127.0.0.1 (local mode answers only to loopback)."""
    return TestClient(create_app(manager, settings), follow_redirects=False, base_url=base_url)


def login(client: TestClient, name: str, password: str | None = None) -> str:
    """Log in through the form; return the session's CSRF token."""
    page = client.get("/login")
    token = csrf_of(page.text)
    answer = client.post("/login", data={"username": name, "csrf_token": token,
                                         "password": password or PASSWORDS[name]})
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


def csrf_of(html: str) -> str:
    marker = 'name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


class Session:
    """A logged-in client that sends its CSRF token on changes."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, json: Any = None) -> Any:
        return self.client.post(path, json=json or {}, headers={"X-CSRF-Token": self.csrf})


@pytest.fixture
def admin(manager: QueueManager, settings: DashboardSettings) -> Session:
    client = client_for(manager, settings)
    return Session(client, login(client, "alice"))


@pytest.fixture
def reader(manager: QueueManager, settings: DashboardSettings) -> Session:
    client = client_for(manager, settings)
    return Session(client, login(client, "rita"))


def put_job(manager: QueueManager, state: State = State.FAILED, *, name: str = "app.send",
            queue: str = "default", body: Any = None, exception: str | None = None,
            **fields: Any) -> JobRecord:
    """A job stored directly in ``state`` (with a real, decodable payload)."""
    job_id = uuid7()
    now = manager.driver.now()
    finished = state in (State.COMPLETED, State.FAILED, State.CANCELLED)
    record = JobRecord(
        id=job_id, queue_name=queue, name=name,
        payload=manager.codec.encode(body if body is not None else {"args": [1]},
                                     job_id=job_id, queue=queue),
        state=state, priority=5, attempts=3 if state is State.FAILED else 0, max_attempts=3,
        timeout_seconds=60, delay_seconds=0.0, available_at=now - timedelta(seconds=5),
        created_at=now - timedelta(seconds=5),
        updated_at=now, started_at=now - timedelta(seconds=2) if finished else None,
        completed_at=now if state is State.COMPLETED else None,
        failed_at=now if state in (State.FAILED, State.CANCELLED) else None,
        exception=exception if exception is not None else (
            "Traceback (most recent call last):\nValueError: boom"
            if state is State.FAILED else None))
    record = replace(record, **fields)
    assert manager.driver.restore([record]) == 1
    return record


@pytest.fixture
def users_file(tmp_path: Path, users: dict[str, User]) -> Path:
    path = tmp_path / "users.toml"
    path.write_text("".join(f'[users.{u.name}]\npassword = "{u.password_hash}"\n'
                            f'role = "{u.role}"\n\n' for u in users.values()))
    return path
