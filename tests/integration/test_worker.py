"""The worker against a real SQLite store: every behaviour of issue #2's list."""

from __future__ import annotations

import pathlib
import time
from datetime import UTC, datetime

import pytest

from taskqueue import (
    PayloadError,
    PayloadTooLarge,
    Priority,
    QueueManager,
    State,
    generate_key,
)
from taskqueue.jobs.model import LeaseToken
from taskqueue.observability import events as ev
from taskqueue.worker import runner as runner_module
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain, final, ledger_lines


def test_function_task_runs_and_stores_result(manager: QueueManager) -> None:
    job_id = t.add.delay(2, 3)
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.COMPLETED and record.attempts == 1
    assert manager.result(job_id) == 5
    assert record.completed_at is not None and record.started_at is not None


def test_class_job_runs_with_its_defaults(manager: QueueManager, ledger: str) -> None:
    job_id = manager.push(t.SendReport({"ledger": ledger, "to": "ops@example.com"},
                                       priority=Priority.HIGH, tags=["important"]))
    record = final(manager, job_id)
    assert (record.queue_name, record.priority, record.max_attempts) == ("reports", 10, 2)
    assert record.tags == ("important",)
    drain(manager, queues=["reports"])
    assert manager.result(job_id) == {"sent_to": "ops@example.com"}


def test_async_task_and_async_class_job(manager: QueueManager, ledger: str) -> None:
    a = t.async_mark.delay(ledger, 0.01)
    b = manager.push(t.AsyncReport({"ledger": ledger}))
    drain(manager)
    assert manager.result(a) == "async-ok" and manager.result(b) == "async-class-ok"


def test_priority_order_then_fifo(manager: QueueManager, ledger: str) -> None:
    order = [("low1", 1), ("norm1", 5), ("urgent", 20), ("low2", 1), ("norm2", 5)]
    ids = {t.mark.push([ledger], priority=p): label for label, p in order}
    drain(manager, prefetch=1)
    ran = [ids[line[0]] for line in ledger_lines(ledger)]
    assert ran == ["urgent", "norm1", "norm2", "low1", "low2"]


def test_delayed_job_is_not_run_early(manager: QueueManager, ledger: str) -> None:
    job_id = t.mark.push([ledger], delay=1.5)
    soon = t.mark.push([ledger], eta=datetime.now(UTC))
    from taskqueue import Worker, WorkerOptions

    worker = Worker(manager, WorkerOptions())
    assert worker.run_once() == 1
    assert final(manager, soon).state == State.COMPLETED
    assert worker.run_once() == 0 and final(manager, job_id).state == State.PENDING
    time.sleep(1.6)
    assert worker.run_once() == 1
    assert final(manager, job_id).state == State.COMPLETED


def test_retries_with_backoff_then_dead_letter_with_traceback(manager: QueueManager,
                                                               ledger: str) -> None:
    failures: list[ev.Event] = []
    manager.events.subscribe(failures.append, ev.JOB_FAILED)
    job_id = t.always_fails.delay(ledger)
    started = time.monotonic()
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.FAILED and record.attempts == 2
    assert "Traceback" in (record.exception or "") and "KeyError: 'missing-thing'" in (
        record.exception or "")
    assert time.monotonic() - started >= 0.1, "the retry waited for its backoff"
    assert len(ledger_lines(ledger)) == 2
    assert [e.job_id for e in failures] == [job_id]


def test_flaky_job_succeeds_on_a_later_attempt(manager: QueueManager, ledger: str) -> None:
    job_id = t.flaky.delay(ledger, 3)
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.COMPLETED and record.attempts == 3
    assert [int(line[1]) for line in ledger_lines(ledger)] == [1, 2, 3]


def test_non_retryable_error_goes_straight_to_dlq(manager: QueueManager, ledger: str) -> None:
    job_id = t.permanent.delay(ledger)
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.FAILED and record.attempts == 1
    assert "NonRetryable: this can never work" in (record.exception or "")


def test_manual_retry_from_dead_letter_queue(manager: QueueManager, ledger: str) -> None:
    job_id = t.permanent.delay(ledger)
    drain(manager)
    assert manager.retry(job_id)
    assert final(manager, job_id).state == State.PENDING
    drain(manager)
    assert final(manager, job_id).state == State.FAILED
    assert len(ledger_lines(ledger)) == 2


