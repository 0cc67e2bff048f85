"""SQLite-only behaviour: the write-ahead log is checkpointed off the committing thread."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from taskqueue.drivers._sqlite_wake import Doorbell
from taskqueue.drivers.sqlite import SQLiteDriver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State


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


def test_a_closing_driver_checkpoints_what_it_wrote(tmp_path: Path) -> None:
    """A short-lived writer (a recycled worker life: ~50 ms) closes before the checkpoint
    thread's first look; its writes must still reach the database file, or no life ever
    checkpoints and a running worker's commit copies the whole WAL back at the threshold.
    Another connection stays open, so SQLite's own checkpoint of a last close does not run."""
    import sqlite3

    db = tmp_path / "queue.db"
    keeper = sqlite3.connect(db)
    driver = SQLiteDriver(db)
    driver.migrate()
    keeper.execute("SELECT count(*) FROM job_queue").fetchall()
    driver.push([NewJob(id=uuid7(), name="t", payload=b"{}", queue_name="last")
                 for _ in range(20)])
    driver.close()
    # immutable: the database file alone, the WAL ignored
    file_only = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        ((count,),) = file_only.execute(
            "SELECT count(*) FROM job_queue WHERE queue_name = 'last'").fetchall()
    finally:
        file_only.close()
        keeper.close()
    assert count == 20, "the jobs pushed before close() are still only in the WAL"


def test_memory_database_has_no_checkpointer() -> None:
    driver = SQLiteDriver(":memory:")
    driver.migrate()
    assert driver._checkpointer is None
    driver.close()


def test_listings_by_state_use_the_partial_indexes(tmp_path: Path) -> None:
    """The listing indexes leave out running jobs (so reserving and completing move a row
    once); a listing by state must still use them, and list running jobs too."""
    from taskqueue.drivers import JobFilter
    from taskqueue.drivers._sql import order_limit
    from taskqueue.drivers.sqlite import _filter
    from taskqueue.jobs.states import State

    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()
    jobs = [NewJob(id=uuid7(), name="t", payload=b"{}", queue_name="a") for _ in range(6)]
    driver.push(jobs)
    running = driver.reserve("w", ["a"], 2, 30)
    driver.complete(running[0].token)

    def plan(criteria: JobFilter) -> str:
        table, where, params = _filter(criteria)
        tail, more = order_limit(criteria)
        rows = driver._conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM {table} WHERE "
                                    f"{where}{tail}", params + more).fetchall()
        return " ".join(r[3] for r in rows)

    assert "idx_state_id" in plan(JobFilter(states=[State.COMPLETED]))
    assert "idx_lease" in plan(JobFilter(states=[State.PROCESSING]))
    assert "idx_queue_id" in plan(JobFilter(queues=["a"]))
    by_state = {s: {j.id for j in driver.search(JobFilter(states=[s], limit=100))}
                for s in (State.PENDING, State.PROCESSING, State.COMPLETED)}
    assert by_state[State.PROCESSING] == {running[1].id}
    assert by_state[State.COMPLETED] == {running[0].id}
    assert len(by_state[State.PENDING]) == 4
    assert driver.count(JobFilter(states=[State.PROCESSING, State.PENDING])) == 5
    stats = driver.stats()["a"].counts
    assert (stats[State.PENDING], stats[State.PROCESSING], stats[State.COMPLETED]) == (4, 1, 1)
    driver.close()


def test_pruning_moves_to_another_worker_soon_after_its_holder_dies(tmp_path: Path) -> None:
    """One worker prunes, under a lock; when it dies the lock lapses after two prune
    intervals (it used to be five minutes whatever the interval)."""
    from taskqueue import QueueManager
    from taskqueue.drivers import JobFilter
    from taskqueue.jobs.states import State
    from taskqueue.worker.runner import Worker, WorkerOptions

    manager = QueueManager.from_url(f"sqlite:///{tmp_path / 'q.db'}",
                                    completed_retention=0.0)
    driver = manager.driver
    options = WorkerOptions(prune_interval=0.3, maintenance_interval=0.1)
    holder = Worker(manager, options)
    holder._maintenance()  # takes the prune lock, then "dies": never runs again
    done = NewJob(id=uuid7(), name="t", payload=b"{}")
    driver.push([done])
    (job,) = driver.reserve("w", ["default"], 1, 30)
    driver.complete(job.token)
    worker = Worker(manager, options)
    worker._maintenance()
    assert driver.count(JobFilter(states=[State.COMPLETED])) == 1, "the lock is still held"
    deadline = time.monotonic() + 5
    while driver.count(JobFilter(states=[State.COMPLETED])) and time.monotonic() < deadline:
        time.sleep(0.1)
        worker._maintenance()
    assert driver.count(JobFilter(states=[State.COMPLETED])) == 0
    assert time.monotonic() < deadline - 3.5, "taken over within about a second"
    manager.close()


