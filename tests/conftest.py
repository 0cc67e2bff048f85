from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue.drivers import Driver, open_driver
from tests.backends import URLS, implemented_backends


@pytest.fixture(params=implemented_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty store of the parametrized backend."""
    with URLS[backend](tmp_path) as url:
        yield url


@pytest.fixture
def driver(store_url: str) -> Iterator[Driver]:
    d = open_driver(store_url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"

