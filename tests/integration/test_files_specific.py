"""Files backend specifics: corrupt files, several OS processes, and leftovers of killed writers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.drivers.files import FileDriver
from taskqueue.errors import ConfigError
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State

Q = ["default"]
SPAWN = multiprocessing.get_context("spawn")


def new(**kw: Any) -> NewJob:
    fields: dict[str, Any] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def url(root: Path) -> str:
    return f"file:///{root}"


@pytest.fixture
def driver(url: str) -> Iterator[FileDriver]:
    d = open_driver(url)
    assert isinstance(d, FileDriver)
    try:
        yield d
    finally:
        d.close()


def job_file(root: Path, job_id: str) -> Path:
    (path,) = [p for p in (root / "queues").rglob("*.json") if job_id in p.name]
    return path


def corrupt_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "corrupt").iterdir() if not p.name.endswith(".reason"))


# -- URLs ------------------------------------------------------------------------------------

def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_driver("file:rel/store")
    absolute = open_driver(f"file://{tmp_path / 'abs'}?fsync=0")
    try:
        assert isinstance(relative, FileDriver) and relative.root == Path("rel/store")
        assert (tmp_path / "rel" / "store" / "format.json").is_file()
        assert isinstance(absolute, FileDriver) and absolute.root == tmp_path / "abs"
        assert (tmp_path / "abs" / "queues").is_dir()
    finally:
        relative.close()
        absolute.close()
    with pytest.raises(ConfigError):
        open_driver("file://")


@pytest.mark.parametrize(("url", "path"), [
    ("file:///var/lib/jobs", "/var/lib/jobs"),          # RFC 8089: three slashes, absolute
    ("file://localhost/var/lib/jobs", "/var/lib/jobs"),
    ("file:////var/lib/jobs", "/var/lib/jobs"),         # the old absolute spelling still works
    ("file:///var/lib/my%20jobs", "/var/lib/my jobs"),
    ("file:storage/jobs", "storage/jobs"),              # relative to the working directory
    ("file:./storage/jobs", "storage/jobs"),
])
def test_file_urls_follow_rfc_8089(url: str, path: str) -> None:
    from taskqueue.drivers.files import file_url_path

    assert file_url_path(url) == Path(path)


@pytest.mark.parametrize("url", ["file://nas.example/jobs", "file:", "file:///"])
def test_file_urls_without_a_local_directory_are_refused(url: str) -> None:
    from taskqueue.drivers.files import file_url_path

    with pytest.raises(ConfigError, match="local disk|no directory"):
        file_url_path(url)


def test_a_store_at_the_old_relative_reading_is_pointed_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    open_driver("file:tq-old-store/jobs").close()
    with pytest.raises(ConfigError, match="file:tq-old-store/jobs"):
        open_driver("file:///tq-old-store/jobs")


def test_db_connection_file_builds_an_rfc_8089_url() -> None:
    from taskqueue.config import Settings, build_url

    assert build_url(Settings(connection="file", path="storage/jobs")) == "file:storage/jobs"
    assert build_url(Settings(connection="file", path="/srv/jobs")) == "file:///srv/jobs"


def test_network_filesystem_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from taskqueue.drivers import _files_store

    monkeypatch.setattr(_files_store, "filesystem_type", lambda path: "nfs4")
    with caplog.at_level(logging.WARNING, logger="taskqueue.drivers.files"):
        FileDriver(tmp_path / "nfs").close()
    assert any("nfs4 filesystem" in r.getMessage() for r in caplog.records)


# -- corrupt and truncated files -------------------------------------------------------------

def test_truncated_pending_file_is_moved_aside(
    driver: FileDriver, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = new(priority=1), new(priority=9)
    driver.push([good, bad])
    path = job_file(root, bad.id)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="taskqueue.drivers.files"):
        assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [good.id]
    assert driver.search(JobFilter()) != []
    assert driver.count(JobFilter()) == 1
    assert driver.stats()["default"].counts[State.PROCESSING] == 1
    assert driver.get(bad.id) is None

    (moved,) = corrupt_files(root)
    assert moved.read_bytes() == data[: len(data) // 2]
    reason = moved.with_name(moved.name + ".reason").read_text()
    assert "not valid JSON" in reason and str(path) in reason
    assert any("moved unreadable job file" in r.getMessage() for r in caplog.records)


def test_record_with_missing_fields_found_by_search(driver: FileDriver, root: Path) -> None:
    keep, bad = new(), new()
    driver.push([keep, bad])
    job_file(root, bad.id).write_text(f'{{"id": "{bad.id}", "state": "pending"}}')
    assert [j.id for j in driver.search(JobFilter())] == [keep.id]
    assert driver.count(JobFilter(names=("tests.noop",))) == 1
    (moved,) = corrupt_files(root)
    assert "missing fields" in moved.with_name(moved.name + ".reason").read_text()
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [keep.id]


def test_corrupt_running_job_never_crashes_the_worker(driver: FileDriver, root: Path) -> None:
    driver.push([new(), new()])
    first, second = driver.reserve("w", Q, 2, 1)
    job_file(root, first.id).write_bytes(b"\x00\x01garbage")
    job_file(root, second.id).write_bytes(b"[1, 2, 3]")
    assert not driver.complete(first.token)
    result = driver.heartbeat("w", [second.token], 30)
    assert result.lost == {second.id}
    assert driver.recover_expired() == []
    assert len(corrupt_files(root)) == 2
    assert driver.stats() == {}


# -- several OS processes --------------------------------------------------------------------

def _consume(url: str, worker: str, barrier: Any, results: Any) -> None:
    driver = open_driver(url)
    seen: list[str] = []
    barrier.wait(timeout=60)
    while batch := driver.reserve(worker, Q, 5, 30):
        for job in batch:
            if not driver.complete(job.token):
                raise AssertionError(f"{worker} lost {job.id}")
            seen.append(job.id)
    driver.close()
    results.put(seen)


def test_two_processes_never_share_a_job(driver: FileDriver, url: str) -> None:
    total = 400
    driver.push([new() for _ in range(total)])
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=_consume, args=(url, f"p{i}", barrier, results))
             for i in range(2)]
    for proc in procs:
        proc.start()
    seen = [results.get(timeout=120), results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    counts = Counter(seen[0] + seen[1])
    assert len(counts) == total and max(counts.values()) == 1
    assert seen[0] and seen[1], "both processes should have taken part"
    assert driver.count(JobFilter(states=(State.COMPLETED,))) == total


# -- leftovers of killed writers -------------------------------------------------------------

def test_half_written_temp_files_are_ignored(driver: FileDriver, root: Path) -> None:
    job = new()
    driver.push([job])
    half = root / "tmp" / "12345-deadbeef.tmp"
    half.write_bytes(b'{"id": "half-writ')
    hidden = root / "queues" / "default" / "ready" / ".0000000001-x.json.tmp"
    hidden.write_bytes(b'{"id": ')
    assert driver.count(JobFilter()) == 1
    assert driver.stats()["default"].counts[State.PENDING] == 1
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [job.id]
    assert not corrupt_files(root)

    two_hours_ago = time.time() - 7200
    os.utime(half, (two_hours_ago, two_hours_ago))
    fresh = root / "tmp" / "12345-cafe.tmp"
    fresh.write_bytes(b"in flight")
    assert driver.recover_expired() == []
    assert not half.exists() and fresh.exists(), "only old temp files are removed"


def _patch_record(path: Path, **fields: Any) -> None:
    """Overwrite some fields of a record file in place (simulating a half-finished move)."""
    rec = orjson.loads(path.read_bytes())
    rec.update(fields)
    path.write_bytes(orjson.dumps(rec))


def test_interrupted_moves_are_finished(driver: FileDriver, root: Path) -> None:
    """A crash between rewriting a record and renaming it leaves the record in the wrong
    directory; the content wins, and the next look under its lock puts it in place."""
    driver.push([new(), new()])
    a, b = driver.reserve("w", Q, 2, 30)
    processing = root / "queues" / "default" / "processing"
    # `a` was renamed into processing/ but never rewritten: its content still says pending.
    _patch_record(processing / f"{a.id}.json", state="pending", attempts=0, lease_epoch=0)
    # `b` was rewritten as completed but never renamed out of processing/.
    _patch_record(processing / f"{b.id}.json", state="completed", completed_at=time.time())
    assert driver.recover_expired() == []
    assert list(processing.iterdir()) == []
    assert driver.get(b.id).state == State.COMPLETED  # type: ignore[union-attr]
    again = driver.reserve("w", Q, 10, 30)
    assert [j.id for j in again] == [a.id] and again[0].attempts == 1


def test_abandoned_idempotency_marker_is_taken_over(driver: FileDriver, root: Path) -> None:
    key = "order-7"
    marker = driver._jobs.key_path(key)
    marker.write_text("job-that-never-got-written")
    old = time.time() - 3600
    os.utime(marker, (old, old))
    job = new(idempotency_key=key)
    assert driver.push([job]) == [job.id]
    assert driver.push([new(idempotency_key=key)]) == [job.id]
    assert driver.delete(job.id)
    again = new(idempotency_key=key)
    assert driver.push([again]) == [again.id], "deleting a job frees its key"


def _produce(url: str, ack: str) -> None:
    driver = open_driver(url)
    with open(ack, "a") as out:
        while True:
            jobs = [new(payload=os.urandom(4096)) for _ in range(5)]
            driver.push(jobs)
            out.write("".join(j.id + "\n" for j in jobs))
            out.flush()


def _slow_consume(url: str, ack: str) -> None:
    driver = open_driver(url)
    with open(ack, "a") as out:
        while batch := driver.reserve("doomed", Q, 1, 1.0):
            time.sleep(0.01)
            assert driver.complete(batch[0].token)
            out.write(batch[0].id + "\n")
            out.flush()


def _acked(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if len(line) == 36]


def _run_and_kill(target: Any, url: str, ack: Path, wait_for: int) -> None:
    proc = SPAWN.Process(target=target, args=(url, str(ack)))
    proc.start()
    deadline = time.monotonic() + 60
    while len(_acked(ack)) < wait_for and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL


def test_kill_9_producer_loses_no_acknowledged_job(driver: FileDriver, url: str,
                                                  tmp_path: Path, root: Path) -> None:
    ack = tmp_path / "pushed.txt"
    _run_and_kill(_produce, url, ack, wait_for=100)
    acked = _acked(ack)
    assert all(driver.get(job_id) is not None for job_id in acked)
    seen: list[str] = []
    while batch := driver.reserve("w", Q, 50, 30):
        seen.extend(j.id for j in batch)
        for job in batch:
            assert driver.complete(job.token)
    counts = Counter(seen)
    assert set(acked) <= set(counts) and max(counts.values()) == 1
    assert driver.count(JobFilter()) == len(counts)
    assert not corrupt_files(root)


def test_kill_9_consumer_jobs_are_recovered(driver: FileDriver, url: str, tmp_path: Path) -> None:
    total = 120
    driver.push([new() for _ in range(total)])
    ack = tmp_path / "done.txt"
    _run_and_kill(_slow_consume, url, ack, wait_for=20)
    time.sleep(1.2)  # the killed worker's lease runs out
    driver.recover_expired()
    while batch := driver.reserve("w", Q, 50, 30):
        for job in batch:
            assert driver.complete(job.token)
    done = driver.search(JobFilter(states=(State.COMPLETED,), limit=1000))
    assert len(done) == total and driver.count(JobFilter()) == total
    by_id = {j.id: j for j in done}
    assert all(by_id[job_id].attempts == 1 for job_id in _acked(ack))


# -- the real worker on this backend ---------------------------------------------------------

def test_worker_runs_jobs_end_to_end(url: str, tmp_path: Path) -> None:
    from taskqueue import QueueManager, set_default_manager
    from tests.apps import sample_tasks as t
    from tests.integration.conftest import drain, final, ledger_lines

    ledger = str(tmp_path / "ledger.txt")
    manager = QueueManager.from_url(url)
    set_default_manager(manager)
    try:
        total = t.add.delay(2, 3)
        order = {t.mark.push([ledger], priority=p): p for p in (1, 20, 5)}
        flaky = t.flaky.delay(ledger, 2)
        drain(manager, prefetch=1)
        assert manager.result(total) == 5
        assert [order[line[0]] for line in ledger_lines(ledger) if line[0] in order] == [20, 5, 1]
        record = final(manager, flaky)
        assert record.state == State.COMPLETED and record.attempts == 2
    finally:
        set_default_manager(None)
        manager.close()


# -- workflow verbs: what they leave on disk -------------------------------------------------

_ADDED_FIELDS = ("idempotency_mode", "idempotency_window", "idempotency_expires_at",
                 "satisfied_deps")


def _as_old_record(path: Path) -> None:
    """Rewrite a record as a release before idempotency modes wrote it (no added fields)."""
    rec = orjson.loads(path.read_bytes())
    for key in _ADDED_FIELDS:
        del rec[key]
    path.write_bytes(orjson.dumps(rec))


def test_records_from_before_modes_read_as_exists(driver: FileDriver, root: Path) -> None:
    finished = new(idempotency_key="k-old-finished", idempotency_mode="finished")
    window = new(idempotency_key="k-old-window", idempotency_mode="window",
                 idempotency_window=0.0)
    driver.push([finished, window])
    for pushed in (finished, window):
        _as_old_record(job_file(root, pushed.id))
    assert driver.get(finished.id) is not None and not corrupt_files(root)
    for job in driver.reserve("w", Q, 10, 30):
        assert driver.complete(job.token)
    time.sleep(0.01)
    assert driver.push([new(idempotency_key="k-old-finished")]) == [finished.id]
    assert driver.push([new(idempotency_key="k-old-window")]) == [window.id], "no window"
    rec = orjson.loads(job_file(root, finished.id).read_bytes())
    assert rec["idempotency_mode"] == "exists" and rec["idempotency_expires_at"] is None
    assert rec["idempotency_key"] == "k-old-finished"


def test_key_marker_left_by_a_crash_is_taken_over(driver: FileDriver) -> None:
    """A crash after a record let go of its key but before its marker was removed."""
    first = new(idempotency_key="k-crash", idempotency_mode="started")
    driver.push([first])
    driver.reserve("w", Q, 1, 30)
    marker = driver._jobs.key_path("k-crash")
    assert not marker.exists()
    marker.write_text(first.id)
    fresh = new(idempotency_key="k-crash", idempotency_mode="started")
    assert driver.push([fresh]) == [fresh.id]
    assert marker.read_text() == fresh.id


def test_expired_window_moves_the_key_to_the_new_job(driver: FileDriver) -> None:
    first = new(idempotency_key="k-win", idempotency_mode="window", idempotency_window=0.0)
    driver.push([first])
    (job,) = driver.reserve("w", Q, 1, 30)
    assert driver.complete(job.token)
    fresh = new(idempotency_key="k-win")
    assert driver.push([fresh]) == [fresh.id]
    old = driver.get(first.id)
    assert old is not None and old.idempotency_key is None, "cleared as SQLite clears it"
    assert driver.delete(first.id)
    assert driver.push([new(idempotency_key="k-win")]) == [fresh.id], "the new job holds it"


def test_released_dependency_is_kept_in_the_record(driver: FileDriver, root: Path) -> None:
    parent, sibling = new(), new()
    child = new(dependencies=(parent.id, sibling.id))
    driver.push([parent, sibling, child])
    taken = {j.id: j for j in driver.reserve("w", Q, 10, 30)}
    assert set(taken) == {parent.id, sibling.id}
    assert driver.fail(taken[parent.id].token, "boom", None)
    assert driver.dependency_failed(parent.id, cancel=False, reason="run anyway") == []
    assert driver.dependency_failed(parent.id, cancel=False, reason="again") == []
    path = job_file(root, child.id)
    assert orjson.loads(path.read_bytes())["satisfied_deps"] == [parent.id]
    assert path.parent.name == "waiting", "it still waits for the sibling"
    assert not (root / "deps" / parent.id).exists(), "the edge is consumed"
    assert driver.cancel(sibling.id, "stop") and driver.delete(sibling.id)
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id], \
        "a dependency deleted later still releases it"


def test_cancelled_dependents_leave_no_edges(driver: FileDriver, root: Path) -> None:
    parent = new(idempotency_key="k-parent")
    child = new(dependencies=(parent.id,), idempotency_key="k-child",
                idempotency_mode="finished")
    driver.push([parent, child])
    (job,) = driver.reserve("w", Q, 10, 30)
    assert driver.fail(job.token, "boom", None)
    assert driver.dependency_failed(parent.id, True, "upstream failed") == [child.id]
    assert job_file(root, child.id).parent.name == "cancelled"
    assert not (root / "deps" / parent.id).exists()
    assert driver.dependency_failed(parent.id, True, "twice") == []
    again = new(idempotency_key="k-child")
    assert driver.push([again]) == [again.id], "a cancelled 'finished' job frees its key"


def test_replace_payload_renames_the_ready_file(driver: FileDriver, root: Path) -> None:
    parent = new()
    job, child = new(payload=b"old"), new(dependencies=(parent.id,))
    driver.push([parent, job, child])
    before = job_file(root, job.id)
    assert driver.replace_payload(job.id, b"new", 60)
    after = job_file(root, job.id)
    assert after != before and not before.exists() and after.parent.name == "ready"
    assert driver.replace_payload(child.id, b"child", 0)
    assert job_file(root, child.id).parent.name == "waiting", "still waits for its parent"
    rec = driver.get(job.id)
    assert rec is not None and rec.payload == b"new" and rec.delay_seconds == 60.0


def test_reserve_job_finishes_a_lost_wake_up(driver: FileDriver, root: Path) -> None:
    parent = new()
    child = new(dependencies=(parent.id,))
    driver.push([parent, child])
    for edge in (root / "deps" / parent.id).iterdir():
        edge.unlink()  # the wake-up is lost, as after a crash
    (job,) = driver.reserve("w", Q, 10, 30)
    assert driver.complete(job.token)
    assert driver.reserve("w", Q, 10, 30) == []
    taken = driver.reserve_job("w", child.id, 30)
    assert taken is not None and taken.id == child.id and taken.attempts == 1
