"""The contract for ``recover_worker``: a supervisor saw a worker process die and releases the
jobs it held at once, with the cause, without waiting for their leases. Every backend runs it
unchanged."""

from __future__ import annotations

from taskqueue.drivers import Driver
from taskqueue.jobs.states import State
from tests.conformance.test_driver import Q, new, reserve_one


def test_a_dead_workers_jobs_are_recovered_at_once_with_the_cause(driver: Driver) -> None:
    again, spent, other, done = new(max_attempts=3), new(max_attempts=1), new(), new()
    driver.push([again, spent, other, done])
    held = driver.reserve("dead", Q, 2, 300)  # long leases: nothing has expired
    assert {j.id for j in held} == {again.id, spent.id}
    theirs = reserve_one(driver, "alive")
    finished = reserve_one(driver, "dead")
    assert driver.complete(finished.token)

    moved = driver.recover_worker("dead", "worker process killed by SIGKILL")

    assert sorted(moved) == sorted([again.id, spent.id])
    retry = driver.get(again.id)
    assert retry is not None and retry.state == State.RETRYING and retry.attempts == 1
    assert retry.exception == "worker process killed by SIGKILL (attempt 1 of 3)"
    assert retry.lease_owner is None
    dead = driver.get(spent.id)
    assert dead is not None and dead.state == State.FAILED and dead.failed_at is not None
    assert dead.exception == "worker process killed by SIGKILL (attempt 1 of 1)"
    alive = driver.get(theirs.id)
    assert alive is not None and alive.state == State.PROCESSING, "another worker's job"
    assert alive.lease_owner == "alive"
    completed = driver.get(finished.id)
    assert completed is not None and completed.state == State.COMPLETED
    assert driver.recover_worker("dead", "again") == [], "nothing is moved twice"
    assert driver.recover_worker("nobody", "x") == []


def test_a_recovered_job_runs_again_and_the_dead_token_is_fenced(driver: Driver) -> None:
    driver.push([new(max_attempts=3)])
    lost = reserve_one(driver, "dead", lease=300)
    assert driver.recover_worker("dead", "worker process exited with code 3") == [lost.id]
    fresh = reserve_one(driver, "next")
    assert fresh.id == lost.id and fresh.attempts == 2
    assert fresh.lease_epoch == lost.lease_epoch + 1
    assert driver.recover_worker("dead", "late") == [], "the new owner's job is not touched"
    assert not driver.complete(lost.token), "the dead worker's epoch is stale"
    assert driver.complete(fresh.token)


def test_recovering_a_worker_leaves_expired_leases_of_others_to_the_sweep(driver: Driver) -> None:
    driver.push([new(), new()])
    mine = reserve_one(driver, "dead", lease=300)
    other = reserve_one(driver, "other", lease=300)
    assert driver.recover_worker("dead", "gone") == [mine.id]
    assert driver.recover_expired() == [], "live leases of other workers are not expired"
    rec = driver.get(other.id)
    assert rec is not None and rec.state == State.PROCESSING


def test_jobs_the_dead_worker_never_started_go_back_unrun(driver: Driver) -> None:
    running, buffered, other = new(max_attempts=1), new(max_attempts=1), new()
    driver.push([running, buffered, other])
    held = driver.reserve("dead", Q, 2, 300)
    assert {j.id for j in held} == {running.id, buffered.id}
    theirs = reserve_one(driver, "alive")

    moved = driver.recover_worker("dead", "worker process exited with code 3", {running.id})

    assert sorted(moved) == sorted([running.id, buffered.id])
    ran = driver.get(running.id)
    assert ran is not None and ran.state == State.FAILED
    assert ran.exception == "worker process exited with code 3 (attempt 1 of 1)"
    back = driver.get(buffered.id)
    assert back is not None and back.state == State.PENDING and back.attempts == 0
    assert back.lease_owner is None and back.exception is None, "it did not fail"
    again = reserve_one(driver, "next")
    assert again.id == buffered.id and again.attempts == 1
    assert again.lease_epoch == 2, "a new epoch fences the dead worker's token"
    assert not driver.complete(held[0].token) and not driver.complete(held[1].token)
    rec = driver.get(theirs.id)
    assert rec is not None and rec.state == State.PROCESSING
    assert driver.recover_worker("dead", "x", set()) == []
