"""SQLite-only behaviour: the write-ahead log is checkpointed off the committing thread."""

from __future__ import annotations

import os
import time
from pathlib import Path

from taskqueue.drivers.sqlite import SQLiteDriver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob


def test_wal_is_copied_back_by_the_background_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    driver = SQLiteDriver(db)
    driver.migrate()
    size_before = os.path.getsize(db)
    for _ in range(300):  # single pushes: one commit each, never past the auto threshold
        driver.push([NewJob(id=uuid7(), name="t", payload=b"x" * 200)])
    deadline = time.monotonic() + 10
    while os.path.getsize(db) <= size_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(db) > size_before, "the WAL was never checkpointed into the file"
    ((mode,),) = driver._conn.execute("PRAGMA wal_autocheckpoint").fetchall()
    assert mode >= 10_000, "commits should not checkpoint by themselves at 1,000 pages"
    checkpointer = driver._checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    thread = checkpointer._thread
    driver.close()
    assert not thread.is_alive(), "close() stops the checkpoint thread"


def test_memory_database_has_no_checkpointer() -> None:
    driver = SQLiteDriver(":memory:")
    driver.migrate()
    assert driver._checkpointer is None
    driver.close()