def test_cancelled_pending_job_never_runs(manager: QueueManager, ledger: str) -> None:
    job_id = t.mark.delay(ledger)
    assert manager.cancel(job_id, "changed my mind")
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.CANCELLED and record.exception == "changed my mind"
    assert ledger_lines(ledger) == []


@pytest.mark.parametrize("task_name", ["slow", "async_slow"])
def test_soft_timeout_lets_the_job_clean_up(manager: QueueManager, ledger: str,
                                            task_name: str) -> None:
    job_id = getattr(t, task_name).delay(ledger)
    started = time.monotonic()
    drain(manager)
    assert time.monotonic() - started < 10
    record = final(manager, job_id)
    assert record.state == State.FAILED
    assert "timed out after 1s" in (record.exception or "")
    assert [line[-1] for line in ledger_lines(ledger)] == ["cleaned-up"]


def test_worker_timeout_flag_applies_only_to_jobs_without_their_own(
        manager: QueueManager, ledger: str) -> None:
    flag = ledger + ".flag"
    job_id = t.hang_until_file.delay(ledger, flag)
    from taskqueue import Worker, WorkerOptions

    Worker(manager, WorkerOptions(timeout=0.5)).run_once()
    record = final(manager, job_id)
    assert record.state == State.RETRYING and "timed out after" in (record.exception or "")


def test_undecryptable_payload_is_dead_lettered_and_worker_lives(sqlite_url: str,
                                                                 ledger: str) -> None:
    sender = QueueManager.from_url(sqlite_url, encryption_key=generate_key())
    bad = t.mark.push([ledger], manager=sender)
    worker_side = QueueManager.from_url(sqlite_url, encryption_key=generate_key())
    good = t.mark.push([ledger], manager=worker_side)
    drain(worker_side)
    record = final(worker_side, bad)
    assert record.state == State.FAILED and record.attempts == 1
    assert "DecryptionError" in (record.exception or "")
    assert "not in the key ring" in (record.exception or "")
    assert final(worker_side, good).state == State.COMPLETED
    sender.close()
    worker_side.close()


def test_rotated_key_still_runs_old_jobs(sqlite_url: str, ledger: str) -> None:
    old, new = generate_key(), generate_key()
    before = QueueManager.from_url(sqlite_url, encryption_key=old)
    job_id = t.add.push([20, 22], manager=before)
    after = QueueManager.from_url(sqlite_url, encryption_key=new, encryption_previous_keys=old)
    drain(after)
    assert after.result(job_id) == 42
    assert final(after, job_id).result.startswith("tq1:"), "results are encrypted too"
    before.close()
    after.close()


def test_unknown_task_is_dead_lettered(manager: QueueManager) -> None:
    from taskqueue.jobs.definition import Call

    job_id = manager.push(Call("nobody.registered.this", {"args": []}, {}))
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.FAILED and "no task named 'nobody.registered.this'" in (
        record.exception or "")


def test_non_json_arguments_are_refused_at_enqueue(manager: QueueManager) -> None:
    with pytest.raises(PayloadError, match=r"args\[0\] is a datetime"):
        t.add.delay(datetime.now(UTC), 1)
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        t.add.delay(1)  # type: ignore[call-arg]
    assert manager.search() == []


def test_oversize_payload_is_refused(sqlite_url: str) -> None:
    small = QueueManager.from_url(sqlite_url, max_payload=2048)
    import os

    with pytest.raises(PayloadTooLarge, match="limit is 2,048"):
        t.add.push([os.urandom(4000).hex(), 1], manager=small)
    small.close()


def test_progress_is_stored(manager: QueueManager) -> None:
    job_id = t.progress.delay(4)
    drain(manager)
    assert final(manager, job_id).progress == 100


def test_snooze_does_not_use_an_attempt(manager: QueueManager, ledger: str) -> None:
    job_id = t.snooze_once.delay(ledger)
    drain(manager)
    record = final(manager, job_id)
    assert record.state == State.COMPLETED and record.attempts == 1
    assert len(ledger_lines(ledger)) == 2


def test_idempotency_key_returns_the_same_job(manager: QueueManager) -> None:
    first = t.add.push([1, 1], idempotency_key="once")
    assert t.add.push([1, 1], idempotency_key="once") == first
    assert len(manager.search()) == 1


def test_events_follow_the_lifecycle(manager: QueueManager) -> None:
    seen: list[str] = []
    manager.events.subscribe(lambda e: seen.append(e.kind))
    t.add.delay(1, 2)
    drain(manager)
    assert seen[:4] == [ev.JOB_ENQUEUED, ev.JOB_STARTED, ev.JOB_RAN, ev.JOB_COMPLETED]


