"""In-process tests with the taskqueue pytest plugin's fixtures (an SQLite store per test)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from fastapi_shop.app import create_app
from fastapi_shop.tasks import make_thumbnail, send_welcome

from taskqueue import QueueManager, WorkerSummary
from taskqueue.testing import EnqueueRecorder


def test_signup_enqueues_both_jobs(taskqueue_manager: QueueManager,
                                   taskqueue_enqueued: EnqueueRecorder) -> None:
    with TestClient(create_app(taskqueue_manager)) as client:
        response = client.post("/signup", json={"email": "bob@example.com", "user_id": 3})
    assert response.status_code == 202
    taskqueue_enqueued.assert_enqueued(send_welcome, args=["bob@example.com"], queue="emails")
    taskqueue_enqueued.assert_enqueued(make_thumbnail, args=[3], queue="images", priority=10)
    assert len(taskqueue_enqueued) == 2


def test_drain_runs_them(taskqueue_manager: QueueManager,
                         taskqueue_drain: Callable[..., WorkerSummary]) -> None:
    with TestClient(create_app(taskqueue_manager)) as client:
        jobs = client.post("/signup", json={"email": "eve@example.com", "user_id": 4}).json()
        assert taskqueue_drain().completed == 2
        state = client.get(f"/jobs/{jobs['welcome_job']}").json()
    assert state["state"] == "completed"
    assert state["result"] == "welcome mail sent to eve@example.com"


def test_inline_mode_runs_jobs_during_the_request(taskqueue_inline: QueueManager) -> None:
    with TestClient(create_app(taskqueue_inline)) as client:
        jobs = client.post("/signup", json={"email": "kim@example.com", "user_id": 5}).json()
        assert client.get(f"/jobs/{jobs['thumbnail_job']}").json()["state"] == "completed"
