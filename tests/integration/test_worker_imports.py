"""What a worker process of ``taskqueue work`` has loaded when it runs a job (issue #17 goal 3:
worker RSS and start-up). Every module a worker holds was imported by the supervisor before it
forked the fork server, or by the worker itself, so this names what must stay off that path: the
command families and tools a worker never uses, the other stores' client libraries, and the
heavy standard modules a store's library does not bring. A module list, not a measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskqueue import QueueManager
from taskqueue.config import resolve
from tests.apps.module_probe import loaded_modules
from tests.backends import URLS

ROOT = Path(__file__).resolve().parents[2]

#: Never in a worker (no encryption key, no schedule, no dashboard, no --metrics-port).
EVERYWHERE = {
    "rich", "croniter", "prometheus_client", "jinja2", "starlette", "cryptography.fernet",
    "cryptography.hazmat", "taskqueue.dashboard", "taskqueue.transfer",
    "taskqueue.scheduling.scheduler", "taskqueue.scheduling.natural",
    "taskqueue.observability.metrics", "taskqueue.observability.health",
    "taskqueue.observability.alerts", "taskqueue.observability.notifiers",
    *(f"taskqueue.cli.{family}" for family in ("dashboard", "observe", "schedule", "keys",
                                               "transfer", "jobs", "admin")),
    "taskqueue.drivers.files", "taskqueue.drivers.mysql", "pymysql",
}
#: Per store: the other stores' drivers and libraries, and what only some libraries load
#: (redis-py and psycopg import asyncio, ssl and importlib.metadata themselves).
ALSO = {
    "sqlite": {"redis", "psycopg", "taskqueue.drivers.redis", "taskqueue.drivers.postgres",
               "asyncio", "ssl", "importlib.metadata", "email", "opentelemetry", "cryptography"},
    # redis-py's other clients, which only its package __init__ imports (deferred, see
    # drivers/_redis_import.py), and its cluster client, which its Script call imports
    "redis": {"psycopg", "sqlite3", "taskqueue.drivers.sqlite", "taskqueue.drivers.postgres",
              "redis.asyncio.client", "redis.asyncio.cluster", "redis.asyncio.sentinel",
              "redis.cluster", "redis.sentinel", "redis.keyspace_notifications"},
    "postgres": {"redis", "sqlite3", "taskqueue.drivers.sqlite", "taskqueue.drivers.redis"},
}


@pytest.mark.parametrize("backend", sorted(ALSO))
def test_a_worker_loads_no_module_it_does_not_use(backend: str, tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    with URLS[backend](tmp_path) as url:
        manager = QueueManager.from_settings(resolve({"url": url}))
        try:
            loaded_modules.push([str(out)], manager=manager, queue="probe")
        finally:
            manager.close()
        proc = subprocess.run(
            [sys.executable, "-m", "taskqueue", "--url", url, "work", "--queue", "probe",
             "--app", "tests.apps.module_probe", "--stop-when-empty", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    workers = [w["worker_id"].split(":")[1] for w in json.loads(proc.stdout)["workers"]]
    assert str(report["pid"]) in workers  # a worker process ran it, not the supervisor
    modules = set(report["modules"])
    assert "taskqueue.worker.runner" in modules
    unwanted = EVERYWHERE | ALSO[backend]
    assert sorted(m for m in modules if m in unwanted or m.split(".")[0] in unwanted
                  and m.split(".")[0] not in {"taskqueue", "cryptography"}) == []
