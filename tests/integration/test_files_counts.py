"""The files backend's job counters (issue 20 item 5): kept in per-process journals of moves,
folded by ``stats``; a writer killed between a move and its count makes the next fold recount,
and a store from before the counters is counted on upgrade."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.drivers import _files_counts as counts_module
from taskqueue.drivers.files import FileDriver
from taskqueue.jobs.states import State
from tests.integration.test_files_specific import SPAWN, driver, new, root, url

Q = ["default"]
__all__ = ["driver", "root", "url"]  # the store fixtures, shared with the files specifics


def exact(driver: FileDriver, queue: str = "default") -> dict[State, int]:
    return {s: driver.count(JobFilter(queues=(queue,), states=(s,))) for s in State}


def journals(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root / "coord" / "counts") if n.endswith(".log"))


def _reserve_and_die_before_counting(url: str) -> None:
    """Reserve one job, dying (SIGKILL) right after its file moved, before its count."""
    from taskqueue.drivers._files_journal import Journal

    driver = open_driver(url)

    def die(self: Journal, fd: int, lines: list[str]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    Journal._leave = die  # type: ignore[method-assign]
    driver.reserve("doomed", Q, 1, 30.0)


def _consume_forever(url: str, ack: str) -> None:
    driver = open_driver(url)
    with open(ack, "a") as out:
        while True:
            for job in driver.reserve("doomed", Q, 2, 30.0):
                driver.complete(job.token)
                out.write(job.id + "\n")
                out.flush()


def test_a_writer_killed_between_a_move_and_its_count_is_recounted(
    driver: FileDriver, url: str, root: Path
) -> None:
    driver.push([new() for _ in range(5)])
    assert driver.stats()["default"].counts[State.PENDING] == 5
    proc = SPAWN.Process(target=_reserve_and_die_before_counting, args=(url,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    # the job file moved into processing/, its count never made it into the journal
    assert exact(driver)[State.PROCESSING] == 1
    stats = driver.stats()["default"]
    assert stats.counts == exact(driver)
    assert stats.counts[State.PENDING] == 4 and stats.counts[State.PROCESSING] == 1
    assert journals(root) == [n for n in journals(root) if n.startswith(f"{os.getpid()}-")]


def test_kill_9_mid_stream_leaves_counts_right(
    driver: FileDriver, url: str, root: Path, tmp_path: Path
) -> None:
    driver.push([new(priority=i % 3) for i in range(300)])
    ack = tmp_path / "done.txt"
    proc = SPAWN.Process(target=_consume_forever, args=(url, str(ack)))
    proc.start()
    deadline = time.monotonic() + 60
    while (not ack.exists() or len(ack.read_text().splitlines()) < 30) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.005)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert driver.stats()["default"].counts == exact(driver)
    for _ in range(2):  # and they stay right as work goes on
        for job in driver.reserve("w", Q, 50, 30.0):
            driver.complete(job.token)
        assert driver.stats()["default"].counts == exact(driver)


def test_a_store_from_before_the_counters_is_counted_on_upgrade(url: str, root: Path) -> None:
    d = open_driver(url)
    d.push([new(priority=p) for p in (1, 5, 9)])
    job = d.reserve("w", Q, 1, 30.0)[0]
    d.complete(job.token)
    d.close()
    (root / "coord" / "counts.json").unlink()
    (root / "format.json").write_bytes(
        orjson.dumps({"format": "taskqueue-files", "migrations": [1, 2]})
    )
    upgraded = FileDriver(root)
    try:
        assert upgraded.missing_migrations() == [3]
        assert upgraded.migrate() == [3]
        stats = upgraded.stats()["default"]
        assert stats.counts == exact(upgraded)
        assert stats.counts[State.PENDING] == 2 and stats.counts[State.COMPLETED] == 1
        assert stats.avg_priority == pytest.approx(3.0)
    finally:
        upgraded.close()


def test_missing_or_damaged_counts_are_recounted(driver: FileDriver, root: Path) -> None:
    driver.push([new() for _ in range(4)])
    for damage in (b"", b"{not json", b'{"queues": 3}'):
        (root / "coord" / "counts.json").write_bytes(damage)
        assert driver.stats()["default"].counts[State.PENDING] == 4
    (root / "coord" / "counts.json").unlink()
    assert driver.stats()["default"].counts[State.PENDING] == 4


def test_journals_of_closed_writers_are_folded_and_removed(url: str, root: Path) -> None:
    writers = [open_driver(url) for _ in range(3)]
    for w in writers:
        w.push([new(), new()])
    assert len(journals(root)) == 3
    for w in writers:
        w.close()
    reader = open_driver(url)
    try:
        assert reader.stats()["default"].counts[State.PENDING] == 6
        assert journals(root) == []
        assert reader.stats()["default"].counts[State.PENDING] == 6
    finally:
        reader.close()


def test_oldest_ready_time_past_the_fine_histogram(
    driver: FileDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past FINE_MAX distinct due times the newer ones are kept per second: the oldest stays
    exact while jobs of the exact half wait, and is right to the second after."""
    monkeypatch.setattr(counts_module, "FINE_MAX", 4)
    driver.push([new(delay_seconds=10.0 * i) for i in range(10)])
    jobs = driver.search(JobFilter(limit=100, newest_first=False))
    dues = sorted(j.available_at for j in jobs)
    oldest = driver.stats()["default"].oldest_ready_at
    assert oldest is not None and abs((oldest - dues[0]).total_seconds()) < 0.002
    for job in sorted(jobs, key=lambda j: j.available_at)[:8]:
        assert driver.delete(job.id)
    oldest = driver.stats()["default"].oldest_ready_at
    assert oldest is not None and 0 <= (dues[8] - oldest).total_seconds() < 1.0