def test_synchronous_mode_is_chosen_in_the_url(tmp_path: Path) -> None:
    import pytest

    from taskqueue.drivers import open_driver
    from taskqueue.errors import ConfigError

    full = open_driver(f"sqlite:///{tmp_path / 'a.db'}?synchronous=full")
    assert full._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[attr-defined]
    full.close()
    normal = open_driver(f"sqlite:///{tmp_path / 'b.db'}")
    assert normal._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # type: ignore[attr-defined]
    normal.close()
    with pytest.raises(ConfigError, match="synchronous='off'"):
        open_driver(f"sqlite:///{tmp_path / 'c.db'}?synchronous=off")


def test_a_driver_dropped_without_close_stops_its_checkpointer(tmp_path: Path) -> None:
    """The checkpoint thread (and its connection) must not outlive a driver that was simply
    dropped: a process that opens many short-lived drivers would pile them up."""
    import gc

    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()
    driver.push([NewJob(id=uuid7(), name="t", payload=b"{}")])
    checkpointer = driver._checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    thread = checkpointer._thread
    del driver, checkpointer
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the checkpoint thread outlived its driver"


def test_queries_need_no_sqlite_newer_than_returning() -> None:
    """RETURNING (SQLite 3.35) is the floor; the JSON operators -> and ->> arrived only in
    3.38, so on e.g. Ubuntu 22.04's 3.37 every batched completion failed to parse (and each
    job ran again after its lease). json_extract() says the same thing on older versions."""
    import re

    from taskqueue.drivers.sqlite import Q

    uses = {name for name, sql in Q.items()
            if re.search(r"->", re.sub(r"--[^\n]*", "", sql))}
    assert not uses, f"-> / ->> need SQLite 3.38: {sorted(uses)}"


