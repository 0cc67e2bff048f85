from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.apps.chaos_tasks  # noqa: F401  (registers the tasks)
from taskqueue import QueueManager
from tests.backends import URLS, implemented_backends


def backend_url(name: str, tmp_path: Path) -> Iterator[str]:
    if name not in implemented_backends():
        pytest.skip(f"{name} driver not available")
    with URLS[name](tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def chaos_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store on one of the backends the chaos tests cover with processes."""
    yield from backend_url(str(request.param), tmp_path)


@pytest.fixture
def chaos_backend(chaos_url: str) -> str:
    return chaos_url.split(":", 1)[0].replace("postgresql", "postgres")


@pytest.fixture
def effects(tmp_path: Path) -> str:
    """The effect ledger: S/E lines from the tasks, A/R lines from the worker's events."""
    return str(tmp_path / "effects.log")


@pytest.fixture
def chaos_manager(chaos_url: str) -> Iterator[QueueManager]:
    manager = QueueManager.from_url(chaos_url)
    try:
        yield manager
    finally:
        manager.close()
