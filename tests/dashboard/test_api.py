"""The JSON API on every backend: search, detail, single and bulk actions, queues, audit."""

from __future__ import annotations

import time
from typing import Any

from taskqueue import QueueManager
from taskqueue.jobs.states import State
from tests.dashboard.conftest import XSS, Session, put_job


def wait_operation(session: Session, op: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not op["done"]:
        assert time.monotonic() < deadline, op
        time.sleep(0.05)
        op = session.get(f"/api/operations/{op['id']}").json()
    return op


def test_search_filters_count_and_pages(manager: QueueManager, admin: Session) -> None:
    failed = [put_job(manager, State.FAILED, queue="emails", name="app.mail").id
              for _ in range(5)]
    put_job(manager, State.COMPLETED, queue="emails", name="app.mail")
    put_job(manager, State.FAILED, queue="reports", name="app.report",
            exception="Traceback\nKeyError: needle-in-haystack")
    put_job(manager, State.PENDING, queue="emails", name="app.mail", tags=("vip",))

    data = admin.get("/api/jobs?state=failed&queue=emails").json()
    assert [j["id"] for j in data["jobs"]] == failed[::-1]
    assert data["jobs"][0]["error"] == "ValueError: boom"
    assert admin.get("/api/jobs/count?state=failed&queue=emails").json() == {
        "count": 5, "exact": True, "estimate": False, "at_most": False}
    assert [j["name"] for j in admin.get("/api/jobs?error=needle").json()["jobs"]] == [
        "app.report"]
    assert len(admin.get("/api/jobs?tag=vip").json()["jobs"]) == 1
    assert len(admin.get("/api/jobs?name=app.report,app.mail").json()["jobs"]) == 8
    assert admin.get(f"/api/jobs?id={failed[2]}").json()["jobs"][0]["id"] == failed[2]

    pages, cursor = [], ""
    while True:
        page = admin.get(f"/api/jobs?state=failed&queue=emails&limit=2&cursor={cursor}"
                         if cursor else "/api/jobs?state=failed&queue=emails&limit=2").json()
        pages.append([j["id"] for j in page["jobs"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [failed[4:2:-1], failed[2:0:-1], failed[:1]]
    assert admin.get("/api/jobs?state=nope").status_code == 400


def test_argument_filter_through_the_api(manager: QueueManager, admin: Session) -> None:
    wanted = put_job(manager, body={"args": [], "kwargs": {"user_id": 42}})
    put_job(manager, body={"args": [], "kwargs": {"user_id": 7}})
    data = admin.get("/api/jobs?args=args.user_id:42").json()
    assert [j["id"] for j in data["jobs"]] == [wanted.id]
    assert data["decoded"] == 2 and data["partial"] is False
    assert admin.get("/api/jobs/count?args=args.user_id:42").json()["exact"] is False


def test_job_detail_is_raw_data_for_the_page_to_escape(manager: QueueManager,
                                                       admin: Session) -> None:
    job = put_job(manager, name=XSS, exception=f"Traceback\nValueError: {XSS}",
                  body={"args": [XSS]})
    data = admin.get(f"/api/jobs/{job.id}").json()
    assert data["job"]["name"] == XSS and data["job"]["exception"].endswith(XSS)
    assert data["payload"] == {"args": [XSS]}
    assert data["actions"] == ["retry", "delete"]
    assert [e["what"] for e in data["timeline"]][0] == "created"
    assert admin.get("/api/jobs/0000").status_code == 404


def test_single_actions_follow_the_state_machine(manager: QueueManager, admin: Session) -> None:
    failed = put_job(manager, State.FAILED)
    pending = put_job(manager, State.PENDING)
    done = put_job(manager, State.COMPLETED)

    assert admin.post(f"/api/jobs/{failed.id}/retry").json()["job"]["state"] == "pending"
    cancel = admin.post(f"/api/jobs/{pending.id}/cancel", {"reason": "not needed"}).json()
    assert cancel["changed"] is True
    assert "not needed (by alice)" in (manager.require(pending.id).exception or "")
    assert admin.post(f"/api/jobs/{failed.id}/priority", {"priority": "high"}).json()[
        "job"]["priority"] == 10
    assert admin.post(f"/api/jobs/{failed.id}/priority", {"priority": 5000}).status_code == 400
    refused = admin.post(f"/api/jobs/{done.id}/retry")
    assert refused.status_code == 409 and "completed" in refused.json()["error"]
    assert admin.post(f"/api/jobs/{done.id}/delete").json()["changed"] is True
    assert manager.get(done.id) is None
    assert admin.post(f"/api/jobs/{failed.id}/explode").status_code == 404

    actions = {(e["action"], e["target"]) for e in admin.get("/api/audit").json()["entries"]}
    assert {("retry", failed.id), ("cancel", pending.id), ("priority", failed.id),
            ("delete", done.id)} <= actions


def test_bulk_on_a_selection(manager: QueueManager, admin: Session) -> None:
    failed = [put_job(manager, State.FAILED).id for _ in range(3)]
    completed = put_job(manager, State.COMPLETED).id
    answer = admin.post("/api/jobs/bulk", {"action": "retry",
                                           "ids": [*failed, completed, "missing-id"]})
    assert answer.json() == {"changed": 3, "skipped": 2, "errors": []}
    assert {manager.require(i).state for i in failed} == {State.PENDING}
    entry = admin.get("/api/audit?action=bulk retry").json()["entries"][0]
    assert entry["actor"] == "alice" and entry["count"] == 3
    assert admin.post("/api/jobs/bulk", {"action": "retry"}).status_code == 400
    assert admin.post("/api/jobs/bulk", {"action": "fly", "ids": []}).status_code == 400


def test_bulk_on_everything_matching_a_filter(manager: QueueManager, admin: Session) -> None:
    targets = [put_job(manager, State.FAILED, queue="emails").id for _ in range(7)]
    other = put_job(manager, State.FAILED, queue="reports").id
    pending = put_job(manager, State.PENDING, queue="emails").id
    answer = admin.post("/api/jobs/bulk", {"action": "retry", "filter": {"queue": "emails"}})
    assert answer.status_code == 202
    op = wait_operation(admin, answer.json()["operation"])
    assert op["changed"] == 7 and op["error"] is None
    assert {manager.require(i).state for i in targets} == {State.PENDING}
    assert manager.require(other).state == State.FAILED
    assert manager.require(pending).state == State.PENDING  # not scanned: cannot be retried
    cancel = admin.post("/api/jobs/bulk", {"action": "cancel",
                                           "filter": {"queue": "emails", "state": "pending"}})
    assert wait_operation(admin, cancel.json()["operation"])["changed"] == 8
    entries = admin.get("/api/audit?action=bulk cancel").json()["entries"]
    assert entries[0]["count"] == 8 and "queue=emails" in entries[0]["target"]


def test_queue_pause_resume_limits_and_purge(manager: QueueManager, admin: Session) -> None:
    for _ in range(3):
        put_job(manager, State.PENDING, queue="emails")
    kept = put_job(manager, State.FAILED, queue="emails").id
    assert admin.post("/api/queues/emails/pause").json()["paused"] is True
    assert manager.paused_queues() == ["emails"]
    queues = {q["name"]: q for q in admin.get("/api/queues").json()["queues"]}
    assert queues["emails"]["paused"] and queues["emails"]["pending"] == 3
    assert admin.post("/api/queues/emails/resume").json()["paused"] is False
    limits = admin.post("/api/queues/emails/limits", {"rate": "100/m", "concurrency": "4"})
    assert limits.json()["limits"]["concurrency"] == 4
    assert admin.post("/api/queues/emails/limits", {"rate": "lots"}).status_code == 400
    assert admin.post("/api/queues/emails/purge", {}).status_code == 400  # needs confirm
    purge = admin.post("/api/queues/emails/purge", {"confirm": "emails"})
    assert wait_operation(admin, purge.json()["operation"])["changed"] == 3
    assert admin.get("/api/jobs/count?queue=emails").json()["count"] == 1
    assert manager.get(kept) is not None
    actions = [e["action"] for e in admin.get("/api/audit").json()["entries"]]
    assert {"queue pause", "queue resume", "queue limits", "queue purge"} <= set(actions)


def test_job_detail_shows_each_attempt_and_error_search_skips_finished_jobs(
        manager: QueueManager, admin: Session) -> None:
    driver = manager.driver
    flaky = put_job(manager, State.PENDING, name="app.flaky")
    held = put_job(manager, State.PENDING, name="app.held", queue="other")
    (first,) = driver.reserve("worker-a", [flaky.queue_name], 1, 30)
    driver.fail(first.token, "Traceback\nValueError: needle once", retry_in=0)
    (second,) = driver.reserve("worker-b", [flaky.queue_name], 1, 30)
    assert second.id == flaky.id and driver.complete(second.token)
    (postponed,) = driver.reserve("worker-b", [held.queue_name], 1, 30)
    driver.release(postponed.token, 60, "waiting for condition 'needle'")
    stuck = put_job(manager, State.FAILED, exception="Traceback\nKeyError: needle for good")

    data = admin.get(f"/api/jobs/{flaky.id}").json()
    assert data["job"]["exception"] is None
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in data["attempts"]] == [
        (1, "worker-a", "retrying"), (2, "worker-b", "completed")]
    assert data["attempts"][0]["error"].endswith("ValueError: needle once")
    assert data["attempts"][0]["started_at"] <= data["attempts"][0]["ended_at"]
    # an error search looks at failed and retrying jobs unless the states are given
    assert [j["id"] for j in admin.get("/api/jobs?error=needle").json()["jobs"]] == [stuck.id]
    assert [j["id"] for j in admin.get("/api/jobs?q=needle").json()["jobs"]] == [stuck.id]
    assert [j["id"] for j in admin.get("/api/jobs?error=needle&state=pending").json()[
        "jobs"]] == [held.id]
