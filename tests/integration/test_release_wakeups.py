"""A completion that releases a dependent rings the store's wake-up, as a push does, so idle
workers (of this process, of this host, or behind LISTEN on any host) take the dependent at
once instead of at their next poll. These tests watch the wake-up itself: a NOTIFY naming the
dependent's queue on PostgreSQL, the same-host doorbell on SQLite and MySQL. (Redis wakes its
``wake`` list from the completing script, files change the ready directory: the conformance
test ``test_wait_for_work_wakes_when_a_completion_releases_a_dependent`` covers all.)"""

from __future__ import annotations

import psycopg
import pytest

from taskqueue.drivers import Driver, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob


def new(queue: str = "default", **kw: object) -> NewJob:
    return NewJob(id=uuid7(), queue_name=queue, name="t", payload=b"{}", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["complete", "complete_many", "dependency_failed"])
def test_a_released_dependent_rings_the_doorbell(backend: str, driver: Driver,
                                                 how: str) -> None:
    if backend not in ("sqlite", "mysql"):
        pytest.skip("the same-host doorbell is SQLite's and MySQL's")
    doorbell = driver._doorbell  # type: ignore[attr-defined]
    doorbell.sleep(0)   # an idle worker's socket and marker exist from its first wait
    parent = new()
    child = new(dependencies=(parent.id,))
    driver.push([parent, child])
    (job,) = driver.reserve("w", ["default"], 10, 30)
    doorbell.drain()   # the push's ring
    if how == "complete":
        assert driver.complete(job.token)
    elif how == "complete_many":
        assert driver.complete_many([(job.token, None)]) == [True]
    else:   # a failed parent whose dependents run anyway
        assert driver.fail(job.token, "boom", None)
        assert driver.dependency_failed(parent.id, False, "parent failed") == [child.id]
    assert doorbell.sleep(10), "no ring for the released dependent"


def test_a_completion_without_dependents_does_not_ring(backend: str, driver: Driver) -> None:
    if backend not in ("sqlite", "mysql"):
        pytest.skip("the same-host doorbell is SQLite's and MySQL's")
    doorbell = driver._doorbell  # type: ignore[attr-defined]
    doorbell.sleep(0)
    driver.push([new()])
    (job,) = driver.reserve("w", ["default"], 10, 30)
    doorbell.drain()
    assert driver.complete(job.token)
    assert not doorbell.sleep(0.2)


@pytest.mark.parametrize("how", ["complete", "complete_and_reserve", "dependency_failed"])
def test_a_released_dependent_is_notified_on_postgres(backend: str, driver: Driver,
                                                      how: str) -> None:
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    channel = driver.channel  # type: ignore[attr-defined]
    with driver._pool.connect() as listener:  # type: ignore[attr-defined]
        listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        parent = new()
        child = new("other", dependencies=(parent.id,))
        driver.push([parent, child])
        (job,) = driver.reserve("w", ["default"], 10, 30)
        list(listener.notifies(timeout=0.5))   # the push's
        if how == "complete":
            assert driver.complete(job.token)
        elif how == "complete_and_reserve":
            answers, _ = driver.complete_and_reserve(  # type: ignore[attr-defined]
                [(job.token, None)], "w", ["default"], 10, 30)
            assert answers == [True]
        else:
            assert driver.fail(job.token, "boom", None)
            assert driver.dependency_failed(parent.id, False, "parent failed") == [child.id]
        payloads = {n.payload for n in listener.notifies(timeout=5, stop_after=1)}
    assert payloads == {"other"}, "the dependent's queue was not notified"


def test_the_last_waiter_to_close_removes_the_doorbell_directory(backend: str,
                                                                  store_url: str) -> None:
    """MySQL's doorbell directory lives in $TMPDIR, one per server and database
    (``taskqueue-mysql-…-wake``): every test database and every database a host ever served
    left one behind. The last waiter to close removes it now (SQLite's, next to the
    database file, too); while another waits it stays."""
    if backend not in ("sqlite", "mysql"):
        pytest.skip("the same-host doorbell is SQLite's and MySQL's")
    first, second = open_driver(store_url), open_driver(store_url)
    directory = first._doorbell.directory  # type: ignore[attr-defined]
    try:
        first.wait_for_work(["default"], 0.3)
        second.wait_for_work(["default"], 0.3)
        assert directory.is_dir()
        first.close()
        assert directory.is_dir(), "removed while a waiter still uses it"
        second.push([new()])   # its ring still reaches... itself, the only waiter left
        assert second._doorbell.sleep(5)  # type: ignore[attr-defined]
    finally:
        first.close()
        second.close()
    assert not directory.exists()
