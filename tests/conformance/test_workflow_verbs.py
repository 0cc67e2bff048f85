"""The contract for workflow verbs: reserve_job, replace_payload, dependency_failed, and the
idempotency modes. Every backend runs it unchanged."""

from __future__ import annotations

import time

import pytest

from taskqueue.drivers import Driver
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from tests.conformance.test_driver import Q, new, reserve_one


def state(driver: Driver, job_id: str) -> State:
    rec = driver.get(job_id)
    assert rec is not None
    return rec.state


def test_reserve_job_takes_only_that_job_when_ready(driver: Driver) -> None:
    first, wanted, later = new(priority=50), new(), new(delay_seconds=60)
    blocked = new(dependencies=(first.id,))
    driver.push([first, wanted, later, blocked])
    job = driver.reserve_job("w", wanted.id, 30)
    assert job is not None and job.id == wanted.id and job.state == State.PROCESSING
    assert job.attempts == 1 and job.lease_epoch == 1 and job.lease_owner == "w"
    assert driver.reserve_job("w", wanted.id, 30) is None, "already taken"
    assert driver.reserve_job("w", later.id, 30) is None, "not due"
    assert driver.reserve_job("w", blocked.id, 30) is None, "dependency not complete"
    assert driver.reserve_job("w", "missing", 30) is None
    assert driver.complete(job.token)
    assert state(driver, first.id) == State.PENDING


def test_replace_payload_only_while_pending(driver: Driver) -> None:
    job = new(payload=b"old")
    driver.push([job])
    assert driver.replace_payload(job.id, b"new", 0)
    rec = driver.get(job.id)
    assert rec is not None and rec.payload == b"new"
    assert driver.replace_payload(job.id, b"later", 60)
    assert driver.reserve("w", Q, 10, 30) == [], "the new delay applies"
    assert driver.replace_payload(job.id, b"now", 0)
    taken = reserve_one(driver)
    assert taken.payload == b"now"
    assert not driver.replace_payload(job.id, b"too late", 0)


def test_failed_dependency_cancels_dependents(driver: Driver) -> None:
    parent = new()
    child, other = new(dependencies=(parent.id,)), new(dependencies=(parent.id,))
    grandchild = new(dependencies=(child.id,))
    driver.push([parent, child, other, grandchild])
    job = reserve_one(driver)
    driver.fail(job.token, "boom", None)
    cancelled = driver.dependency_failed(parent.id, cancel=True,
                                         reason="dependency failed: boom")
    assert set(cancelled) == {child.id, other.id}
    rec = driver.get(child.id)
    assert rec is not None and rec.state == State.CANCELLED
    assert rec.exception == "dependency failed: boom"
    assert state(driver, grandchild.id) == State.PENDING, "the caller cascades"
    assert driver.dependency_failed(child.id, True, "upstream cancelled") == [grandchild.id]
    assert driver.reserve("w", Q, 10, 30) == []


def test_failed_dependency_can_release_dependents(driver: Driver) -> None:
    parent, sibling = new(), new()
    child = new(dependencies=(parent.id, sibling.id))
    driver.push([parent, sibling, child])
    jobs = {j.id: j for j in driver.reserve("w", Q, 2, 30)}
    driver.fail(jobs[parent.id].token, "boom", None)
    assert driver.dependency_failed(parent.id, cancel=False, reason="run anyway") == []
    assert driver.reserve("w", Q, 10, 30) == [], "still waits for the sibling"
    assert driver.retry(parent.id)
    again = reserve_one(driver)
    assert again.id == parent.id and driver.complete(again.token)
    assert driver.reserve("w", Q, 10, 30) == [], "an edge is satisfied only once"
    driver.complete(jobs[sibling.id].token)
    assert reserve_one(driver).id == child.id


def _keyed(mode: str, window: float = 0.0, **kw: object) -> NewJob:
    return new(idempotency_key=f"k-{mode}", idempotency_mode=mode, idempotency_window=window,
               **kw)


def test_idempotency_until_started(driver: Driver) -> None:
    first = _keyed("started")
    assert driver.push([first]) == [first.id]
    assert driver.push([_keyed("started")]) == [first.id]
    reserve_one(driver)
    second = _keyed("started")
    assert driver.push([second]) == [second.id], "a started job no longer blocks"


@pytest.mark.parametrize("outcome", ["complete", "fail", "cancel"])
def test_idempotency_until_finished(driver: Driver, outcome: str) -> None:
    first = _keyed("finished", max_attempts=1)
    driver.push([first])
    job = reserve_one(driver)
    assert driver.push([_keyed("finished")]) == [first.id], "running still blocks"
    if outcome == "complete":
        driver.complete(job.token)
    elif outcome == "fail":
        driver.fail(job.token, "x", None)
    else:
        driver.cancel(job.id, "stop")
    fresh = _keyed("finished")
    assert driver.push([fresh]) == [fresh.id]


