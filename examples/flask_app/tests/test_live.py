"""The app under Flask's server and workers started by ``flask taskqueue work``: separate
processes on one SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tests.conftest import flask_taskqueue


def readme_work_command() -> list[str]:
    """The worker command exactly as the README tells people to type it (after ``taskqueue``)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("flask --app flask_shop "
                                                                  "taskqueue work")]
    words = line.split("#", 1)[0].split()
    return words[words.index("taskqueue") + 1:]


def test_orders_are_charged_by_a_worker(server: str, env: dict[str, str]) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        first = client.post("/orders", json={"id": 1, "cents": 1999})
        again = client.post("/orders", json={"id": 1, "cents": 1999})  # a double click
        other = client.post("/orders", json={"id": 2, "cents": 500})
        assert first.status_code == 202
        assert again.json()["job_id"] == first.json()["job_id"]  # idempotency key

        stats = json.loads(flask_taskqueue(env, "stats", "--json").stdout)
        assert stats["queues"]["payments"]["pending"] == 2

        summary = json.loads(flask_taskqueue(env, *readme_work_command(),
                                             "--stop-when-empty", "--json").stdout)
        assert summary["totals"]["completed"] == 2

        job = client.get(f"/jobs/{other.json()['job_id']}").json()
        assert job == {"id": other.json()["job_id"], "state": "completed",
                       "result": {"order": 2, "charged": 500, "status": "paid"}}
    assert sorted(Path(env["SHOP_LEDGER"]).read_text().splitlines()) == ["1 1999", "2 500"]
