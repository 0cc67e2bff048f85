"""Attempt history through the worker and the CLI, on every backend: each failed attempt's
error is kept, a completion clears the job's exception, and an error search finds only jobs
that are failed or retrying unless asked for other states."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from taskqueue import QueueManager
from taskqueue.cli import cli
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain


@pytest.fixture
def store(store_url: str) -> Iterator[QueueManager]:
    with QueueManager.from_url(store_url) as manager:
        yield manager


def cli_json(url: str, *args: str) -> object:
    result = CliRunner().invoke(cli, ["--url", url, *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # (stderr may carry a store warning)


def test_worker_keeps_every_attempt_and_error_search_skips_completed(
        store: QueueManager, store_url: str, ledger: str) -> None:
    recovered = t.flaky.push([ledger, 3], manager=store)
    dead = t.always_fails.push([ledger], manager=store)
    drain(store, timeout=60)

    shown = cli_json(store_url, "jobs", "show", recovered)
    assert isinstance(shown, dict) and shown["state"] == "completed"
    assert shown["exception"] is None, "a completed job keeps no earlier error"
    history = shown["attempt_history"]
    assert [(a["attempt"], a["outcome"]) for a in history] == [
        (1, "retrying"), (2, "retrying"), (3, "completed")]
    assert history[0]["error"].strip().endswith("ValueError: attempt 1 fails on purpose")
    assert history[1]["error"].strip().endswith("ValueError: attempt 2 fails on purpose")
    assert all(a["worker"] and a["started_at"] and a["ended_at"] for a in history)

    dead_history = cli_json(store_url, "jobs", "show", dead)["attempt_history"]  # type: ignore[index]
    assert [(a["outcome"], "missing-thing" in a["error"]) for a in dead_history] == [
        ("retrying", True), ("failed", True)]

    found = cli_json(store_url, "jobs", "list", "--error", "on purpose")
    assert found == [], "the completed job's old errors are not found"
    found = cli_json(store_url, "jobs", "list", "--error", "missing-thing")
    assert [j["id"] for j in found] == [dead]  # type: ignore[union-attr]


def test_an_existing_sqlite_store_upgrades_and_keeps_history(sqlite_url: str) -> None:
    """A store made before the history existed (migration 5 not applied): opening it adds the
    column, its jobs keep working, and their next failure is recorded."""
    import sqlite3

    from taskqueue.drivers import open_driver
    from tests.conformance.test_driver import new, reserve_one

    driver = open_driver(sqlite_url)
    job = new()
    driver.push([job])
    driver.close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # back to the schema of migration 4
        conn.execute("ALTER TABLE job_queue DROP COLUMN attempt_history")
        conn.execute("DELETE FROM taskqueue_migrations WHERE version = 5")
    driver = open_driver(sqlite_url)
    try:
        assert driver.migrate() == [], "opening it applied migration 5"
        assert driver.fail(reserve_one(driver, "w").token, "ValueError: after upgrade", 0)
        assert [(a.worker, a.error) for a in driver.attempt_history(job.id)] == [
            ("w", "ValueError: after upgrade")]
    finally:
        driver.close()


def test_files_records_written_before_the_history_still_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import orjson

    from taskqueue.drivers import open_driver
    from tests.conformance.test_driver import new, reserve_one

    driver = open_driver(f"file:///{tmp_path / 'store'}")
    try:
        job = new()
        driver.push([job])
        (path,) = [p for p in (tmp_path / "store").rglob("*.json") if job.id in p.name]
        record = orjson.loads(path.read_bytes())
        del record["attempt_history"]  # as an older version wrote it
        path.write_bytes(orjson.dumps(record))
        assert driver.attempt_history(job.id) == []
        assert driver.fail(reserve_one(driver, "w").token, "ValueError: old record", 0)
        assert [a.error for a in driver.attempt_history(job.id)] == ["ValueError: old record"]
    finally:
        driver.close()
