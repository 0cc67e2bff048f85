"""Transactional enqueue on SQLite (issue 19 item 11): ``manager.push(job, connection=conn)``
with the application's own ``sqlite3`` connection to the store's file writes the job in the
application's transaction, as on PostgreSQL and MySQL; it used to raise a raw TypeError."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, State
from taskqueue.errors import ConfigError
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[QueueManager, sqlite3.Connection]]:
    path = tmp_path / "app.db"
    manager = QueueManager.from_url(f"sqlite:///{path}")
    app = sqlite3.connect(path)  # the application's connection, Python's default transactions
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.commit()
    yield manager, app
    app.close()
    manager.close()


def test_job_appears_only_when_the_application_commits(
        store: tuple[QueueManager, sqlite3.Connection]) -> None:
    manager, app = store
    app.execute("INSERT INTO orders VALUES (1)")
    job = manager.push(t.add.call([2, 3], {}), connection=app)
    assert manager.get(job) is None, "not visible before the caller commits"
    assert manager.search() == [], "readers (WAL) do not wait for the open transaction"
    app.commit()
    record = manager.get(job)
    assert record is not None and record.state == State.PENDING
    drain(manager, timeout=60)
    assert manager.result(job) == 5


def test_rollback_takes_the_job_and_its_key_with_it(
        store: tuple[QueueManager, sqlite3.Connection]) -> None:
    manager, app = store
    app.execute("INSERT INTO orders VALUES (2)")
    first = manager.prepare(t.add.call([1, 1], {}))
    then = manager.prepare(t.double.s(), depends_on=[first.id], pass_result=True,
                           idempotency_key="order-2")
    parent, child = manager.push_prepared([first, then], connection=app)
    assert (parent, child) == (first.id, then.id)
    app.rollback()
    assert manager.get(parent) is None and manager.get(child) is None
    assert app.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    again = manager.push(t.add.call([1, 1], {}), idempotency_key="order-2")
    assert manager.get(again) is not None, "the rolled-back key is free again"


def test_autocommit_connection_commits_the_jobs_together(tmp_path: Path) -> None:
    path = tmp_path / "auto.db"
    with QueueManager.from_url(f"sqlite:///{path}") as manager:
        app = sqlite3.connect(path, isolation_level=None)
        try:
            ids = manager.push_many([t.add.call([i, i], {}) for i in range(3)], connection=app)
            assert [manager.get(i) is not None for i in ids] == [True] * 3
        finally:
            app.close()


def test_another_file_or_kind_of_connection_is_refused(
        store: tuple[QueueManager, sqlite3.Connection], tmp_path: Path) -> None:
    manager, _ = store
    other = sqlite3.connect(tmp_path / "other.db")
    try:
        with pytest.raises(ConfigError, match=r"connection= is open on .*other.db.*, not on "
                                              r"this store's file"):
            manager.push(t.add.call([1, 1], {}), connection=other)
    finally:
        other.close()
    with pytest.raises(ConfigError, match="must be a sqlite3.Connection"):
        manager.push(t.add.call([1, 1], {}), connection=object())
    assert manager.search() == []


def test_backends_without_transactions_say_so(tmp_path: Path) -> None:
    with QueueManager.from_url(f"file:///{tmp_path / 'files'}") as manager, \
            pytest.raises(ConfigError, match="the files backend has none"):
        manager.push(t.add.call([1, 1], {}), connection=object())
