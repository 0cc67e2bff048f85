"""The dashboard's bulk path: a filter's matches are changed a page per store call, with the
single action's cascades, counts of changed and skipped jobs, progress and an audit entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from taskqueue import QueueManager
from taskqueue.dashboard import bulk
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new
from tests.dashboard.conftest import Session, put_job
from tests.dashboard.test_api import wait_operation


def test_bulk_cancel_on_a_filter_pages_and_cascades(manager: QueueManager, admin: Session,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "PAGE", 4)
    calls: list[int] = []
    apply_many = manager.driver.apply_many

    def counted(action: str, ids: Any, **kw: Any) -> list[str]:
        calls.append(len(ids))
        return apply_many(action, ids, **kw)

    monkeypatch.setattr(manager.driver, "apply_many", counted)
    parent = new(queue_name="mail")
    child = new(queue_name="other", dependencies=(parent.id,))
    manager.driver.push([parent, child])
    waiting = [put_job(manager, State.PENDING, queue="mail").id for _ in range(8)]
    done = put_job(manager, State.COMPLETED, queue="mail").id
    answer = admin.post("/api/jobs/bulk", {"action": "cancel", "reason": "mail is down",
                                           "filter": {"queue": "mail"}})
    assert answer.status_code == 202
    op = wait_operation(admin, answer.json()["operation"])
    assert (op["changed"], op["skipped"], op["error"]) == (9, 0, None)
    assert calls == [4, 4, 1], "one store call per page of matches"
    assert {manager.require(i).state for i in [*waiting, parent.id]} == {State.CANCELLED}
    assert manager.require(done).state is State.COMPLETED, "not a target: never read"
    dependent = manager.require(child.id)
    assert dependent.state is State.CANCELLED and parent.id in (dependent.exception or "")
    assert "mail is down (by alice)" in (manager.require(waiting[0]).exception or "")
    entry = admin.get("/api/audit?action=bulk cancel").json()["entries"][0]
    assert entry["count"] == 9 and entry["detail"]["skipped"] == 0


def test_bulk_selection_counts_what_moved_on(manager: QueueManager, admin: Session) -> None:
    failed = [put_job(manager, State.FAILED).id for _ in range(3)]
    running = put_job(manager, State.PROCESSING, lease_owner="w", lease_epoch=1).id
    pending = put_job(manager, State.PENDING).id
    answer = admin.post("/api/jobs/bulk", {"action": "priority", "priority": "urgent",
                                           "ids": [*failed, running, pending, failed[0]]})
    assert answer.json() == {"changed": 1, "skipped": 5, "errors": []}
    assert manager.require(pending).priority == 20
    answer = admin.post("/api/jobs/bulk", {"action": "delete", "ids": [*failed, running]})
    assert answer.json() == {"changed": 3, "skipped": 1, "errors": []}
    assert manager.get(running) is not None, "a running job is cancelled first, not deleted"


def test_a_filter_the_store_applies_is_walked_by_id_and_state_with_exact_counts(
        manager: QueueManager, admin: Session, monkeypatch: pytest.MonkeyPatch,
        backend: str) -> None:
    """Retry and re-prioritize over several pages of a filter the store applies entirely:
    the walk reads nodes (id and state; on the SQL stores never whole records) and the counts
    are exact; a time range (tested by the dashboard) still reads records and changes only
    its jobs."""
    sql = backend in ("sqlite", "postgres", "mysql")  # Redis and files read nodes as records
    monkeypatch.setattr(bulk, "PAGE", 3)
    failed = [put_job(manager, State.FAILED, queue="bulk").id for _ in range(7)]
    pending = [put_job(manager, State.PENDING, queue="bulk").id for _ in range(5)]
    other = put_job(manager, State.FAILED, queue="elsewhere").id
    done = put_job(manager, State.COMPLETED, queue="bulk").id
    reads: list[int] = []
    search = manager.driver.search

    def counted(criteria: Any) -> Any:
        found = search(criteria)
        reads.append(len(found))
        return found

    monkeypatch.setattr(manager.driver, "search", counted)
    answer = admin.post("/api/jobs/bulk", {"action": "retry", "filter": {"queue": "bulk"}})
    op = wait_operation(admin, answer.json()["operation"])
    assert (op["changed"], op["skipped"], op["scanned"], op["error"]) == (7, 0, 7, None)
    assert reads == [] or not sql, "no whole records read"
    assert {manager.require(i).state for i in failed} == {State.PENDING}
    assert manager.require(other).state is State.FAILED
    assert manager.require(done).state is State.COMPLETED
    answer = admin.post("/api/jobs/bulk", {"action": "priority", "priority": 50,
                                           "filter": {"queue": "bulk", "state": "pending"}})
    op = wait_operation(admin, answer.json()["operation"])
    assert (op["changed"], op["skipped"], op["error"]) == (12, 0, None)
    assert {manager.require(i).priority for i in [*failed, *pending]} == {50}
    assert reads == [] or not sql
    reads.clear()
    since = (manager.driver.now() + timedelta(hours=1)).isoformat()
    answer = admin.post("/api/jobs/bulk", {"action": "priority", "priority": 7,
                                           "filter": {"queue": "bulk", "since": since}})
    op = wait_operation(admin, answer.json()["operation"])
    assert (op["changed"], op["error"]) == (0, None)
    assert reads, "a time range is tested on records"
    assert {manager.require(i).priority for i in pending} == {50}
