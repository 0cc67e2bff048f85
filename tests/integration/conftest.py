from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.apps.sample_tasks  # noqa: F401  (registers the tasks)
from taskqueue import QueueManager, Worker, WorkerOptions, set_default_manager
from taskqueue.drivers import JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import FINISHED


def default_manager(url: str) -> Iterator[QueueManager]:
    """A manager on ``url`` set as the process default for the test (generator for fixtures:
    ``yield from default_manager(url)``), unset and closed afterwards."""
    m = QueueManager.from_url(url)
    set_default_manager(m)
    try:
        yield m
    finally:
        set_default_manager(None)
        m.close()


@pytest.fixture
def manager(sqlite_url: str) -> Iterator[QueueManager]:
    yield from default_manager(sqlite_url)


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.txt")


def ledger_lines(path: str) -> list[list[str]]:
    p = Path(path)
    return [line.split() for line in p.read_text().splitlines()] if p.exists() else []


def drain(manager: QueueManager, timeout: float = 30, **options: object) -> Worker:
    """Run a worker in this process until every job is finished (or the timeout passes)."""
    import time

    worker = Worker(manager, WorkerOptions(maintenance_interval=0.2, **options))  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.run_once() == 0:
            unfinished = [r for r in manager.search(JobFilter(limit=100000))
                          if r.state not in FINISHED]
            if not unfinished:
                break
            time.sleep(0.05)
    worker.executor.close()
    return worker


def final(manager: QueueManager, job_id: str) -> JobRecord:
    record = manager.get(job_id)
    assert record is not None
    return record
