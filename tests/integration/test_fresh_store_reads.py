"""Read-only commands on a store nobody has migrated yet (a first `taskqueue stats` before any
enqueue) show an empty store with a one-line note on stderr, and create nothing; a store with
an older schema is still refused with the "behind" message (tests/integration/
test_read_replica.py). Before, a brand-new store was also reported as "behind" (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from taskqueue.drivers import open_driver
from tests.backends import PG_ADMIN
from tests.raw_store import redis_keys

ROOT = Path(__file__).resolve().parents[2]
NOTE = "nothing has been enqueued"
READERS = (("stats", "--json"), ("jobs", "list", "--json"), ("failed", "--json"),
           ("workers", "--json"), ("nodes", "--json"))


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TASKQUEUE_READ_URL"}
    env["TASKQUEUE_URL"] = url
    return subprocess.run([sys.executable, "-m", "taskqueue", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_reads_as_empty(url: str) -> None:
    for args in READERS:
        done = cli(*args, url=url)
        assert done.returncode == 0, (args, done.stderr)
        assert NOTE in done.stderr, (args, done.stderr)
        shown = json.loads(done.stdout)
        if args[0] == "stats":
            assert shown["queues"] == {}
            assert all(shown["totals"][s] == 0 for s in ("pending", "processing", "completed",
                                                         "failed", "retrying", "cancelled"))
        else:
            assert shown == [], (args, shown)


def test_read_commands_show_a_new_store_as_empty_and_create_nothing(
        store_url: str, backend: str) -> None:
    assert_reads_as_empty(store_url)
    if backend in ("sqlite", "files"):  # not even the file or the directory
        where = Path(urlsplit(store_url).path.lstrip("/") if backend == "sqlite"
                     else urlsplit(store_url).path)
        where = Path("/") / where if not where.is_absolute() else where
        assert not where.exists(), sorted(where.parent.iterdir())
    elif backend == "redis":
        client, keys = redis_keys(store_url)
        client.close()
        assert keys == []
    else:
        untouched = open_driver(store_url, migrate=False)
        try:
            assert untouched.schema_absent()
        finally:
            untouched.close()
    assert cli("migrate", url=store_url).returncode == 0
    done = cli("stats", "--json", url=store_url)
    assert done.returncode == 0 and NOTE not in done.stderr, done.stderr


def test_read_commands_on_a_new_postgres_database() -> None:
    """A PostgreSQL database just created (not only a new schema in one) reads as empty."""
    psycopg = pytest.importorskip("psycopg")
    from tests.backends import unavailable

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        unavailable("postgres", exc)
    database = "tq_" + uuid.uuid4().hex[:12]
    with admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        try:
            url = urlunsplit(urlsplit(PG_ADMIN)._replace(path=f"/{database}"))
            assert_reads_as_empty(url)
            with psycopg.connect(url) as conn:
                tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                                      "table_schema NOT IN ('pg_catalog', 'information_schema')"
                                      ).fetchone()
            assert tables == (0,)
        finally:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def test_a_long_running_reader_sees_jobs_once_the_store_gets_a_schema(tmp_path: Path) -> None:
    """The empty answers last only while there is no schema: a reader opened before the first
    push (``metrics:serve``, a dashboard on a replica) then reads the real store."""
    from taskqueue import QueueManager, TestJob
    from taskqueue.config import resolve

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    reader = QueueManager.for_reading(resolve({"url": url}))
    try:
        assert reader.store_is_new() and reader.stats()["totals"]["pending"] == 0
        with QueueManager.from_url(url) as producer:
            producer.push(TestJob({"data": 1}))
        assert not reader.store_is_new()
        assert reader.stats()["totals"]["pending"] == 1
    finally:
        reader.close()


def test_the_dashboard_read_verbs_answer_empty_on_a_new_store(tmp_path: Path) -> None:
    """Every read verb the dashboard calls answers as an empty store (the graphs' too)."""
    from taskqueue.client.fresh import open_for_reading
    from taskqueue.drivers import JobFilter
    from taskqueue.drivers.base import DueFilter

    url = f"sqlite:///{tmp_path / 'new.db'}"
    driver = open_for_reading(url)
    try:
        assert driver.graph_nodes(JobFilter(batch_id="b")) == []
        assert driver.error_texts(JobFilter(), 10) == []
        assert driver.sorted_search(JobFilter(), "priority", True) == []
        assert driver.due(DueFilter()) == []
    finally:
        driver.close()
    assert not (tmp_path / "new.db").exists()
