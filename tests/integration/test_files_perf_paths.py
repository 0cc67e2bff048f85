"""Files backend fast paths: the in-memory ready index, leases settled from what this process
remembers, batched acknowledgements, the fast record check, and the fsync setting."""

from __future__ import annotations

import errno
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.drivers import _files_index as files_index
from taskqueue.drivers import _files_scan as files_scan
from taskqueue.drivers import _files_spares as files_spares
from taskqueue.drivers._files_names import fs_name
from taskqueue.drivers._files_record import (
    _FAST,
    _SCHEMA,
    CorruptRecord,
    decode,
    encode,
    new_record,
)
from taskqueue.drivers.files import FileDriver
from taskqueue.errors import Conflict
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new

Q = ["default"]
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file:///{tmp_path / 'store'}"


def _open(url: str) -> FileDriver:
    driver = open_driver(url)
    assert isinstance(driver, FileDriver)
    return driver


@pytest.fixture
def driver(url: str) -> Iterator[FileDriver]:
    d = _open(url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def other(url: str) -> Iterator[FileDriver]:
    """A second driver on the same store: its own index, its own lease memory."""
    d = _open(url)
    try:
        yield d
    finally:
        d.close()


# -- the ready index -------------------------------------------------------------------------

def _push_from_process(url: str, job_id: str, priority: int) -> None:
    driver = open_driver(url)
    driver.push([new(id=job_id, priority=priority)])
    driver.close()


def test_job_pushed_by_another_process_is_seen_at_once(driver: FileDriver, url: str) -> None:
    driver.push([new(priority=1) for _ in range(3)])
    first = driver.reserve("w", Q, 1, 30)  # the index now holds the other two
    assert len(first) == 1
    urgent = uuid7()
    proc = SPAWN.Process(target=_push_from_process, args=(url, urgent, 20))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    got = driver.reserve("w", Q, 1, 30)
    assert [j.id for j in got] == [urgent], "a higher-priority job pushed elsewhere runs first"


def test_index_sees_pushes_within_one_coarse_mtime_tick(
        driver: FileDriver, other: FileDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """File systems stamp mtimes from a coarse clock: a push in the same tick as a listing
    leaves the directory's mtime unchanged. The index must not trust such a listing."""
    real = files_index._mtime_ns
    tick = 20_000_000  # 20 ms, coarser than any kernel's

    monkeypatch.setattr(files_index, "_mtime_ns", lambda path: real(path) // tick * tick)
    for _ in range(60):
        assert driver.reserve("w", Q, 5, 30) == []
        job = new()
        other.push([job])
        got = driver.reserve("w", Q, 5, 30)
        assert [j.id for j in got] == [job.id]
        assert driver.complete(got[0].token)


def test_unchanged_listing_is_trusted_only_for_a_while(
        driver: FileDriver, other: FileDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an mtime frozen in the past the index may skip listing, but never for longer than
    its maximum age: a job is delayed at most that long, never lost."""
    monkeypatch.setattr(files_index, "_mtime_ns", lambda path: 1)
    assert driver.reserve("w", Q, 5, 30) == []
    job = new()
    other.push([job])
    deadline = time.monotonic() + 5 * files_index._MAX_AGE_NS / 1e9
    got: list[Any] = []
    while not got and time.monotonic() < deadline:
        got = driver.reserve("w", Q, 5, 30)
        time.sleep(0.05)
    assert [j.id for j in got] == [job.id]


def test_released_job_is_reserved_again_by_the_same_driver(driver: FileDriver) -> None:
    job = new()
    driver.push([job])
    (first,) = driver.reserve("w", Q, 5, 30)
    assert driver.release(first.token)
    (again,) = driver.reserve("w", Q, 5, 30)
    assert again.id == job.id and again.lease_epoch == first.lease_epoch + 1
    assert not driver.complete(first.token)
    assert driver.complete(again.token)


def test_job_taken_elsewhere_is_skipped_not_returned(driver: FileDriver, other: FileDriver) -> None:
    jobs = [new() for _ in range(6)]
    driver.push(jobs)
    assert driver.reserve("w1", Q, 1, 30)  # driver's index now lists all six
    taken = {j.id for j in other.reserve("w2", Q, 3, 30)}
    mine = {j.id for j in driver.reserve("w1", Q, 10, 30)}
    assert len(taken) == 3 and len(mine) == 2 and not taken & mine


def test_cancelled_and_reprioritized_jobs_follow_the_store(driver: FileDriver,
                                                           other: FileDriver) -> None:
    low, high, top = new(priority=1), new(priority=2), new(priority=3)
    driver.push([low, high, top])
    assert [j.id for j in driver.reserve("w", Q, 1, 30)] == [top.id]  # index: low, high
    extra = new(priority=9)
    other.push([extra])
    assert other.cancel(extra.id, "not wanted")
    assert other.set_priority(low.id, 50)  # renames its ready file
    got = driver.reserve("w", Q, 5, 30)
    assert [j.id for j in got] == [low.id, high.id]


def _drain(url: str, worker: str, barrier: Any, results: Any) -> None:
    driver = open_driver(url)
    seen: list[str] = []
    barrier.wait(timeout=60)
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.5:
        batch = driver.reserve(worker, Q, 7, 30)
        if not batch:
            time.sleep(0.01)
            continue
        idle_since = time.monotonic()
        accepted = driver.complete_many([(job.token, None) for job in batch])
        if not all(accepted):
            raise AssertionError(f"{worker} lost a lease: {accepted}")
        seen.extend(job.id for job in batch)
    driver.close()
    results.put(seen)


def test_two_draining_processes_with_concurrent_pushes_share_nothing(driver: FileDriver,
                                                                     url: str) -> None:
    barrier, results = SPAWN.Barrier(3), SPAWN.Queue()
    procs = [SPAWN.Process(target=_drain, args=(url, f"p{i}", barrier, results))
             for i in range(2)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)
    pushed: list[str] = []
    for round_ in range(30):
        jobs = [new(priority=round_ % 3) for _ in range(10)]
        driver.push(jobs)
        pushed.extend(j.id for j in jobs)
        time.sleep(0.005)
    seen = [results.get(timeout=120), results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    counts = Counter(seen[0] + seen[1])
    assert set(counts) == set(pushed) and max(counts.values()) == 1
    assert driver.count(JobFilter(states=(State.COMPLETED,))) == len(pushed)


# -- settling: batches, stale epochs, leases taken by another driver -----------------------

def test_batch_ack_rejects_exactly_the_stale_epochs(driver: FileDriver, other: FileDriver) -> None:
    jobs = [new() for _ in range(6)]
    driver.push(jobs)
    batch = driver.reserve("w1", Q, 6, 0.05)
    assert len(batch) == 6
    time.sleep(0.1)
    stale = {batch[1].id, batch[4].id}
    for job in batch:  # all leases ran out; two jobs go to another worker meanwhile
        if job.id not in stale:
            assert other.heartbeat("w1", [job.token], 30).extended == {job.id}
    assert sorted(other.recover_expired()) == sorted(stale)
    retaken = other.reserve("w2", Q, 6, 30)
    assert {j.id for j in retaken} == stale
    tokens = [(j.token, f"r{i}") for i, j in enumerate(batch)]
    tokens.append((LeaseToken(batch[0].id, batch[0].lease_epoch + 7), "forged"))
    tokens.append((LeaseToken(uuid7(), 1), "unknown"))
    accepted = driver.complete_many(tokens)
    assert accepted == [j.id not in stale for j in batch] + [False, False]
    for i, job in enumerate(batch):
        rec = driver.get(job.id)
        assert rec is not None
        if job.id in stale:
            assert rec.state == State.PROCESSING and rec.lease_owner == "w2"
        else:
            assert rec.state == State.COMPLETED and rec.result == f"r{i}"
    assert other.complete_many([(j.token, None) for j in retaken]) == [True, True]


def test_lease_taken_by_one_driver_is_settled_by_another(driver: FileDriver,
                                                         other: FileDriver) -> None:
    jobs = [new(queue_name="a"), new(queue_name="b")]
    driver.push(jobs)
    first = driver.reserve("w", ["a", "b"], 2, 30)
    assert len(first) == 2
    assert other.heartbeat("w", [j.token for j in first], 30).extended == {j.id for j in jobs}
    assert other.complete_many([(first[0].token, None)]) == [True]
    assert other.fail(first[1].token, "boom", None)
    assert not driver.complete(first[0].token)
    assert not driver.complete(first[1].token)


def test_stale_lease_memory_falls_back_to_the_store(driver: FileDriver,
                                                    other: FileDriver) -> None:
    """The queue this driver remembers for its lease is wrong once the job was deleted and its
    id pushed again into another queue: settling reads the id entry and refuses."""
    job = new(queue_name="a")
    driver.push([job])
    (leased,) = driver.reserve("w", ["a"], 1, 30)
    assert other.delete(job.id)
    other.push([new(id=job.id, queue_name="b")])
    assert driver.complete_many([(leased.token, None)]) == [False]
    assert not driver.fail(leased.token, "x", 1.0)
    rec = other.get(job.id)
    assert rec is not None and rec.queue_name == "b" and rec.state == State.PENDING


# -- id entries ---------------------------------------------------------------------------

def test_id_entries_are_links_to_the_queue_marker(driver: FileDriver) -> None:
    """Every id entry is a hard link to its queue's marker (no inode of its own), with or
    without fsync; ids stay unique, and deleting a job removes only its link."""
    durable = _open(f"file:///{driver.root}?fsync=1")
    try:
        for i, d in enumerate((driver, durable)):
            job = new(queue_name=f"odd/queue %{i} é")
            d.push([job])
            entry = driver.root / "ids" / fs_name(job.id)
            marker = driver.root / "ids" / f".queue-{fs_name(job.queue_name)}-0"
            assert entry.stat().st_ino == marker.stat().st_ino
            assert marker.read_text() == job.queue_name
            for reader in (driver, durable):
                rec = reader.get(job.id)
                assert rec is not None and rec.queue_name == job.queue_name
            (got,) = driver.reserve("w", [job.queue_name], 1, 30)
            assert durable.complete(got.token)
            with pytest.raises(Conflict):
                d.push([new(id=job.id)])
            assert driver.delete(job.id) and durable.get(job.id) is None
            assert not entry.exists() and marker.read_text() == job.queue_name
    finally:
        durable.close()


def test_id_entries_written_by_earlier_versions_still_read(driver: FileDriver) -> None:
    plain, linked = new(queue_name="a b"), new(queue_name="c")
    driver.push([plain, linked])
    ids = driver.root / "ids"
    (ids / fs_name(plain.id)).unlink()
    (ids / fs_name(plain.id)).write_text("a b")          # a plain file holding the name
    (ids / fs_name(linked.id)).unlink()
    (ids / fs_name(linked.id)).symlink_to(fs_name("c"))  # a symlink to the name
    for job in (plain, linked):
        rec = driver.get(job.id)
        assert rec is not None and rec.queue_name == job.queue_name
    assert driver.reserve("w", ["a b"], 1, 30)[0].id == plain.id
    assert driver.delete(linked.id) and driver.get(linked.id) is None


def test_full_marker_hands_over_to_the_next(driver: FileDriver) -> None:
    """A file has a limited number of links (EMLINK): the queue's next marker takes over."""
    ids = driver._store._ids
    real = ids.link
    full = ids.dir / ".queue-default-0"

    def link(source: Path, target: Path) -> None:
        if source == full:
            raise OSError(errno.EMLINK, "Too many links", str(source))
        real(source, target)

    driver.push([first := new()])
    ids.link = link
    jobs = [new() for _ in range(3)]
    driver.push(jobs)
    following = ids.dir / ".queue-default-1"
    for job in jobs:
        assert (ids.dir / fs_name(job.id)).stat().st_ino == following.stat().st_ino
    assert len(driver.reserve("w", Q, 10, 30)) == 4
    assert driver.get(first.id) is not None


def test_id_named_like_a_queue_is_not_confused_with_it(driver: FileDriver) -> None:
    """A symlink's target is relative: reading an id entry must never follow it."""
    first = new(id="default", queue_name="other")
    second = new(queue_name="default")
    driver.push([first, second])
    rec = driver.get(second.id)
    assert rec is not None and rec.queue_name == "default"
    rec = driver.get("default")
    assert rec is not None and rec.queue_name == "other"


def test_half_written_ready_file_is_moved_aside(driver: FileDriver) -> None:
    """A ready file cut short (a disk error, a power cut without fsync) is not a job."""
    job = new()
    rec = new_record(job, time.time())
    assert driver._store.claim_id(job.id, job.queue_name)
    driver._jobs.target(rec).write_bytes(encode(rec)[:40])
    assert driver.reserve("w", Q, 5, 30) == []
    assert driver.get(job.id) is None
    reasons = list((driver.root / "corrupt").glob("*.reason"))
    assert len(reasons) == 1 and "not valid JSON" in reasons[0].read_text()


# -- records and names -----------------------------------------------------------------------

def _record(driver: FileDriver) -> dict[str, Any]:
    job = new(tags=("t",), dependencies=())
    driver.push([job])
    paths = list((driver.root / "queues").rglob(f"*{job.id}*.json"))
    return dict(orjson.loads(paths[0].read_bytes()))


BAD_VALUES: dict[str, list[Any]] = {
    "id": [1, None], "priority": [True, 1.5, "5", None], "attempts": [False, 2.0],
    "lease_epoch": [None, "1"], "state": ["nope", 3], "available_at": [None, "1", True],
    "started_at": ["x", False], "delay_seconds": [None, "0"], "tags": [["a", 1], "a", None],
    "dependencies": [[None], {}], "progress": ["50", True], "exception": [1, []],
    "satisfied_deps": [[1], None], "idempotency_window": [None, "1"],
    "idempotency_mode": [None, 1], "idempotency_expires_at": ["x"],
}


@pytest.mark.parametrize(("field", "value"),
                         [(f, v) for f, values in BAD_VALUES.items() for v in values])
def test_fast_check_rejects_what_the_full_check_rejects(driver: FileDriver, field: str,
                                                        value: Any) -> None:
    rec = _record(driver)
    decode(encode(rec))  # the untouched record passes
    rec[field] = value
    with pytest.raises(CorruptRecord):
        decode(encode(rec))


def test_fast_check_never_accepts_more_than_the_schema() -> None:
    samples: list[Any] = [None, True, 0, 1.5, "s", [], ["s"], [1], {}]
    for key, types in _FAST:
        check = _SCHEMA.get(key)
        if check is None or key == "state":  # states and list items are checked further
            continue
        for value in samples:
            if type(value) in types and not isinstance(value, list):
                assert check(value), (key, value)


def test_old_record_without_later_fields_still_reads(driver: FileDriver) -> None:
    rec = _record(driver)
    for key in ("idempotency_mode", "idempotency_window", "idempotency_expires_at",
                "satisfied_deps"):
        del rec[key]
    back = decode(encode(rec))
    assert back["idempotency_mode"] == "exists" and back["satisfied_deps"] == []


@pytest.mark.parametrize("text", ["abc", "a.b", "-x", "~y", "A_Z-09~.", "a b", "é", "a/b", "%41",
                                  "01a22105-e2b0-72aa-bd1d-2625f651b3f6", ".hidden", "..",
                                  "x" * 200])
def test_fast_file_names_match_quoting(text: str) -> None:
    expected = quote(text, safe="")
    expected = "%2E" + expected[1:] if expected.startswith(".") else expected
    assert fs_name(text) == expected


def test_too_long_names_are_still_refused() -> None:
    with pytest.raises(ValueError):
        fs_name("x" * 201)


# -- the fsync setting -----------------------------------------------------------------------

def test_fsync_is_off_by_default_and_can_be_turned_on(tmp_path: Path) -> None:
    plain = _open(f"file:///{tmp_path / 'a'}")
    durable = _open(f"file:///{tmp_path / 'b'}?fsync=1")
    try:
        assert plain._store.fsync is False
        assert durable._store.fsync is True
        for d in (plain, durable):
            job = new()
            d.push([job])
            (got,) = d.reserve("w", Q, 1, 30)
            assert d.complete_many([(got.token, "ok")]) == [True]
            rec = d.get(job.id)
            assert rec is not None and rec.state == State.COMPLETED
    finally:
        plain.close()
        durable.close()
    # no temp file is left behind (the inodes kept for reuse are removed on close)
    assert not list((tmp_path / "a" / "tmp").iterdir())
    assert not list((tmp_path / "b" / "tmp").iterdir())


def test_ready_names_sort_like_their_keys() -> None:
    """The ready index sorts a listing's new names before parsing them (issue #17 goal 3: a
    large backlog's first reservation), so their candidates come out in key order: fixed-width
    names order like (inverted priority, due time, id), and ``ready_key`` is ``parse_ready``'s
    sort key."""
    from taskqueue.drivers._files_store import parse_ready, ready_key, ready_name
    from taskqueue.jobs.ids import uuid7
    from taskqueue.jobs.states import State

    recs = [{"id": uuid7(), "priority": p, "available_at": at, "state": State.PENDING}
            for p in (0, 5, 10, 1000) for at in (0.0, 1.5, 1_700_000_000.25)]
    names = [ready_name(rec) for rec in recs]
    keys = [ready_key(name) for name in names]
    assert keys == [parse_ready(name).sort_key for name in names]  # type: ignore[union-attr]
    assert [ready_key(name) for name in sorted(names)] == sorted(keys)  # type: ignore[type-var]
    assert ready_key("notes.txt") is None


def test_wait_ends_for_a_push_in_the_same_mtime_tick(
        driver: FileDriver, other: FileDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker snapshots the ready directory's mtime, then polls it. A push landing in
    the same tick of the file system's clock as the directory's last change leaves the mtime
    as it was: the wait must still end at the next poll, not at its timeout."""
    tick = 2_000_000_000  # a 2 s clock, so the whole scene fits in one tick
    real = files_index._mtime_ns
    coarse = lambda path: real(path) // tick * tick  # noqa: E731
    monkeypatch.setattr(files_index, "_mtime_ns", coarse)
    monkeypatch.setattr(files_index, "_RACY_NS", tick)
    # the code before this test polled through _files_scan.mtimes: coarsen that too
    monkeypatch.setattr(files_scan, "mtimes", lambda dirs: [coarse(d) for d in dirs],
                        raising=False)
    for _attempt in range(3):
        time.sleep((tick - time.time_ns() % tick) / 1e9 + 0.01)  # just after a tick starts
        started_tick = time.time_ns() // tick
        driver.push([new()])
        assert len(driver.reserve("w", Q, 5, 30)) == 1  # the directory changes in this tick
        waited: list[float] = []
        waiter = threading.Thread(target=_timed_wait, args=(driver, 6.0, waited))
        waiter.start()
        time.sleep(0.05)
        job = new()
        other.push([job])
        pushed_tick = time.time_ns() // tick
        waiter.join(timeout=10)
        if pushed_tick != started_tick:
            driver.reserve("w", Q, 5, 30)
            continue  # the scene crossed a tick boundary (a very loaded machine): again
        assert waited[0] < 1.5, f"the wait missed the push and lasted {waited[0]:.2f} s"
        assert [j.id for j in driver.reserve("w", Q, 5, 30)] == [job.id]
        return
    pytest.skip("could not fit the scene into one clock tick")


def _timed_wait(driver: FileDriver, timeout: float, out: list[float]) -> None:
    start = time.monotonic()
    driver.wait_for_work(Q, timeout)
    out.append(time.monotonic() - start)


# -- reused inodes (``_files_spares``) ---------------------------------------------------------

def _inodes(root: Path) -> dict[int, Path]:
    return {p.stat().st_ino: p for p in (root / "queues").rglob("*.json")}


def test_rewrites_reuse_the_inodes_of_replaced_records(driver: FileDriver) -> None:
    """A claim and a completion rewrite a record: each reuses the inode a replaced record left
    instead of making a new one (inode allocation was half a drain's CPU on ext4)."""
    driver.push([new() for _ in range(20)])
    before = _inodes(driver.root)
    got = driver.reserve("w", Q, 20, 30)
    assert driver.complete_many([(j.token, None) for j in got]) == [True] * 20
    after = _inodes(driver.root)
    assert len(after) == 20
    assert len(set(after) - set(before)) <= files_spares.SLACK, "new inodes until SLACK are kept"
    assert len(list((driver.root / "tmp").iterdir())) <= files_spares.KEEP


def test_a_record_with_another_name_is_never_written_through(driver: FileDriver,
                                                             tmp_path: Path) -> None:
    """A hard link to a record (a backup made with ``cp -al``) keeps the content it had: an
    inode with another name is not reused."""
    job = new()
    driver.push([job])
    (ready,) = (driver.root / "queues" / "default" / "ready").iterdir()
    backup = tmp_path / "backup.json"
    os.link(ready, backup)
    saved = backup.read_bytes()
    (got,) = driver.reserve("w", Q, 5, 30)  # replaces the record the backup also names
    assert driver.complete(got.token)
    for _ in range(5):  # rewrites of other records, which would pick a spare up
        driver.push([new()])
        (got,) = driver.reserve("w", Q, 5, 30)
        assert driver.complete(got.token)
    assert backup.read_bytes() == saved
    assert decode(saved, job.id)["state"] == State.PENDING.value


def _child_has_no_spares(driver: FileDriver, out: Any) -> None:
    out.put(driver._store._spares.open() is None)


def test_a_forked_process_does_not_reuse_its_parents_spares(driver: FileDriver) -> None:
    driver.push([new() for _ in range(3)])
    for job in driver.reserve("w", Q, 3, 30):
        assert driver.complete(job.token)
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    proc = fork.Process(target=_child_has_no_spares, args=(driver, out))
    proc.start()
    proc.join(timeout=60)
    assert out.get(timeout=5) is True


def test_a_drain_makes_no_getpid_call(driver: FileDriver, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    """The fork checks of the locks, spares and journal read the process id cached at fork
    (``_files_pid``), not ``os.getpid()``: that was a system call about 12 times per job."""
    driver.push([new() for _ in range(20)])
    calls = Counter[str]()
    real = os.getpid

    def counted() -> int:
        calls["getpid"] += 1
        return real()

    monkeypatch.setattr(os, "getpid", counted)
    while got := driver.reserve("w", Q, 5, 30):
        assert all(driver.complete_many([(job.token, None) for job in got]))
    assert calls["getpid"] == 0


def test_a_forked_child_takes_job_locks_of_its_own(driver: FileDriver) -> None:
    """A child forked while its parent holds a job's lock does not share it (inherited
    descriptors share the parent's ``flock``): the child's cached process id is its own, so
    it opens its own lock file descriptions and finds the lock taken."""
    job = new()
    driver.push([job])
    lock = driver._store.job_lock(job.id)
    read, write = os.pipe()
    with lock.hold():
        pid = os.fork()
        if pid == 0:  # the child: report whether it could take the lock, then leave
            code = 1
            try:
                with driver._store.job_lock(job.id).hold(blocking=False) as got:
                    os.write(write, b"taken" if got else b"busy")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    os.close(write)
    assert os.read(read, 16) == b"busy"
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_standby_lists_the_ready_directory_at_most_once_a_second(
        driver: FileDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker waiting to start warms every 0.2 s while the worker it replaces empties the
    directory; its first reservation lists again anyway, so warming lists once per
    ``_WARM_NS`` at most (a listing of a large backlog costs ~20 ms of CPU beside the running
    worker)."""
    driver.push([new() for _ in range(10)])
    other = _open(driver.root.as_uri())  # another worker, taking jobs meanwhile
    listed: list[str] = []
    real = os.listdir

    def counted(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(files_index, "_WARM_NS", 3600 * 10**9)  # however slow the host
    try:
        monkeypatch.setattr(os, "listdir", counted)
        driver.warm(Q)
        for _ in range(3):
            monkeypatch.setattr(os, "listdir", real)
            assert other.reserve("other", Q, 1, 30)
            monkeypatch.setattr(os, "listdir", counted)
            driver.warm(Q)
        assert sum(p.endswith("ready") for p in listed) == 1, listed
        got = driver.reserve("w", Q, 10, 30)  # it lists again: none of those taken is tried
        assert len(got) == 7
        assert sum(p.endswith("ready") for p in listed) == 2
    finally:
        other.close()


def test_claims_after_warming_open_no_lock_file(driver: FileDriver,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``warm`` opens every job lock's file, so a standby's first claims open none."""
    driver.push([new() for _ in range(50)])
    driver.warm(Q)
    opened: list[str] = []
    real = os.open

    def counted(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counted)
    got = driver.reserve("w", Q, 50, 30)
    assert len(got) == 50
    assert all(driver.complete_many([(job.token, None) for job in got]))
    assert not [p for p in opened if "/locks/" in p and p.endswith(".lock")
                and not p.endswith("counts.lock")]


def test_writes_after_warming_make_no_new_file(driver: FileDriver,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``warm`` stocks empty spare files, so a standby's first claims and completions reuse
    inodes instead of making one per record write (up to four of them, on a new process)."""
    driver.push([new() for _ in range(10)])
    driver.warm(Q)
    created: list[str] = []
    real = os.open

    def counted(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append(str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counted)
    got = driver.reserve("w", Q, 10, 30)
    assert len(got) == 10
    assert all(driver.complete_many([(job.token, None) for job in got]))
    assert [p for p in created if p.endswith(".tmp")] == []
    monkeypatch.setattr(os, "open", real)
    driver.close()  # its spares go with it
    assert [n for n in os.listdir(driver.root / "tmp") if n.endswith(".tmp")] == []
