"""Pausing a live worker from the dashboard (issue #16, item 12): the state lives in the store,
so two "pause" clicks leave the worker paused (not a signal toggling it back), the worker takes
no job while paused, and the audit log says what each click did."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from taskqueue import QueueManager
from taskqueue.dashboard import DashboardSettings
from tests.apps import recovery_tasks as r
from tests.dashboard.conftest import Session, client_for, login
from tests.integration.conftest import ledger_lines
from tests.integration.test_worker_processes import cli, wait_for


def test_two_pause_clicks_leave_a_real_worker_paused(sqlite_manager: QueueManager,
                                                     sqlite_url: str, tmp_path: Path,
                                                     settings: DashboardSettings) -> None:
    ledger = str(tmp_path / "ledger")
    sqlite_manager.push_many([r.quick.call([ledger], {"sleep": 0.05}) for _ in range(400)])
    client = client_for(sqlite_manager, settings)
    session = Session(client, login(client, "alice"))
    proc = cli("--url", sqlite_url, "work", "--prefetch=1", "--app", "tests.apps.recovery_tasks")
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 5, timeout=60)
        (worker,) = session.get("/api/workers").json()["workers"]
        clicks = [session.post(f"/api/workers/{worker['id']}/pause") for _ in range(2)]
        assert [c.status_code for c in clicks] == [200, 200]
        results = [c.json()["result"] for c in clicks]
        assert "paused" in results[0] and "already paused" in results[1], results

        def state() -> str:
            return str(session.get("/api/workers").json()["workers"][0]["state"])

        wait_for(lambda: state() == "paused", timeout=6)
        before = len(ledger_lines(ledger))
        time.sleep(2.0)
        assert len(ledger_lines(ledger)) == before and state() == "paused"
        entries = session.get("/api/audit?action=worker pause").json()["entries"]
        said = [e["detail"]["result"] for e in entries]
        assert len(said) == 2, said
        assert sum("already paused" in s for s in said) == 1, said
        assert "resumed" in session.post(f"/api/workers/{worker['id']}/resume").json()["result"]
        wait_for(lambda: len(ledger_lines(ledger)) > before + 5, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
