"""Read-only commands never migrate, and can read from a replica (issue #20).

The "replica" is a PostgreSQL role that may only SELECT and whose transactions are read-only
(``default_transaction_read_only``), so any write fails exactly as on a hot standby: "cannot
execute CREATE TABLE in a read-only transaction".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from taskqueue import QueueManager
from taskqueue.config import resolve
from taskqueue.drivers import open_driver
from tests.apps import sample_tasks as t
from tests.backends import PG_ADMIN, postgres_url
from tests.raw_store import redis_keys
from tests.raw_store import sql as raw_sql

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, url: str, read_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TASKQUEUE_READ_URL"}
    env["TASKQUEUE_URL"] = url
    if read_url is not None:
        env["TASKQUEUE_READ_URL"] = read_url
    return subprocess.run([sys.executable, "-m", "taskqueue", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(primary URL, read-only URL, ids of the failed jobs) over one schema with jobs."""
    import psycopg

    with postgres_url(tmp_path) as primary:
        schema = primary.split("schema=", 1)[1]
        manager = QueueManager.from_url(primary)
        try:
            t.add.push([1, 2], manager=manager)
            t.add.push([3, 4], manager=manager, queue="other")
            failed = [t.add.push([i, i], manager=manager, queue="dead") for i in range(2)]
            for job_id in failed:
                manager.cancel(job_id, "boom")
        finally:
            manager.close()
        role = "tq_ro_" + uuid.uuid4().hex[:10]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN")
            admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
            admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
            admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
            host = PG_ADMIN.split("@", 1)[1]
            try:
                yield primary, f"postgresql://{role}@{host}?schema={schema}", failed
            finally:
                admin.execute(f"DROP OWNED BY {role}")
                admin.execute(f"DROP ROLE {role}")


def test_the_replica_refuses_writes(replica: tuple[str, str, list[str]]) -> None:
    """The fixture is a fair stand-in: opening it the old way (migrating) fails."""
    from taskqueue.errors import DriverError

    with pytest.raises(DriverError, match="read-only transaction"):
        open_driver(replica[1])


@pytest.mark.parametrize("command", [["stats", "--json"], ["jobs", "list", "--json"],
                                     ["failed", "--json"], ["workers", "--json"],
                                     ["nodes", "--json"]])
def test_read_commands_run_on_a_read_only_store(replica: tuple[str, str, list[str]],
                                                command: list[str]) -> None:
    _, read_only, failed = replica
    done = cli(*command, url=read_only)  # the store itself is read-only: no migration tried
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    if command[0] == "stats":
        assert data["totals"]["pending"] == 2 and data["totals"]["cancelled"] == 2
    elif command[0] == "jobs":
        assert len(data) == 4
    elif command[0] == "failed":
        assert data == []  # cancelled, not failed
    else:
        assert data == []


def test_read_url_serves_reads_while_writes_go_to_the_primary(
        replica: tuple[str, str, list[str]]) -> None:
    primary, read_only, cancelled = replica
    shown = cli("jobs", "show", cancelled[0], "--json", url=primary, read_url=read_only)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "cancelled"
    assert cli("--read-url", read_only, "test", "--jobs=3", url=primary).returncode == 0
    stats = json.loads(cli("--read-url", read_only, "stats", "--json", url=primary).stdout)
    assert stats["totals"]["pending"] == 5
    retried = cli("retry", cancelled[0], url=primary, read_url=read_only)
    assert retried.returncode == 0, retried.stderr


def test_dashboard_reads_the_replica_and_acts_on_the_primary(
        replica: tuple[str, str, list[str]]) -> None:
    pytest.importorskip("starlette")
    from tests.dashboard.conftest import TOKEN, DashboardSettings, client_for

    primary, read_only, cancelled = replica
    manager = QueueManager.with_replica(resolve({"url": primary, "read_url": read_only}))
    try:
        client = client_for(manager, DashboardSettings(token=TOKEN, secret_key="s"))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        listed = client.get("/api/jobs?state=cancelled", headers=headers).json()["jobs"]
        assert sorted(j["id"] for j in listed) == sorted(cancelled)
        answer = client.post(f"/api/jobs/{cancelled[0]}/retry", headers=headers)
        assert answer.status_code == 200, answer.text
        assert manager.driver.replica.get(cancelled[0]).state.value == "pending"  # type: ignore[attr-defined]
    finally:
        manager.close()


def _make_behind(backend: str, url: str) -> None:
    """Migrate the store, then make it look one version older, as another program's older
    taskqueue would have left it."""
    driver = open_driver(url)
    driver.close()
    if backend == "redis":
        client, keys = redis_keys(url, ":schema")
        assert len(keys) == 1, keys
        client.set(keys[0], 2)
        client.close()
    elif backend == "files":
        fmt = Path(urlsplit(url).path) / "format.json"
        fmt.write_text(json.dumps({"format": "taskqueue-files", "migrations": [1]}))
    else:
        raw_sql(backend, url, "DELETE FROM taskqueue_migrations WHERE version = ?",
                (max(untouched_versions(url)),))


def untouched_versions(url: str) -> list[int]:
    """Every schema version this code knows for the store at ``url`` (all applied)."""
    from taskqueue.drivers import mysql, postgres, sqlite

    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return [v for v, _ in sqlite.MIGRATIONS]
    if scheme == "mysql":
        return [v for v, _ in mysql.MIGRATIONS]
    return list(postgres._MIGRATIONS)


def test_read_commands_name_a_schema_that_is_behind(store_url: str, backend: str) -> None:
    """On every backend: a store with an older schema is reported, not migrated (a store with
    no schema at all reads as empty: test_fresh_store_reads.py)."""
    _make_behind(backend, store_url)
    done = cli("stats", "--json", url=store_url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "schema is behind" in done.stderr and "taskqueue migrate" in done.stderr
    untouched = open_driver(store_url, migrate=False)
    try:
        missing = untouched.missing_migrations()
        assert missing, "stats applied a migration"
    finally:
        untouched.close()