def test_idempotency_retrying_job_still_blocks(driver: Driver) -> None:
    first = _keyed("finished")
    driver.push([first])
    driver.fail(reserve_one(driver).token, "x", retry_in=30)
    assert driver.push([_keyed("finished")]) == [first.id]


def test_idempotency_window_after_finishing(driver: Driver) -> None:
    first = _keyed("window", window=1.0)
    driver.push([first])
    driver.complete(reserve_one(driver).token)
    assert driver.push([_keyed("window", 1.0)]) == [first.id], "inside the window"
    time.sleep(1.3)
    fresh = _keyed("window", 1.0)
    assert driver.push([fresh]) == [fresh.id], "after the window"
    assert state(driver, first.id) == State.COMPLETED


def test_idempotency_exists_blocks_until_deleted(driver: Driver) -> None:
    first = _keyed("exists")
    driver.push([first])
    driver.complete(reserve_one(driver).token)
    assert driver.push([_keyed("exists")]) == [first.id]
    driver.delete(first.id)
    fresh = _keyed("exists")
    assert driver.push([fresh]) == [fresh.id]


def test_debounce_mode_frees_the_key_when_started(driver: Driver) -> None:
    first = _keyed("debounce")
    driver.push([first])
    assert driver.push([_keyed("debounce")]) == [first.id]
    reserve_one(driver)
    fresh = _keyed("debounce")
    assert driver.push([fresh]) == [fresh.id]


def test_complete_many_applies_each_jobs_idempotency_mode(driver: Driver) -> None:
    finished = new(idempotency_key="b-finished", idempotency_mode="finished")
    window = new(idempotency_key="b-window", idempotency_mode="window", idempotency_window=30)
    exists = new(idempotency_key="b-exists", idempotency_mode="exists")
    started = new(idempotency_key="b-started", idempotency_mode="started")
    plain = new()
    driver.push([finished, window, exists, started, plain])
    held = {j.id: j for j in driver.reserve("w", Q, 10, 30)}
    assert len(held) == 5
    assert held[started.id].idempotency_key is None, "released when reserved"
    assert held[finished.id].idempotency_key == "b-finished", "still held while running"
    assert driver.complete_many([(held[j.id].token, f'"{j.id}"') for j in
                                 (finished, window, exists, started, plain)]) == [True] * 5
    again = {mode: new(idempotency_key=f"b-{mode}", idempotency_mode=mode)
             for mode in ("finished", "window", "exists", "started")}
    assert driver.push([again["finished"]]) == [again["finished"].id], "released on finish"
    assert driver.push([again["window"]]) == [window.id], "blocked inside the window"
    assert driver.push([again["exists"]]) == [exists.id], "blocked while the job exists"
    assert driver.push([again["started"]]) == [again["started"].id]
    for job in (finished, window, exists, started, plain):
        rec = driver.get(job.id)
        assert rec is not None and rec.state == State.COMPLETED and rec.result == f'"{job.id}"'


def test_dependents_come_from_the_edge_index_whatever_their_state(driver: Driver) -> None:
    """``dependents`` lists every job depending on the given ones, before and after the edges
    are met (completed, failed and released parents alike), across queues, each once, and
    forgets a deleted child."""
    parent, other = new(), new(queue_name="elsewhere")
    child = new(dependencies=(parent.id,))
    both = new(queue_name="elsewhere", dependencies=(parent.id, other.id))
    grandchild = new(dependencies=(child.id,))
    late = new(dependencies=(parent.id,))
    driver.push([parent, other, child, both, grandchild])
    assert driver.dependents([parent.id]) == sorted([child.id, both.id])
    assert driver.dependents([parent.id, other.id, child.id]) == sorted(
        [child.id, both.id, grandchild.id])
    assert driver.dependents([grandchild.id]) == []
    assert driver.dependents(["no-such-job"]) == []
    assert driver.dependents([]) == []
    job = reserve_one(driver)
    assert job.id == parent.id and driver.complete(job.token)
    driver.push([late])  # pushed after its parent completed: met from the start
    assert driver.dependents([parent.id]) == sorted([child.id, both.id, late.id])
    assert driver.delete(late.id)
    assert driver.dependents([parent.id]) == sorted([child.id, both.id])
    mid = reserve_one(driver)
    assert mid.id == child.id
    driver.fail(mid.token, "boom", None)
    assert driver.dependency_failed(child.id, cancel=False, reason="run anyway") == [
        grandchild.id]
    assert driver.dependents([child.id]) == [grandchild.id]