def test_unknown_option_is_rejected_with_a_hint() -> None:
    from taskqueue import ConfigError, task

    with pytest.raises(ConfigError, match="did you mean 'max_attempts'"):
        @task(max_attempt=3)
        def nope() -> None: ...


def test_a_failed_background_acknowledgement_leaves_no_job_held(manager: QueueManager,
                                                                ledger: str) -> None:
    """The ack thread flushes a fast job's completion while a slow job runs; if that flush
    raises, the fast job must not stay held (its lease renewed forever, stuck as running): it
    is let go, its lease expires, and it runs again."""
    import threading

    from taskqueue import Worker, WorkerOptions

    t.add.delay(0, 0)  # measured first: the worker then reserves the next two together
    quick = t.add.delay(1, 2)
    slow = t.mark.delay(ledger, 1.5)
    worker = Worker(manager, WorkerOptions(lease_seconds=1.0, maintenance_interval=0.2,
                                           poll_interval=0.05))
    real, failures = manager.driver.complete_many, []

    def complete_many(items: list[object]) -> list[bool]:
        if not failures and threading.current_thread().name == "taskqueue-acks":
            failures.append(len(items))
            raise RuntimeError("acknowledgement failed")
        return real(items)  # type: ignore[arg-type]

    worker.driver.complete_many = complete_many  # type: ignore[method-assign]
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if final(manager, quick).state == State.COMPLETED \
                    and final(manager, slow).state == State.COMPLETED:
                break
            time.sleep(0.05)
    finally:
        worker.request_stop()
        runner.join(10)
    assert failures == [1], "the ack thread should have tried (and failed) once"
    assert final(manager, slow).state == State.COMPLETED
    assert final(manager, quick).state == State.COMPLETED, \
        "the fast job stayed held by the heartbeat after its acknowledgement failed"


def test_the_worker_acknowledges_with_the_next_reservation_when_it_can(
        tmp_path: pathlib.Path) -> None:
    """A driver offering complete_and_reserve gets each batch's completions with the next
    reservation (one transaction); every job still ends completed, exactly once."""
    from taskqueue.drivers.sqlite import SQLiteDriver
    from taskqueue.worker.runner import Worker, WorkerOptions

    calls: list[int] = []

    class Counting(SQLiteDriver):
        def complete_and_reserve(self, items, *args):  # type: ignore[no-untyped-def]
            calls.append(len(items))
            return super().complete_and_reserve(items, *args)

    driver = Counting(tmp_path / "q.db")
    driver.migrate()
    manager = QueueManager(driver)
    ids = manager.push_many([t.add.call([i, 1], {}) for i in range(250)])
    summary = Worker(manager, WorkerOptions(stop_when_empty=True, prefetch=50)).run()
    assert summary.completed == 250 and summary.lost == 0
    assert sum(calls) <= 250, "no completion is sent twice"
    assert any(n > 0 for n in calls), "completions went with a reservation"
    assert {manager.require(i).state for i in ids} == {State.COMPLETED}
    manager.close()


@pytest.mark.parametrize("combined", [False, True])
def test_an_idle_worker_waits_for_work_while_its_last_completions_are_sent(
        manager: QueueManager, monkeypatch: pytest.MonkeyPatch, combined: bool) -> None:
    """With slow commits, the completions of a batch after which the queue ran dry go out from
    the ack thread: the main thread is already waiting for the next job meanwhile, instead of
    waiting for their commit first. With complete_and_reserve too (SQLite, PostgreSQL): there
    is no next batch for them to ride with."""
    import threading

    from taskqueue import Worker, WorkerOptions

    monkeypatch.setattr(runner_module, "ACK_DELAY", 60.0)  # "at once" must not mean "aged"
    first = t.add.delay(0, 0)  # measured first: the worker then asks for more than one job
    last = t.add.delay(1, 2)
    worker = Worker(manager, WorkerOptions(poll_interval=0.05))
    if not combined:
        worker._combined = None  # as on a driver without complete_and_reserve (MySQL, files)
    worker._ack_seconds = 1.0  # whose commits are slow
    real_complete, real_wait = worker.driver.complete_many, worker.driver.wait_for_work
    sending, waiting, seen = threading.Event(), threading.Event(), []

    def complete_many(items: list[tuple[LeaseToken, str | None]]) -> list[bool]:
        if any(token.job_id == last for token, _ in items):
            sending.set()
            waiting.wait(10)  # released once the main thread waits for work (not if it is us)
            seen.append((threading.current_thread().name, waiting.is_set()))
        return real_complete(items)

    def wait_for_work(queues: list[str], timeout: float) -> None:
        if sending.is_set():
            waiting.set()
        real_wait(queues, timeout)

    worker.driver.complete_many = complete_many  # type: ignore[method-assign]
    worker.driver.wait_for_work = wait_for_work  # type: ignore[method-assign]
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and final(manager, last).state != State.COMPLETED:
            time.sleep(0.05)
    finally:
        worker.request_stop()
        runner.join(10)
    assert seen == [("taskqueue-acks", True)]
    assert {final(manager, i).state for i in (first, last)} == {State.COMPLETED}


