"""A standby worker does its first maintenance pass and pause check while it waits (issue #17:
a recycle loses no time to them once it is told to start)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager
from taskqueue.jobs.states import State
from taskqueue.worker.runner import Worker, WorkerOptions
from tests.apps import sample_tasks as t
from tests.backends import URLS, implemented_backends


def counting(obj: Any, name: str, calls: list[str]) -> None:
    """Count the calls of one method of ``obj`` (the real method still runs)."""
    real = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)


def recycled_after_3(manager: QueueManager, *counted: str,
                     **options: Any) -> tuple[Any, list[str]]:
    """Run a worker that recycles after 3 jobs: its summary, and the calls of the ``counted``
    driver verbs with its note that it leaves ("leaving"), in order."""
    calls: list[str] = []

    class Recycling(Worker):
        def request_stop(self, reason: str = "stop requested") -> None:
            calls.append("leaving")
            super().request_stop(reason)

    worker = Recycling(manager, WorkerOptions(queues=["default"], max_jobs=3, **options))
    for name in counted:
        counting(worker.driver, name, calls)
    return worker.run(), calls


def test_warmed_up_worker_reserves_first_and_maintains_at_its_interval(
        manager: QueueManager) -> None:
    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    calls: list[str] = []
    counting(worker.driver, "recover_expired", calls)
    counting(manager, "paused_queues", calls)
    counting(worker.driver, "reserve", calls)
    worker.warm_up()
    assert calls == ["recover_expired", "paused_queues"]
    calls.clear()
    summary = worker.run()
    assert summary.completed == 1
    assert calls[0] == "reserve"  # the loop's first round goes straight to the store's jobs
    assert "recover_expired" not in calls  # next pass after maintenance_interval (5 s)


def test_without_warm_up_the_first_round_reserves_before_its_maintenance_pass(
        manager: QueueManager) -> None:
    """Issue #17 goal 3: lease recovery and the prune (a table scan on some stores) come after
    the first batch, not before the first job."""
    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    calls: list[str] = []
    counting(worker.driver, "recover_expired", calls)
    counting(worker.driver, "reserve", calls)
    assert worker.run().completed == 1
    assert calls[:2] == ["reserve", "recover_expired"]


def test_an_empty_first_reservation_runs_the_maintenance_pass_and_reserves_again(
        manager: QueueManager) -> None:
    """A job whose lease expired while no worker ran is recovered by the first pass and run by
    a --stop-when-empty worker, although the first reservation found nothing ready."""
    job = t.add.delay(1, 2)
    [held] = manager.driver.reserve("dead-worker", ["default"], 1, 30)
    assert held.id == job.id
    with sqlite3.connect(manager.settings.database_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE job_queue SET lease_expires_at = 0 WHERE id = ?", (job.id,))
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    calls: list[str] = []
    counting(worker.driver, "recover_expired", calls)
    counting(worker.driver, "reserve", calls)
    assert worker.run().completed == 1
    assert calls[:3] == ["reserve", "recover_expired", "reserve"]
    assert manager.result(job.id, timeout=5) == 3


@pytest.mark.parametrize("backend", [b for b in ("postgres", "mysql")
                                     if b in implemented_backends()])
def test_a_warmed_up_worker_opens_no_session_for_its_first_reservation(
        backend: str, tmp_path: Path) -> None:
    """A standby has its driver open two sessions while it waits (``WarmsUp``): when it starts,
    the presence thread takes one and the first reservation finds the other, instead of
    opening a session on the path every recycle waits on (tens of ms on a busy machine)."""
    with URLS[backend](tmp_path) as url, QueueManager.from_url(url) as manager:
        manager.push(t.add.s(1, 2))
        worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
        pool = manager.driver._pool  # type: ignore[attr-defined]
        name = "connect" if backend == "postgres" else "_connect"
        opened: list[str] = []
        real = getattr(pool, name)

        def connect(*args: Any) -> Any:
            opened.append(threading.current_thread().name)
            return real(*args)

        setattr(pool, name, connect)
        worker.warm_up()
        opened.clear()
        assert worker.run().completed == 1
        assert "MainThread" not in opened


def supervised(manager: QueueManager, boards: Any, region: int) -> Any:
    from taskqueue.worker.board import StatusPublisher
    from taskqueue.worker.child import SupervisedWorker

    board = StatusPublisher(boards, region)
    worker = SupervisedWorker(manager, WorkerOptions(queues=["default"], stop_when_empty=True),
                              board, -1)
    board.handover = worker.handover
    return worker


def test_a_replacement_takes_over_the_schedule_of_the_worker_it_replaces(
        manager: QueueManager) -> None:
    """Recycling every 1,000 jobs must not bring a maintenance pass, a prune attempt, a pause
    check and a one-job first reservation with every new worker process: the replacement
    adopts what its predecessor published on the status board."""
    from taskqueue.worker.board import Boards

    boards = Boards(4)
    try:
        for _ in range(5):
            t.add.delay(1, 2)
        old = supervised(manager, boards, 0)
        assert old.run().completed == 5
        old.board.publish()
        new = supervised(manager, boards, 1)
        calls: list[str] = []
        counting(new.driver, "recover_expired", calls)
        counting(new.driver, "lock_acquire", calls)
        counting(manager, "paused_queues", calls)
        sizes: list[int] = []
        real_reserve = new.driver.reserve

        def reserve(worker_id: str, queues: Any, size: int, lease: float) -> Any:
            sizes.append(size)
            return real_reserve(worker_id, queues, size, lease)

        new.driver.reserve = reserve
        new.adopt()
        for _ in range(3):
            t.add.delay(1, 2)
        assert new.run().completed == 3
        assert calls == []  # all done moments ago by the old worker
        assert sizes[0] > 1  # the jobs' measured duration sizes the first reservation
        lone = supervised(manager, Boards(4), 0)  # a first worker: nothing to adopt
        lone.adopt()
        assert lone._next_maintenance == 0.0 and lone._avg_duration is None
    finally:
        boards.close()


def test_warm_up_builds_the_files_ready_index_before_the_first_reservation(
        tmp_path: Any, monkeypatch: Any) -> None:
    """On files, a standby lists the ready directory while it waits (``Warms``), so its first
    reservation after SIGCONT does not list a backlog (issue #17: a recycle's lost time)."""
    import time

    from taskqueue.drivers import _files_index
    from taskqueue.drivers.base import Warms

    manager = QueueManager.from_url(f"file://{tmp_path}/store")
    try:
        for i in range(20):
            t.add.push([i, i], manager=manager)
        worker = Worker(manager, WorkerOptions(queues=["default"], max_jobs=1))
        assert isinstance(worker.driver, Warms)
        calls: list[str] = []
        counting(worker.driver, "warm", calls)
        time.sleep(0.06)  # past the index's racy window since the last push
        worker.warm_up()
        assert calls == ["warm"]
        listed: list[str] = []
        real = _files_index.os.listdir
        monkeypatch.setattr(_files_index.os, "listdir",
                            lambda path: listed.append(str(path)) or real(path))
        assert worker.run().processed == 1
        # the first reservation used the index the warm-up built
        assert [p for p in listed if p.endswith("/ready")] == []
    finally:
        manager.close()


def test_a_worker_publishes_its_schedule_as_soon_as_its_maintenance_pass_ran(
        manager: QueueManager) -> None:
    """A standby reads the schedule off the board of the worker it will replace. A life of
    1,000 fast jobs (80 ms) can be shorter than the board thread's round (0.2 s): waiting for
    that round, the standby read the schedule from before the pass, ran the pass again, and
    its writes queued with the running worker's reservations (SQLite's write lock)."""
    import time

    from taskqueue.worker.board import Boards

    boards = Boards(4)
    old = supervised(manager, boards, 0)  # no board thread: only what it publishes itself
    old.options.stop_when_empty = False
    old.options.poll_interval = 0.05
    runner = threading.Thread(target=old.run)
    try:
        t.add.delay(1, 2)
        runner.start()
        deadline = time.monotonic() + 5
        handovers: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not handovers:
            time.sleep(0.01)
            handovers = [h for h in boards.handovers(1) if h.get("maintenance")]
        # its pass ran after the first batch, and the board says so while it still runs
        assert handovers and handovers[0]["maintenance"] > time.monotonic()
        standby = supervised(manager, boards, 1)
        standby.adopt()
        calls: list[str] = []
        counting(standby.driver, "recover_expired", calls)
        counting(standby.driver, "lock_acquire", calls)
        standby.warm_up()
        assert calls == []
    finally:
        old.request_stop()
        if runner.is_alive():
            runner.join(30)
        boards.close()


def test_the_status_entry_is_written_after_the_first_round(manager: QueueManager) -> None:
    """The presence thread's first write (the worker's entry in the registry) waits for the
    worker's first round: at a recycle it does not race the replacement's first reservation
    for the store and the GIL."""
    import time

    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], poll_interval=0.05))
    order: list[str] = []
    real_reserve, real_put = worker.driver.reserve, worker.driver.registry_put

    def reserve(*args: Any) -> Any:
        order.append("reserve")
        time.sleep(0.2)  # long enough for a thread started before it to write
        batch = real_reserve(*args)
        order.append("reserved")
        return batch

    def registry_put(kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "worker":
            order.append("entry")
        return real_put(kind, *args, **kwargs)

    worker.driver.reserve = reserve  # type: ignore[method-assign]
    worker.driver.registry_put = registry_put  # type: ignore[method-assign]
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while "entry" not in order and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.request_stop()
        runner.join(30)
    assert worker.summary.completed == 1
    assert order.index("entry") > order.index("reserved")


def test_a_standby_starts_no_thread_between_its_signal_and_its_first_reservation(
        manager: QueueManager) -> None:
    """A standby starts every thread while it waits (``start_threads``), the presence thread
    included: after its signal, ``run`` goes straight to the reservation. Held, the presence
    thread does not list the standby among the workers however long it waits (here longer than
    the thread's own first wait), and a dismissed standby stops it."""
    import time

    from taskqueue.worker.presence import REFRESH, WORKERS

    def listed(worker: Worker) -> bool:
        return any(e.get("id") == worker.worker_id
                   for e in manager.driver.registry_list(WORKERS))

    t.add.delay(1, 2)
    dismissed = Worker(manager, WorkerOptions(queues=["default"]))
    dismissed.start_threads()
    standby = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    standby.start_threads()
    waiting = set(threading.enumerate())
    time.sleep(REFRESH + 0.3)
    assert not listed(standby) and not listed(dismissed)
    dismissed.stop_threads()
    thread = dismissed.presence._thread
    assert thread is not None and not thread.is_alive()
    started: list[set[threading.Thread]] = []
    real_reserve = standby.driver.reserve

    def reserve(*args: Any) -> Any:
        if not started:
            started.append(set(threading.enumerate()) - waiting)
        return real_reserve(*args)

    standby.driver.reserve = reserve  # type: ignore[method-assign]
    standby.run()
    assert standby.summary.completed == 1
    assert started == [set()], f"threads started after the signal: {started}"


def test_sqlite_warm_up_starts_the_checkpoint_thread(manager: QueueManager) -> None:
    """SQLite's ``WarmsUp``: a standby starts the checkpoint thread while it waits, instead of
    its first commit starting it on the way of its first jobs."""
    from taskqueue.drivers.base import WarmsUp
    from taskqueue.drivers.sqlite import SQLiteDriver

    driver = SQLiteDriver(manager.settings.database_url.removeprefix("sqlite:///"))
    try:
        assert isinstance(driver, WarmsUp)
        checkpointer = driver._checkpointer
        assert checkpointer is not None and checkpointer._thread is None  # no commit yet
        driver.warm_up(2)
        thread = checkpointer._thread
        assert thread is not None and thread.is_alive()
        driver.warm_up(2)
        assert checkpointer._thread is thread  # once
    finally:
        driver.close()


def test_sqlite_warm_reads_what_the_first_reservation_claims_without_waiting(
        manager: QueueManager) -> None:
    """SQLite's ``Warms``: a standby reads ahead (once) the rows its first reservation will
    claim, so a process just forked does not fill its memory on the way of that reservation;
    a read, so it neither waits for nor blocks the worker writing meanwhile."""
    import time

    from taskqueue.drivers.base import Warms
    from taskqueue.drivers.sqlite import SQLiteDriver

    t.add.delay(1, 2)
    path = manager.settings.database_url.removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    driver = SQLiteDriver(path, busy_timeout=20.0)
    statements: list[str] = []
    driver._conn.set_trace_callback(statements.append)
    writer.execute("BEGIN IMMEDIATE")  # a worker in the middle of a write
    try:
        assert isinstance(driver, Warms)
        started = time.monotonic()
        driver.warm(["default"])
        driver.warm(["default"])
        waited = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        driver.close()
    reads = [s for s in statements if "FROM job_queue" in s]
    assert len(reads) == 1 and "queue_name IN ('default')" in reads[0]
    assert waited < 10, "the read waited for the writer's lock"


def test_a_warmed_up_worker_reads_no_queue_limits_on_its_first_job(
        manager: QueueManager) -> None:
    """The limit middleware keep the queue limits for 5 s and read them on a worker's first
    job: two store round trips on the first job of every recycled worker. A standby reads
    them while it waits (``Middleware.warm_up``)."""
    from taskqueue.scheduling.ratelimit import QUEUE_LIMITS

    t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(queues=["default"], stop_when_empty=True))
    kinds: list[str] = []
    real = worker.driver.registry_list

    def registry_list(kind: str, *args: Any, **kwargs: Any) -> Any:
        kinds.append(kind)
        return real(kind, *args, **kwargs)

    worker.driver.registry_list = registry_list  # type: ignore[method-assign]
    worker.warm_up()
    assert QUEUE_LIMITS in kinds
    kinds.clear()
    assert worker.run().completed == 1
    assert QUEUE_LIMITS not in kinds