def _plain() -> NewJob:
    return NewJob(id=uuid7(), name="tests.noop", payload=b"{}", queue_name="q")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_a_push_rings_the_doorbell_of_an_idle_worker(tmp_path: Path) -> None:
    """The wake-up is the doorbell, not the poll: a sleep of 30 s ends at the push."""
    path = str(tmp_path / "q.db")
    bell, pusher = Doorbell(path), SQLiteDriver(path)
    pusher.migrate()
    rung: list[bool] = []
    try:
        assert bell.sleep(0) is False   # now listening, and listed for pushers
        waiter = threading.Thread(target=lambda: rung.append(bell.sleep(30)))
        started = time.monotonic()
        waiter.start()
        time.sleep(0.2)
        pusher.push([_plain()])
        waiter.join(35)
        assert rung == [True] and time.monotonic() - started < 20
    finally:
        bell.close()
        pusher.close()
    assert not os.path.exists(path + "-wake"), "the last doorbell closed leaves no directory"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_a_worker_that_starts_waiting_within_the_same_mtime_tick_is_rung(tmp_path: Path) -> None:
    """A pusher lists the idle workers again only when the directory's mtime moves. On a
    kernel whose file clock ticks every few ms, a worker listed within the same tick as the
    pusher's last look leaves the mtime as it was (simulated here by setting it back): it must
    still be rung, not left to its poll until the directory changes again."""
    path = str(tmp_path / "q.db")
    first, pusher = Doorbell(path), SQLiteDriver(path)
    pusher.migrate()
    second = Doorbell(path)
    try:
        first.sleep(0)
        pusher.push([_plain()])   # the pusher reads the directory: one worker
        stamp = os.stat(path + "-wake").st_mtime_ns
        second.sleep(0)   # a second worker starts waiting in the same tick
        os.utime(path + "-wake", ns=(stamp, stamp))
        first.drain()
        pusher.push([_plain()])
        assert second.sleep(0) is True, "the new worker was not rung"
    finally:
        first.close()
        second.close()
        pusher.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_a_dead_workers_marker_is_removed_by_the_next_push(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    dead, pusher = Doorbell(path), SQLiteDriver(path)
    pusher.migrate()
    try:
        dead.sleep(0)
        assert len(os.listdir(path + "-wake")) == 1
        dead._listener.close()   # type: ignore[union-attr]  # its process died, marker left
        pusher.push([_plain()])
        assert os.listdir(path + "-wake") == []
    finally:
        pusher.close()


def test_a_rolled_back_push_leaves_a_new_queue_counted_by_the_next(tmp_path: Path) -> None:
    """A push makes sure of its queue's counter rows once per driver, after a commit: a push
    rolled back with them (here: the same id twice) does not count, the next one does."""
    from taskqueue.errors import Conflict
    from taskqueue.jobs.states import State

    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()
    twin = NewJob(id=uuid7(), name="t", payload=b"x", queue_name="fresh")
    with pytest.raises(Conflict):
        driver.push([twin, twin])
    for _ in range(3):
        driver.push([NewJob(id=uuid7(), name="t", payload=b"x", queue_name="fresh")])
    assert driver.stats()["fresh"].counts[State.PENDING] == 3
    other = SQLiteDriver(tmp_path / "queue.db")  # another process's driver: its own check
    other.push([NewJob(id=uuid7(), name="t", payload=b"x", queue_name="fresh")])
    assert driver.stats()["fresh"].counts[State.PENDING] == 4
    other.close()
    driver.close()


def test_a_payload_stored_as_text_is_dead_lettered_not_a_worker_crash(tmp_path: Path) -> None:
    """SQLite keeps whatever type a writer gave a column: a payload written as TEXT by some
    other program must fail that job (dead letter queue, with the reason), not make every
    reservation raise, which crashed each worker that reserved it, forever."""
    import sqlite3

    from taskqueue import QueueManager, State, TestJob

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with QueueManager.from_url(url) as manager:
        bad, good = manager.push_many([TestJob({"data": 1}), TestJob({"data": 2})])
        with sqlite3.connect(tmp_path / "queue.db") as conn:
            conn.execute("UPDATE job_queue SET payload = ? WHERE id = ?", ("not bytes", bad))
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)
        dead, done = manager.get(bad), manager.get(good)
        assert dead is not None and done is not None
        assert done.state == State.COMPLETED
        assert dead.state == State.FAILED and "PayloadError" in (dead.exception or "")


def test_the_idle_wait_reads_the_ready_index_not_every_finished_job(tmp_path: Path) -> None:
    """An idle worker asks when the next waiting job falls due on every wait. That question
    must read the ready index: the planner had picked the (queue, id) index and read every job
    the queue ever kept (10-30 ms at 20,000 finished jobs; e2e on SQLite went from ~1 to
    ~4-6 ms after a drain)."""
    import sqlite3

    from taskqueue.drivers import _sql
    from taskqueue.drivers.sqlite import Q

    path = tmp_path / "store.db"
    driver = SQLiteDriver(str(path))
    driver.migrate()
    driver.close()
    sql = Q["next_due"].format(queues=_sql.placeholders(2))
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in
                        conn.execute(f"EXPLAIN QUERY PLAN {sql}", ["default", "emails"]))
    assert "idx_ready" in plan, plan


def test_a_single_plain_push_stores_the_row_the_general_path_stores(tmp_path: Path) -> None:
    """A single push of a job with no key, tags, dependencies or batch is one INSERT of its
    own (no BEGIN/COMMIT around it, no NULL bound): the row, the counters and a refused
    duplicate id are what the general path gives (a push of two jobs takes that path)."""
    import sqlite3

    from taskqueue.errors import Conflict
    from taskqueue.jobs.states import State

    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()

    def job(queue: str = "q") -> NewJob:
        return NewJob(id=uuid7(), name="t", payload=b"\x00body", queue_name=queue, priority=7,
                      max_attempts=4, timeout_seconds=9, delay_seconds=0.0)

    driver.push([job()])   # the queue's counter rows: the general path, once per driver
    single = job()
    plain_statements: list[str] = []
    driver._conn.set_trace_callback(plain_statements.append)
    assert driver.push([single]) == [single.id]
    driver._conn.set_trace_callback(None)
    statements = set(plain_statements)   # (its trigger's statements trace as the INSERT too)
    assert len(statements) == 1 and statements.pop().startswith("INSERT OR FAIL INTO job_queue")
    pair = [job(), job()]
    driver.push(pair)
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM job_queue")}
    fast, general = rows[single.id], rows[pair[0].id]
    for column in ("id", "created_at", "updated_at", "available_at"):
        fast.pop(column), general.pop(column)
    assert fast == general and fast["payload"] == b"\x00body" and fast["tags"] is None
    with pytest.raises(Conflict):
        driver.push([single])   # the same id again
    assert driver.stats()["q"].counts[State.PENDING] == 4
    assert not driver._conn.in_transaction
    driver.close()


