"""``taskqueue stats --tasks``: per-task figures from the statistics the worker stored."""

from __future__ import annotations

import json

from tests.cli.test_cli import invoke, run


def test_stats_tasks_after_a_worker_ran(sqlite_url: str) -> None:
    assert run(sqlite_url, "test", "--jobs=30").returncode == 0
    assert run(sqlite_url, "work", "--stop-when-empty").returncode == 0  # flushes at its stop
    data = json.loads(invoke(sqlite_url, "stats", "--tasks", "--range", "1h", "--json").output)
    assert data["range"] == "1h" and data["step"] == 60
    [task] = data["tasks"]
    assert (task["queue"], task["completed"], task["failed"]) == ("default", 30, 0)
    assert task["run_time"]["count"] == 30 and task["run_time"]["p95"] is not None
    assert sum(point["completed"] for point in task["series"]) == 30
    table = invoke(sqlite_url, "stats", "--tasks").output
    assert "tasks over the last 24h" in table and task["name"] in table
    assert invoke(sqlite_url, "stats", "--tasks", "--range", "2w").exit_code == 2
