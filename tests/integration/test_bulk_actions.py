"""``QueueManager.apply_many`` (the dashboard's bulk path) has the effects of the single-job
actions on every backend: the same end state for the jobs and their dependents, the same
events, the same batch bookkeeping."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskqueue import QueueManager
from taskqueue.drivers import JobFilter
from taskqueue.jobs.definition import Call
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from taskqueue.observability.events import JOB_CANCELLED, Event
from tests.backends import URLS
from tests.conformance.test_driver import new


@pytest.fixture
def two(backend: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[QueueManager, QueueManager]]:
    """Two empty stores of the backend: one acted on job by job, the other in bulk."""
    with URLS[backend](tmp_path_factory.mktemp("one")) as one, \
            URLS[backend](tmp_path_factory.mktemp("many")) as many:
        managers = (QueueManager.from_url(one), QueueManager.from_url(many))
        try:
            yield managers
        finally:
            for m in managers:
                m.close()


def world(m: QueueManager) -> dict[str, str]:
    """Role -> job id: a chain parent -> child -> grandchild, two batch members, a lone
    pending job, a failed one and a running one."""
    parent = new()
    child = new(dependencies=(parent.id,))
    grandchild = new(dependencies=(child.id,))
    lone, failed, running = new(), new(queue_name="other"), new(queue_name="busy")
    m.driver.push([parent, child, grandchild, lone, failed, running])
    taken = m.driver.reserve_job("w", failed.id, 30)
    assert taken is not None and m.driver.fail(taken.token, "boom", None)
    assert m.driver.reserve_job("w", running.id, 30) is not None
    batch = m.batch([Call("tests.noop", {"args": [i]}, {}) for i in range(2)], name="b")
    first, second = sorted(r.id for r in m.search(JobFilter(batch_id=batch)))
    return {"parent": parent.id, "child": child.id, "grandchild": grandchild.id,
            "lone": lone.id, "failed": failed.id, "running": running.id,
            "member1": first, "member2": second, "batch": batch}


def seen(m: QueueManager, roles: dict[str, str]) -> dict[str, Any]:
    """Each job's state and exception, ids replaced by roles (reasons name parents)."""
    names = {job_id: role for role, job_id in roles.items()}

    def plain(text: str | None) -> str | None:
        return None if text is None else re.sub(
            r"[0-9a-f]{8}-[0-9a-f-]{27}", lambda x: names.get(x.group(0), "?"), text)

    out: dict[str, Any] = {}
    for role, job_id in roles.items():
        record = m.driver.get(job_id) if role != "batch" else None
        out[role] = record and (record.state, plain(record.exception), record.priority)
    out["finished"] = m.driver.counter_incr(f"batch:{roles['batch']}:finished", 0, 3600)
    return out


def events_of(m: QueueManager) -> list[Event]:
    got: list[Event] = []
    m.events.subscribe(got.append, JOB_CANCELLED)
    return got


ACTIONS: dict[str, tuple[Callable[[QueueManager, str], Any], dict[str, Any]]] = {
    "cancel": (lambda m, i: m.cancel(i, "stop", by="ops"), {"reason": "stop", "by": "ops"}),
    "retry": (lambda m, i: m.retry(i), {}),
    "priority": (lambda m, i: m.set_priority(i, "high"), {"priority": "high"}),
    "delete": (lambda m, i: m.get(i) is not None and m.get(i).state is not State.PROCESSING
               and m.delete(i), {}),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_apply_many_has_the_single_actions_effects(two: tuple[QueueManager, QueueManager],
                                                   action: str) -> None:
    one, many = two
    roles_one, roles_many = world(one), world(many)
    targets = ("parent", "lone", "failed", "running", "member1", "member2")
    events_one, events_many = events_of(one), events_of(many)
    single, options = ACTIONS[action]
    changed_one = [r for r in targets if single(one, roles_one[r])]
    changed = many.apply_many(action, [roles_many[r] for r in targets] + [uuid7()], **options)
    names = {job_id: role for role, job_id in roles_many.items()}
    assert [names[i] for i in changed] == changed_one
    assert seen(many, roles_many) == seen(one, roles_one)
    by_role_one = {job_id: role for role, job_id in roles_one.items()}
    assert sorted(names[e.job_id] for e in events_many if e.job_id) == \
        sorted(by_role_one[e.job_id] for e in events_one if e.job_id)
    if action == "cancel":
        assert seen(many, roles_many)["grandchild"][0] is State.CANCELLED, "cascaded"
        assert len(events_many) == 7, "5 cancelled, and the child and grandchild with them"


def test_apply_many_pages_past_the_drivers_limit(sqlite_url: str) -> None:
    m = QueueManager.from_url(sqlite_url)
    try:
        jobs = [NewJob(id=uuid7(), name="tests.noop", payload=b"{}") for _ in range(5100)]
        m.driver.push(jobs)
        changed = m.apply_many("priority", [j.id for j in jobs], priority=700)
        assert changed == [j.id for j in jobs]
        assert {m.require(jobs[i].id).priority for i in (0, 4999, 5000, 5099)} == {700}
    finally:
        m.close()
