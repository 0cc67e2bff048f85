"""The same user-level runs on every backend (issue #3): the CLI main job via TASKQUEUE_URL,
and `taskqueue transfer` from SQLite into each backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from taskqueue import QueueManager
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t

ROOT = Path(__file__).resolve().parents[2]


def cli(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKQUEUE_URL": url}
    return subprocess.run([sys.executable, "-m", "taskqueue", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_main_job(url: str, jobs: int, workers: int) -> None:
    """`taskqueue test`, then `taskqueue work --stop-when-empty`: every job completes."""
    assert cli(url, "test", f"--jobs={jobs}").returncode == 0
    work = cli(url, "work", f"--workers={workers}", "--stop-when-empty")
    assert work.returncode == 0, work.stderr
    stats = json.loads(cli(url, "stats", "--json").stdout)
    assert stats["totals"]["completed"] == jobs
    assert stats["totals"]["pending"] == stats["totals"]["processing"] == 0


def test_main_job_completes_on_every_backend(store_url: str) -> None:
    run_main_job(store_url, 1000, workers=1)


def test_transfer_from_sqlite_is_complete_and_resumable(store_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = QueueManager.from_url(sqlite_url)
    done = t.add.push([1, 2], manager=source)
    source.pause_queue("held")
    parent = t.add.push([1, 1], manager=source, tags=["x"])
    child = t.add.push([2, 2], manager=source, depends_on=[parent])
    batch = source.batch([t.add.s(i, i) for i in range(30)], name="b")
    ids = source.push_many([t.add.s(i, 0) for i in range(470)], queue="bulk")

    from taskqueue import Worker, WorkerOptions

    worker = Worker(source, WorkerOptions(queues=["default"]))
    reserved = source.driver.reserve_job(worker.worker_id, done, 30)
    assert reserved is not None and source.driver.complete(reserved.token, "3")
    flaky = t.add.push([2, 3], manager=source)  # failed once, then completed: a history
    for ok in (False, True):
        run = source.driver.reserve_job(worker.worker_id, flaky, 30)
        assert run is not None
        assert (source.driver.complete(run.token, "5") if ok
                else source.driver.fail(run.token, "ValueError: first try", 0))
    history = source.driver.attempt_history(flaky)
    source.close()

    first = cli(sqlite_url, "transfer", "--from", sqlite_url, "--to", store_url, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["copied"] == 504 and report["verified"]
    again = json.loads(cli(sqlite_url, "transfer", "--from", sqlite_url, "--to", store_url,
                           "--json").stdout)
    assert again["copied"] == 0 and again["skipped"] == 504 and again["verified"]

    target = QueueManager.from_url(store_url)
    try:
        assert target.result(done) == 3
        assert len(history) == 2 and target.driver.attempt_history(flaky) == history
        assert target.paused_queues() == ["held"]
        assert target.get(child).dependencies == (parent,)  # type: ignore[union-attr]
        assert target.batch_status(batch).total == 30
        assert target.driver.count(JobFilter(queues=("bulk",))) == len(ids)
        assert target.driver.reserve_job("w", child, 30) is None, "still waits on its parent"
    finally:
        target.close()