def test_prune_reads_finished_jobs_from_their_indexes(tmp_path: Path) -> None:
    """A prune (and its dry-run count) reads ranges of the finished jobs' indexes, never the
    whole table: at 200,000 jobs a prune that found nothing scanned every row under the write
    lock (~45 ms of CPU per call)."""
    import sqlite3

    from taskqueue.drivers.sqlite import Q

    path = tmp_path / "store.db"
    driver = SQLiteDriver(str(path))
    driver.migrate()
    driver.close()
    with sqlite3.connect(path) as conn:
        for name, args in (("prune", (1.0, 2.0, 100)), ("prune_count", (1.0, 2.0))):
            plan = [str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {Q[name]}", args)]
            assert not any(step.startswith("SCAN job_queue") for step in plan), (name, plan)
            assert {"idx_done_completed", "idx_done_failed"} <= set(" ".join(plan).split())


def _open_temp_files() -> list[str]:
    """The SQLite temporary files (``etilqs_*``) this process holds open: SQLite unlinks
    each one as soon as it has opened it, so only the descriptor shows it."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_a_batch_of_completions_writes_no_temporary_file(tmp_path: Path) -> None:
    """Completing a worker's batch of 100 (and reserving the next) in one transaction opens
    no file in the temp directory. The completion statement called functions (json_extract,
    and the full-text index through the exception's trigger), so it could abort half-way and
    kept a statement journal, which SQLite writes to /var/tmp past 64 KiB: one new file per
    batch. Seen from inside: the descriptor is open until the transaction ends, so the
    progress handler, called as the statements run, finds it."""
    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()
    driver.push([_plain() for _ in range(300)])
    batch = driver.reserve("w", ["q"], 100, 60)
    seen: list[str] = []

    def look() -> int:
        seen.extend(_open_temp_files())
        return 0

    driver._conn.set_progress_handler(look, 2000)
    try:
        answers, following = driver.complete_and_reserve(
            [(job.token, None) for job in batch], "w", ["q"], 100, 60)
    finally:
        driver._conn.set_progress_handler(None, 0)
    assert answers == [True] * 100 and len(following) == 100
    assert not seen, f"temporary files opened: {sorted(set(seen))}"
    counts = driver.stats()["q"].counts
    assert (counts[State.COMPLETED], counts[State.PROCESSING]) == (100, 100)
    driver.close()


def test_completions_past_one_statement_and_odd_batch_sizes_are_all_answered(
        tmp_path: Path) -> None:
    """complete_many writes at most COMPLETE_ROWS jobs per statement, each padded to a power
    of two with rows that match nothing: every token is answered, in order, once."""
    from taskqueue.drivers.sqlite import COMPLETE_ROWS
    from taskqueue.jobs.model import LeaseToken

    driver = SQLiteDriver(tmp_path / "queue.db")
    driver.migrate()
    total = 2 * COMPLETE_ROWS + 3
    driver.push([_plain() for _ in range(total)])
    jobs = driver.reserve("w", ["q"], total, 60)
    tokens = [job.token for job in jobs]
    stale = LeaseToken(jobs[5].id, jobs[5].lease_epoch + 1)
    items = [(t, f'"r{i}"') for i, t in enumerate(tokens[:-1])] + [(stale, None)]
    assert driver.complete_many(items) == [True] * (total - 1) + [False]
    assert driver.complete_many([(tokens[-1], None), (tokens[-1], None)]) == [True, False]
    assert driver.get(jobs[7].id).result == '"r7"'  # type: ignore[union-attr]
    assert driver.stats()["q"].counts[State.COMPLETED] == total
    driver.close()
