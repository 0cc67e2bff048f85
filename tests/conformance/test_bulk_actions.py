"""The contract for ``apply_many``: one action on a page of jobs changes each job exactly as
the single-job verb does, from every state, and only where that verb would. Every backend
runs it unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue.drivers import Driver
from taskqueue.drivers.base import BULK_MAX, BULK_STATES
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new

ACTIONS = sorted(BULK_STATES)
REASON = "stopped by an operator"


def in_state(driver: Driver, state: State, **kw: Any) -> str:
    """A job brought to ``state`` through the verbs workers and operators use."""
    job = new(**kw)
    driver.push([job])
    if state is State.PENDING:
        return job.id
    if state is State.CANCELLED:
        assert driver.cancel(job.id, "earlier cancel")
        return job.id
    taken = driver.reserve_job("w1", job.id, 30)
    assert taken is not None
    if state is State.COMPLETED:
        assert driver.complete(taken.token, "null")
    elif state is State.RETRYING:
        assert driver.fail(taken.token, "boom", 60)
    elif state is State.FAILED:
        assert driver.fail(taken.token, "boom", None)
    return job.id


def single(driver: Driver, action: str, job_id: str) -> bool:
    """What the single-job verb does (delete spares a running job, as apply_many does)."""
    if action == "retry":
        return driver.retry(job_id)
    if action == "cancel":
        return driver.cancel(job_id, REASON)
    if action == "priority":
        return driver.set_priority(job_id, 42)
    record = driver.get(job_id)
    return record is not None and record.state is not State.PROCESSING \
        and driver.delete(job_id)


def visible(record: JobRecord | None) -> tuple[Any, ...] | None:
    """What a verb may change, times reduced to set or not."""
    if record is None:
        return None
    return (record.state, record.attempts, record.priority, record.exception,
            record.failed_at is None, record.completed_at is None, record.lease_owner,
            record.lease_epoch, record.idempotency_key is None, record.result, record.tags)


@pytest.mark.parametrize("action", ACTIONS)
def test_apply_many_matches_the_single_verb_from_every_state(driver: Driver,
                                                             action: str) -> None:
    pairs = {state: (in_state(driver, state, tags=("t",)), in_state(driver, state, tags=("t",)))
             for state in State}
    expected_changed = []
    for state, (by_one, _) in pairs.items():
        assert single(driver, action, by_one) == (state in BULK_STATES[action]), state
        if state in BULK_STATES[action]:
            expected_changed.append(pairs[state][1])
    page = [many for _, many in pairs.values()]
    changed = driver.apply_many(action, page, reason=REASON, priority=42)
    assert changed == expected_changed, "the ids changed, in the order given"
    for state, (by_one, many) in pairs.items():
        assert visible(driver.get(many)) == visible(driver.get(by_one)), (action, state)


def test_apply_many_changes_waiting_jobs_so_they_run(driver: Driver) -> None:
    failed = in_state(driver, State.FAILED)
    low, high = new(priority=1), new(priority=2)
    driver.push([low, high])
    assert driver.apply_many("retry", [failed]) == [failed]
    assert driver.apply_many("priority", [low.id], priority=900) == [low.id]
    order = [job.id for job in driver.reserve("w2", ["default"], 3, 30)]
    assert order[0] == low.id, "re-scored by its new priority"
    assert set(order) == {failed, low.id, high.id}, "the retried job is ready again"
    record = driver.get(failed)
    assert record is not None and record.attempts == 1, "attempts were reset, then reserved"


def test_apply_many_skips_unknown_ids_and_repeats(driver: Driver) -> None:
    a, b = in_state(driver, State.PENDING), in_state(driver, State.PENDING, queue_name="other")
    assert driver.apply_many("cancel", ["missing", b, a, b], reason=REASON) == [b, a]
    assert driver.apply_many("cancel", [a, b], reason=REASON) == [], "already cancelled"
    assert driver.apply_many("delete", []) == []


def test_apply_many_cancel_frees_a_finished_key_and_leaves_dependents(driver: Driver) -> None:
    parent = new(idempotency_key="k1", idempotency_mode="finished")
    child = new(dependencies=(parent.id,))
    driver.push([parent, child])
    assert driver.apply_many("cancel", [parent.id], reason=REASON) == [parent.id]
    again = new(idempotency_key="k1")
    assert driver.push([again]) == [again.id], "the key blocks no longer"
    record = driver.get(child.id)
    assert record is not None and record.state is State.PENDING, "cascades are the caller's"


def test_apply_many_delete_drops_the_jobs_edges(driver: Driver) -> None:
    parent = new()
    child = new(dependencies=(parent.id,))
    driver.push([parent, child])
    assert driver.dependents([parent.id]) == [child.id]
    assert driver.apply_many("delete", [child.id]) == [child.id]
    assert driver.dependents([parent.id]) == []
    assert driver.get(child.id) is None


def test_apply_many_refuses_what_it_cannot_do(driver: Driver) -> None:
    with pytest.raises(ValueError, match="unknown bulk action"):
        driver.apply_many("complete", ["x"])
    with pytest.raises(ValueError, match="priority"):
        driver.apply_many("priority", ["x"])
    with pytest.raises(ValueError, match="at most"):
        driver.apply_many("retry", [f"id-{i}" for i in range(BULK_MAX + 1)])
