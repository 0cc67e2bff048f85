"""Batch reservation and acknowledgement on every backend: the paths the worker uses in its hot
loop, where drivers take shortcuts (row mapping, remembered queues, batched statements)."""

from __future__ import annotations

import dataclasses

from taskqueue.drivers import Driver, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import JobRecord, LeaseToken
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new

FIELDS = [f.name for f in dataclasses.fields(JobRecord) if f.name != "extra"]


def test_reserved_records_equal_what_get_returns(driver: Driver) -> None:
    jobs = [new(queue_name="a", priority=9, tags=("x", "y"), batch_id="b", max_attempts=4,
                timeout_seconds=7, idempotency_key="k1", payload=bytes(range(200))),
            new(queue_name="a")]
    driver.push(jobs)
    got = driver.reserve("w1", ["a"], 10, 20)
    assert [j.id for j in got] == [j.id for j in jobs]
    for job in got:
        stored = driver.get(job.id)
        assert stored is not None
        for name in FIELDS:
            assert getattr(job, name) == getattr(stored, name), name
        assert job.state == State.PROCESSING and job.lease_owner == "w1"
        assert job.attempts == 1 and job.lease_epoch >= 1


def test_complete_many_mixes_valid_and_stale_tokens_across_queues(driver: Driver) -> None:
    a1, a2, b1, b2 = (new(queue_name=q) for q in ("a", "a", "b", "b"))
    driver.push([a1, a2, b1, b2])
    held = {j.id: j for j in driver.reserve("w", ["a", "b"], 10, 30)}
    assert set(held) == {a1.id, a2.id, b1.id, b2.id}
    items: list[tuple[LeaseToken, str | None]] = [
        (LeaseToken(a1.id, held[a1.id].lease_epoch + 1), None),
        (held[b1.id].token, "r"),
        (LeaseToken(uuid7(), 1), None),
        (held[a2.id].token, None),
        (LeaseToken(b2.id, held[b2.id].lease_epoch - 1), None),
    ]
    assert driver.complete_many(items) == [False, True, False, True, False]
    states = {i: driver.get(i).state for i in held}  # type: ignore[union-attr]
    assert states == {a1.id: State.PROCESSING, a2.id: State.COMPLETED,
                      b1.id: State.COMPLETED,
                      b2.id: State.PROCESSING}
    assert driver.complete_many([(held[a1.id].token, None), (held[b2.id].token, None)]) == [
        True, True]


def test_a_driver_that_did_not_reserve_completes(store_url: str, driver: Driver) -> None:
    jobs = [new(queue_name="a"), new(queue_name="b")]
    driver.push(jobs)
    held = driver.reserve("w", ["a", "b"], 5, 30)
    other = open_driver(store_url)
    try:
        assert other.complete_many([(j.token, None) for j in held]) == [True, True]
    finally:
        other.close()
    assert driver.complete_many([(j.token, None) for j in held]) == [False, False]


def test_complete_many_accepts_a_job_once_however_often_it_is_named(driver: Driver) -> None:
    """One completion per job is accepted: a token repeated in a batch is accepted the first
    time only (with its result), and a stale token of a job that is also completed with its
    live token in the same batch is refused."""
    a, b = new(), new()
    driver.push([a, b])
    held = {j.id: j for j in driver.reserve("w", ["default"], 10, 30)}
    ta, tb = held[a.id].token, held[b.id].token
    stale = LeaseToken(b.id, tb.epoch - 1)
    assert driver.complete_many([(ta, '"first"'), (stale, '"stale"'), (ta, '"again"'),
                                 (tb, '"b"')]) == [True, False, False, True]
    assert driver.get(a.id).result == '"first"'  # type: ignore[union-attr]
    assert driver.get(b.id).result == '"b"'  # type: ignore[union-attr]


def test_complete_and_reserve_when_a_driver_offers_it(driver: Driver) -> None:
    """The optional one-transaction verb means exactly complete_many, then reserve."""
    import pytest

    from taskqueue.drivers import CompletesAndReserves

    if not isinstance(driver, CompletesAndReserves):
        pytest.skip(f"{driver.name} does not offer complete_and_reserve (optional)")
    parent, other, later = new(queue_name="a"), new(queue_name="a"), new(queue_name="a")
    child = new(queue_name="a", dependencies=(parent.id,))
    driver.push([parent, other, child])
    held = {j.id: j for j in driver.reserve("w", ["a"], 2, 30)}
    assert set(held) == {parent.id, other.id}, "the child waits for its parent"
    driver.push([later])
    stale = LeaseToken(other.id, held[other.id].lease_epoch - 1)
    answers, batch = driver.complete_and_reserve(
        [(held[parent.id].token, '"done"'), (stale, None)], "w", ["a"], 10, 30)
    assert answers == [True, False]
    assert {j.id for j in batch} == {child.id, later.id}, "released by this very completion"
    assert all(j.state == State.PROCESSING and j.lease_owner == "w" for j in batch)
    stored = driver.get(parent.id)
    assert stored is not None and stored.state == State.COMPLETED and stored.result == '"done"'
    assert driver.complete_and_reserve([], "w", ["a"], 10, 30) == ([], [])
    answers, batch = driver.complete_and_reserve([(held[other.id].token, None)], "w", [], 10, 30)
    assert answers == [True] and batch == []


def test_warm_up_when_a_driver_offers_it(driver: Driver) -> None:
    """The optional warm-up opens and primes sessions without changing a job, however often
    it is called, and the reservation and acknowledgement that follow work on them."""
    import pytest

    from taskqueue.drivers import WarmsUp

    if not isinstance(driver, WarmsUp):
        pytest.skip(f"{driver.name} does not offer warm_up (optional)")
    jobs = [new(queue_name="a"), new(queue_name="a", priority=9)]
    driver.push(jobs)
    before = {j.id: driver.get(j.id) for j in jobs}
    driver.warm_up(2)
    driver.warm_up(2)
    assert {j.id: driver.get(j.id) for j in jobs} == before, "warming changed a job"
    held = driver.reserve("w", ["a"], 10, 30)
    assert [j.id for j in held] == [jobs[1].id, jobs[0].id]
    assert all(j.attempts == 1 and j.lease_epoch == 1 for j in held)
    assert driver.complete_many([(j.token, None) for j in held]) == [True, True]
    driver.warm_up(3)
    assert driver.complete_many([(j.token, None) for j in held]) == [False, False]
