"""The contract for the attempt history: every failed or lost attempt is kept (attempt, worker,
started, ended, outcome, error); a completion after failures closes it and clears the job's
``exception``; a job that never failed writes no history at all (the hot path stays as it was).
"""

from __future__ import annotations

import time

from taskqueue.drivers import Driver, JobFilter
from taskqueue.drivers._attempts import ERROR_CHARS
from taskqueue.jobs.states import State
from tests.conformance.test_driver import Q, new, reserve_one


def test_failures_then_completion_are_kept_in_order(driver: Driver) -> None:
    job = new(max_attempts=5)
    driver.push([job])
    first = reserve_one(driver, "w1")
    assert driver.fail(first.token, "ValueError: first", retry_in=0)
    second = reserve_one(driver, "w2")
    assert driver.fail(second.token, "KeyError: second", retry_in=0)
    third = reserve_one(driver, "w3")
    assert driver.complete(third.token, '"ok"')
    record = driver.get(job.id)
    assert record is not None and record.state == State.COMPLETED
    assert record.exception is None, "a completed job keeps no error of an earlier attempt"
    history = driver.attempt_history(job.id)
    assert [(a.number, a.worker, a.outcome, a.error) for a in history] == [
        (1, "w1", "retrying", "ValueError: first"),
        (2, "w2", "retrying", "KeyError: second"),
        (3, "w3", "completed", None),
    ]
    for attempt in history:
        assert attempt.started_at is not None and attempt.ended_at is not None
        assert attempt.started_at <= attempt.ended_at
    assert history[0].ended_at <= history[1].started_at  # type: ignore[operator]


def test_a_first_time_success_writes_no_history(driver: Driver) -> None:
    job = new()
    driver.push([job])
    assert driver.complete_many([(reserve_one(driver).token, None)]) == [True]
    assert driver.attempt_history(job.id) == []
    assert driver.attempt_history("no-such-job") == []


def test_completion_in_a_batch_clears_a_postponement_reason(driver: Driver) -> None:
    held, failed = new(), new()
    driver.push([held, failed])
    a, b = driver.reserve("w", Q, 2, 30)
    assert driver.release(a.token, 0, "waiting for condition 'x'")
    assert driver.fail(b.token, "ValueError: once", retry_in=0)
    again = driver.reserve("w", Q, 2, 30)
    assert driver.complete_many([(j.token, None) for j in again]) == [True, True]
    assert all(driver.get(j.id).exception is None for j in again)  # type: ignore[union-attr]
    assert [a.outcome for a in driver.attempt_history(failed.id)] == ["retrying", "completed"]
    assert driver.attempt_history(held.id) == [], "a postponement is not an attempt"
    assert driver.count(JobFilter(exception_contains="ValueError")) == 0


def test_dead_letter_and_lost_leases_are_recorded(driver: Driver) -> None:
    job = new(max_attempts=2)
    driver.push([job])
    reserve_one(driver, "zombie", lease=1)
    time.sleep(1.3)
    assert driver.recover_expired() == [job.id]
    last = reserve_one(driver, "w2")
    assert driver.fail(last.token, "x" * (ERROR_CHARS + 500) + "\nRuntimeError: end", None)
    lost, dead = driver.attempt_history(job.id)
    assert (lost.number, lost.worker, lost.outcome) == (1, "zombie", "retrying")
    assert lost.error is not None and "LeaseExpired" in lost.error
    assert (dead.number, dead.worker, dead.outcome) == (2, "w2", "failed")
    assert dead.error is not None and dead.error.endswith("RuntimeError: end")
    assert len(dead.error) <= ERROR_CHARS, "the end of a long traceback is kept"
    assert driver.get(job.id).exception.endswith("RuntimeError: end")  # type: ignore[union-attr]


def test_a_dead_workers_attempt_is_recorded(driver: Driver) -> None:
    job = new()
    driver.push([job])
    reserve_one(driver, "dead")
    assert driver.recover_worker("dead", "worker process killed by SIGKILL") == [job.id]
    (attempt,) = driver.attempt_history(job.id)
    assert (attempt.number, attempt.worker, attempt.outcome) == (1, "dead", "retrying")
    assert attempt.error == "worker process killed by SIGKILL (attempt 1 of 3)"


def test_restore_keeps_a_records_history(driver: Driver) -> None:
    from dataclasses import replace

    from taskqueue.jobs.ids import uuid7
    from taskqueue.jobs.model import ATTEMPT_HISTORY

    job = new(max_attempts=3)
    driver.push([job])
    assert driver.fail(reserve_one(driver, "w1").token, "ValueError: once", retry_in=0)
    assert driver.complete(reserve_one(driver, "w2").token)
    history = driver.attempt_history(job.id)
    record = driver.get(job.id)
    assert record is not None
    copy = replace(record, id=uuid7(), extra={ATTEMPT_HISTORY: [a.entry() for a in history]})
    plain = replace(record, id=uuid7(), extra={})
    assert driver.restore([copy, plain]) == 2
    assert driver.attempt_history(copy.id) == history
    assert driver.attempt_history(plain.id) == []
