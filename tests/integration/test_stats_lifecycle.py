"""A statistics recorder ends with its store: its last counts are written before the store
closes, whoever closes it, and nothing of it runs afterwards."""

from __future__ import annotations

import logging
import threading

import pytest

import tests.apps.sample_tasks as tasks
from taskqueue import QueueManager
from taskqueue.drivers import ReplicaReads, open_driver
from taskqueue.observability.stats import History


def _stats_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "taskqueue-stats" and t.is_alive()}


def _history(url: str, queue: str) -> dict[str, int]:
    driver = open_driver(url)
    try:
        return History.load(driver).figures(queue)["1h"]  # type: ignore[no-any-return]
    finally:
        driver.close()


def test_closing_the_driver_writes_the_last_counts_first(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A manager built on a driver its caller closes (``QueueManager(driver)``, then
    ``driver.close()``): the recorder's final flush runs before the store closes, its
    thread is stopped, and no write is tried on the closed store."""
    before = _stats_threads()
    driver = open_driver(store_url)
    manager = QueueManager(driver)
    tasks.add.push([1, 2], manager=manager, queue="closing")
    assert manager.cancel(tasks.add.push([3, 4], manager=manager, queue="closing"))
    with caplog.at_level(logging.WARNING, logger="taskqueue.stats"):
        driver.close()
        assert _stats_threads() - before == set()
        manager.stats_recorder.flush()  # after close: a no-op, not a write to a closed store
    assert [r.getMessage() for r in caplog.records if r.name == "taskqueue.stats"] == []
    hour = _history(store_url, "closing")
    assert (hour["enqueued"], hour["cancelled"]) == (2, 1)


def test_actions_on_the_primary_are_counted_once_by_one_recorder(sqlite_url: str) -> None:
    """``on_primary()`` (the dashboard's actions, with a read replica) shares its manager's
    event bus: a recorder of each copy's own counted every later event again and was never
    closed."""
    before = _stats_threads()
    manager = QueueManager(ReplicaReads(open_driver(sqlite_url), open_driver(sqlite_url)))
    jobs = [tasks.add.push([i, i], manager=manager, queue="acted") for i in range(3)]
    for job in jobs:
        assert manager.on_primary().cancel(job)
    manager.close()
    assert _stats_threads() - before == set()
    hour = _history(sqlite_url, "acted")
    assert (hour["enqueued"], hour["cancelled"]) == (3, 3)
