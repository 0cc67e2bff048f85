"""GET /api/tasks/metrics and the Tasks page (on SQLite)."""

from __future__ import annotations

import time

import pytest

from taskqueue import QueueManager
from taskqueue.dashboard import DashboardSettings
from taskqueue.observability.stats_rollup import HOUR_KIND
from tests.dashboard.conftest import Session, client_for, login
from tests.dashboard.test_views import stats_entry


@pytest.fixture
def session(sqlite_manager: QueueManager, settings: DashboardSettings) -> Session:
    client = client_for(sqlite_manager, settings)
    return Session(client, login(client, "alice"))


def test_task_metrics_over_the_last_hour_and_the_last_week(
        session: Session, sqlite_manager: QueueManager) -> None:
    driver = sqlite_manager.driver
    minute = int(time.time() // 60)
    driver.registry_put("stats", f"{minute}:t", stats_entry(minute, 30, 2), 3600)
    hour = int(time.time() // 3600) - 72  # three days ago: only the hour history has it
    driver.registry_put(HOUR_KIND, str(hour), {"v": 1, "hour": hour, "through": hour * 60 + 59,
                                               "queues": stats_entry(0, 100, 5)["queues"]}, 3600)
    recent = session.get("/api/tasks/metrics?range=1h").json()
    [task] = recent["tasks"]
    assert (task["name"], task["queue"], task["completed"], task["failed"]) == \
        ("app.x", "default", 30, 2)
    assert task["failure_rate"] == round(2 / 32, 4) and task["run_time"]["count"] == 30
    assert recent["step"] == 60 and len(task["series"]) == 60
    week = session.get("/api/tasks/metrics?range=7d").json()
    assert week["tasks"][0]["completed"] == 130 and week["step"] == 3600
    assert session.get("/api/tasks/metrics?range=7d&name=app.y").json()["tasks"] == []
    refused = session.get("/api/tasks/metrics?range=1y")
    assert refused.status_code == 400 and "range must be one of" in refused.json()["error"]


def test_tasks_page_is_served_and_in_the_navigation(session: Session) -> None:
    html = session.get("/tasks").text
    assert 'data-page="tasks"' in html and 'id="nav-tasks"' in html and "tasks.js" in html
