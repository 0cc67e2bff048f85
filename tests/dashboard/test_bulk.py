"""The dashboard's bulk path: a filter's matches are changed a page per store call, with the
single action's cascades, counts of changed and skipped jobs, progress and an audit entry."""

from __future__ import annotations

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