@pytest.mark.parametrize("combined", [False, True])
def test_a_dependent_released_by_completions_still_in_flight_runs_before_stop_when_empty(
        manager: QueueManager, combined: bool) -> None:
    """With slow commits the last completions of a dry queue go out from the ack thread. A
    job they release (a dependent) must still be found: ``--stop-when-empty`` does not stop
    while they are on their way, and the worker looks again once they are in. Before, it
    found the queue empty and stopped, leaving the dependent pending (seen through
    ``taskqueue work --stop-when-empty`` on a loaded Redis Cluster)."""
    import threading

    from taskqueue import Worker, WorkerOptions

    first = t.add.delay(0, 0)  # measured first: the worker then asks for more than one job
    parent = t.add.delay(1, 1)
    child = t.add.push([2, 2], manager=manager, depends_on=[parent])
    worker = Worker(manager, WorkerOptions(poll_interval=0.05, stop_when_empty=True))
    if not combined:
        worker._combined = None  # as on a driver without complete_and_reserve (MySQL, files)
    worker._ack_seconds = 1.0  # whose commits are slow: the ack thread sends them
    real_complete = worker.driver.complete_many

    def complete_many(items: list[tuple[LeaseToken, str | None]]) -> list[bool]:
        if threading.current_thread().name == "taskqueue-acks":
            time.sleep(0.3)  # a slow commit, long after the main thread looked again
        return real_complete(items)

    worker.driver.complete_many = complete_many  # type: ignore[method-assign]
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    assert {final(manager, i).state for i in (first, parent, child)} == {State.COMPLETED}


def test_an_idle_worker_acknowledges_with_the_reservation_it_makes_before_waiting(
        backend: str, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One job at a time onto an idle worker whose store acknowledges quickly: the job's
    completion goes with the reservation the worker makes anyway before it waits again (one
    round trip), not in one of its own first (nor from the ack thread), and the job still
    reads completed before the next one is pushed."""
    import threading

    from taskqueue import Worker, WorkerOptions
    from taskqueue.drivers.base import CompletesAndReserves

    manager = QueueManager.from_url(store_url)
    try:
        if not isinstance(manager.driver, CompletesAndReserves):
            pytest.skip(f"{backend} does not offer complete_and_reserve")
        monkeypatch.setattr(runner_module, "ACK_OFFLOAD", 60.0)  # every store is quick here
        worker = Worker(manager, WorkerOptions(poll_interval=0.2))
        calls: list[tuple[str, str]] = []
        for name in ("complete_many", "complete_and_reserve", "reserve", "wait_for_work"):
            def counted(*args: object, _real: object = getattr(worker.driver, name),
                        _name: str = name, **kw: object) -> object:
                calls.append((_name, threading.current_thread().name))
                return _real(*args, **kw)  # type: ignore[operator]
            setattr(worker.driver, name, counted)
        runner = threading.Thread(target=worker.run, daemon=True)
        runner.start()
        try:
            for i in range(3):
                deadline = time.monotonic() + 10
                while not calls or calls[-1][0] != "wait_for_work":   # the worker is idle
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                job = manager.push(t.add.s(i, 1))
                while final(manager, job).state != State.COMPLETED:
                    assert time.monotonic() < deadline, f"job {i} was not acknowledged"
                    time.sleep(0.01)
        finally:
            worker.request_stop()
            runner.join(10)
        assert not any(name == "complete_many" for name, _ in calls), calls
        assert sum(name == "complete_and_reserve" for name, _ in calls) >= 3, calls
        assert {thread for _, thread in calls} == {runner.name}, calls
    finally:
        manager.close()