def test_a_recycling_worker_writes_nothing_to_the_store_after_it_says_it_leaves(
        manager: QueueManager) -> None:
    """Issue #17: the moment a recycled worker says it leaves, its replacement starts to
    reserve. Its registry entry and its last statistics are written before that, so none of
    its writes comes between the replacement's reservations (SQLite has one writer at a time,
    and a writer that finds the lock taken sleeps 1, 2, 5 ms and more)."""
    from taskqueue.observability.stats import StatsRecorder

    for _ in range(5):
        t.add.delay(1, 2)
    StatsRecorder.install(manager)  # as a `taskqueue work` worker has
    summary, calls = recycled_after_3(manager, "registry_put", "registry_remove")
    assert summary.completed == 3
    assert "max-jobs" in summary.stop_reason
    leaving = calls.index("leaving")
    assert calls[leaving + 1:] == []  # nothing written after the note
    # written before it: the status entry (and pause switch) removed, the statistics stored
    assert calls[:leaving].count("registry_remove") == 2
    assert "registry_put" in calls[:leaving]
    assert manager.driver.registry_list("worker") == []


def test_a_recycling_worker_on_a_store_without_a_write_lock_says_it_leaves_first(
        tmp_path: Path) -> None:
    """Issue #17: on the files store no write waits for another process's, so a recycling
    worker says it leaves before it settles its last completions and registry entries: its
    replacement claims its first batch meanwhile instead of after them. Every job it ran is
    still acknowledged, and its entries are gone when it returns."""
    from taskqueue.observability.stats import StatsRecorder

    files = QueueManager.from_url(f"file://{tmp_path / 'store'}")
    try:
        for _ in range(5):
            files.push(t.add.s(1, 2))
        StatsRecorder.install(files)
        summary, calls = recycled_after_3(files, "complete_many", "registry_remove")
        assert summary.completed == 3
        assert "max-jobs" in summary.stop_reason
        leaving = calls.index("leaving")
        assert "complete_many" in calls[leaving + 1:]  # the last completions follow the note
        assert "registry_remove" in calls[leaving + 1:]
        counts = files.driver.stats()["default"].counts
        assert (counts[State.COMPLETED], counts[State.PENDING]) == (3, 2)
        assert files.driver.registry_list("worker") == []
    finally:
        files.close()


def test_a_recycling_worker_that_stops_when_empty_settles_before_it_leaves(
        tmp_path: Path) -> None:
    """With ``stop_when_empty`` the replacement must see what the last completions release
    (dependents) before it calls the queue empty, so even on the files store they are settled
    before the note that the worker leaves."""
    files = QueueManager.from_url(f"file://{tmp_path / 'store'}")
    try:
        for _ in range(5):
            files.push(t.add.s(1, 2))
        summary, calls = recycled_after_3(files, "complete_many", stop_when_empty=True)
        assert summary.completed == 3
        assert calls.index("complete_many") < calls.index("leaving")
        assert "complete_many" not in calls[calls.index("leaving") + 1:]
    finally:
        files.close()
