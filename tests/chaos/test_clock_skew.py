"""Reliability 5 (issue #11): a worker's clock shifted by +-300 s changes nothing on the server
backends, because lease and delay arithmetic uses the store's clock.

The test process's wall clock (``time.time``) is shifted while it acts as producer, worker and
sweeper: a delayed job is not reserved early, a live lease is not recovered early by a sweeper
whose clock runs 5 minutes ahead, an expired one is recovered on time, and heartbeats extend
leases by the store's clock. (SQLite and the files backend use the host clock: one machine.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from taskqueue.drivers import Driver, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from tests.chaos.conftest import backend_url

Q = ["skew"]


@pytest.fixture(params=["postgres", "mysql", "redis"])
def server_driver(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Driver]:
    for url in backend_url(str(request.param), tmp_path):  # type: ignore[arg-type]
        driver = open_driver(url)
        try:
            yield driver
        finally:
            driver.close()


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "chaos.work", "payload": b"{}",
                                 "queue_name": "skew"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def test_skewed_worker_clocks_change_nothing(server_driver: Driver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Producer and sweeper run 5 minutes ahead, the worker 5 minutes behind."""
    real = time.time
    skew = {"now": 0.0}
    monkeypatch.setattr(time, "time", lambda: real() + skew["now"])
    ahead, behind = 300.0, -300.0
    driver = server_driver
    assert abs(driver.now().timestamp() - real()) < 5, "the store's clock is the real one"

    skew["now"] = ahead
    delayed = new(delay_seconds=1.0)
    driver.push([delayed])
    assert driver.reserve("w", Q, 5, 30) == [], "not reserved early by a clock that is ahead"
    skew["now"] = behind
    time.sleep(1.2)
    assert [j.id for j in driver.reserve("w", Q, 5, 30)] == [delayed.id], "due on time"

    live = new()
    driver.push([live])
    (held,) = driver.reserve("w", Q, 1, 1.5)
    expires = held.lease_expires_at
    assert expires is not None
    assert abs((expires - driver.now()).total_seconds() - 1.5) < 1.0, "lease in store time"
    skew["now"] = ahead
    assert live.id not in driver.recover_expired(), "a live lease is not rescued early"
    time.sleep(0.8)
    skew["now"] = behind
    assert driver.heartbeat("w", [held.token], 1.5).lost == frozenset()
    time.sleep(0.9)
    skew["now"] = ahead
    assert live.id not in driver.recover_expired(), "the heartbeat extended it in store time"
    time.sleep(1.8)
    assert live.id in driver.recover_expired(), "an expired lease is recovered on time"
    record = driver.get(live.id)
    assert record is not None and record.state == State.RETRYING
    skew["now"] = behind
    assert not driver.complete(held.token), "the old epoch cannot complete it"
