"""The app under uvicorn and a real worker, both separate processes, on one SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tests.conftest import run_worker


def test_signup_enqueues_and_a_worker_runs_the_jobs(server: str, env: dict[str, str]) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        response = client.post("/signup", json={"email": "ada@example.com", "user_id": 7})
        assert response.status_code == 202
        jobs = response.json()
        assert client.get(f"/jobs/{jobs['welcome_job']}").json()["state"] == "pending"

        summary = json.loads(run_worker(env).stdout)
        assert summary["totals"]["completed"] == 2

        welcome = client.get(f"/jobs/{jobs['welcome_job']}").json()
        assert welcome["state"] == "completed"
        assert welcome["result"] == "welcome mail sent to ada@example.com"
        thumb = client.get(f"/jobs/{jobs['thumbnail_job']}").json()
        assert thumb["result"] == {"user_id": 7, "size": 128}
    assert Path(env["SHOP_OUTBOX"]).read_text() == "welcome ada@example.com attempt=1\n"


def test_the_dashboard_is_mounted(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        response = client.get("/taskqueue/api/openapi.json")
        assert response.status_code == 200, response.text
        assert response.json()["openapi"].startswith("3.")
