"""A job whose stored fields another program filled with garbage (bad JSON in ``tags`` or
``dependencies``) fails alone: the worker that reserves it dead-letters it with a reason
naming the field, the other jobs run, and listings show it instead of raising. Before, the
row mapping raised inside every reservation that took the job, crashing each worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskqueue import QueueManager, State, TestJob
from tests.raw_store import redis_keys
from tests.raw_store import sql as raw_sql

GARBAGE = '["unterminated'


def _write_garbage(backend: str, url: str, job_id: str, column: str) -> None:
    """Put GARBAGE into ``column`` of the job, behind the driver's back."""
    if backend == "redis":
        client, keys = redis_keys(url, f"*:job:{job_id}")
        assert len(keys) == 1, keys
        client.hset(keys[0], column, GARBAGE)
        client.close()
    else:
        raw_sql(backend, url, f"UPDATE job_queue SET {column} = ? WHERE id = ?", (GARBAGE, job_id))


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql", "redis"])
@pytest.mark.parametrize("column", ["tags", "dependencies"])
def test_a_job_with_a_garbage_column_is_dead_lettered_naming_it(
        store_url: str, backend: str, column: str) -> None:
    with QueueManager.from_url(store_url) as manager:
        bad, good = (h.id for h in manager.push_many([TestJob({"data": 1}),
                                                      TestJob({"data": 2})]))
        _write_garbage(backend, store_url, bad, column)
        listed = {r.id for r in manager.search()}  # a listing shows it, does not raise
        assert listed == {bad, good}
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        dead, done = manager.get(bad), manager.get(good)
        assert dead is not None and done is not None
        assert done.state == State.COMPLETED
        assert dead.state == State.FAILED, dead
        assert "PayloadError" in (dead.exception or "") and column in (dead.exception or "")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_jobs_list_shows_a_job_with_a_garbage_column(store_url: str, backend: str) -> None:
    with QueueManager.from_url(store_url) as manager:
        bad = manager.push(TestJob({"data": 1})).id
    _write_garbage(backend, store_url, bad, "tags")
    run = subprocess.run([sys.executable, "-m", "taskqueue", "--url", store_url, "jobs", "list",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert bad in run.stdout


def test_a_files_record_with_garbage_tags_does_not_stop_the_worker(tmp_path: Path) -> None:
    """The files backend validates a record when it reads it: one with tags of the wrong type
    is moved aside (quarantined, with the reason naming the field), and the other jobs run."""
    url = f"file:///{tmp_path / 'store'}"
    with QueueManager.from_url(url) as manager:
        bad, good = (h.id for h in manager.push_many([TestJob({"data": 1}),
                                                      TestJob({"data": 2})]))
        [path] = (tmp_path / "store" / "queues").rglob(f"*{bad}*.json")
        text = path.read_text()
        assert '"tags":[]' in text, text
        path.write_text(text.replace('"tags":[]', '"tags":5'))
        assert good in {r.id for r in manager.search()}  # a listing does not raise
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        done = manager.get(good)
        assert done is not None and done.state == State.COMPLETED
        assert manager.get(bad) is None
    aside = [p.read_text(errors="replace") for p in (tmp_path / "store").rglob("*")
             if p.is_file() and p.parent.name == "corrupt" and p.suffix == ".reason"]
    assert any("tags" in found for found in aside), aside


@pytest.mark.parametrize("backend", ["sqlite", "mysql", "redis"])
def test_a_garbage_attempt_history_neither_stops_failing_the_job_nor_showing_it(
        store_url: str, backend: str) -> None:
    """The attempt history is appended to by the store itself (SQLite's json_insert, MySQL's
    JSON_ARRAY_APPEND raised on text that is not JSON, so the worker could not record the
    failure, and lease recovery could not either) and decoded by `jobs show`. PostgreSQL's
    column is jsonb, which cannot hold garbage."""
    with QueueManager.from_url(store_url) as manager:
        job = manager.push(TestJob({"fail": "on purpose"}), max_attempts=1).id
        _write_garbage(backend, store_url, job, "attempt_history")
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        dead = manager.get(job)
        assert dead is not None and dead.state == State.FAILED
        assert "on purpose" in (dead.exception or "")
        manager.attempts(job)  # does not raise
    run = subprocess.run([sys.executable, "-m", "taskqueue", "--url", store_url, "jobs", "show",
                          job], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("garbage", ["{bad", "tq1:!!not base64"])
def test_a_garbage_parent_result_dead_letters_the_child_that_takes_it(
        tmp_path: Path, garbage: str) -> None:
    """``pass_result`` decodes the parents' results inside the reservation: a result another
    program overwrote made the worker raise there (it crashed), and a sealed result that is not
    base64 raised binascii.Error out of ``decode_result``."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with QueueManager.from_url(url) as manager:
        parent = manager.push(TestJob({"data": 1})).id
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        raw_sql("sqlite", url, "UPDATE job_queue SET result = ? WHERE id = ?", (garbage, parent))
        child = manager.push(TestJob({"data": 2}), depends_on=[parent], pass_result=True).id
        other = manager.push(TestJob({"data": 3})).id
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        dead, done = manager.get(child), manager.get(other)
        assert dead is not None and done is not None and done.state == State.COMPLETED
        assert dead.state == State.FAILED
        assert parent in (dead.exception or "") and "PayloadError" in (dead.exception or "")


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql", "redis"])
def test_workers_lists_the_others_when_a_registry_entry_is_garbage(
        store_url: str, backend: str) -> None:
    """A worker entry that is not JSON made `taskqueue workers` (and the dashboard, health
    checks) raise; it is left out and the others are listed."""
    from taskqueue.drivers import open_driver

    driver = open_driver(store_url)
    try:
        driver.registry_put("worker", "bad", {"id": "bad"}, ttl_seconds=600)
        driver.registry_put("worker", "good", {"id": "good"}, ttl_seconds=600)
    finally:
        driver.close()
    if backend == "redis":
        client, keys = redis_keys(store_url, ":registry:{worker}")
        assert len(keys) == 1, keys
        client.hset(keys[0], "bad", GARBAGE)
        client.close()
    else:
        raw_sql(backend, store_url, "UPDATE taskqueue_registry SET data = ? WHERE kind = ? "
                "AND " + ("`key`" if backend == "mysql" else "key") + " = ?",
                (GARBAGE, "worker", "bad"))
    run = subprocess.run([sys.executable, "-m", "taskqueue", "--url", store_url, "workers",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "good" in run.stdout and '"bad"' not in run.stdout
