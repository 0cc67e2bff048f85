"""The driver contract. Every backend runs this suite unchanged; passing it defines "correct"."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from taskqueue.drivers import Driver, JobFilter, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import LeaseToken, NewJob
from taskqueue.jobs.states import State

Q = ["default"]


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def reserve_one(driver: Driver, worker: str = "w1", lease: float = 30.0, queues=Q):
    jobs = driver.reserve(worker, queues, 1, lease)
    assert len(jobs) == 1, jobs
    return jobs[0]


# -- pushing ---------------------------------------------------------------------------------

def test_push_and_get_roundtrip(driver: Driver) -> None:
    payload = bytes(range(256)) * 3
    job = new(payload=payload, queue_name="emails", priority=10, max_attempts=5,
              timeout_seconds=9, tags=("a", "b"), batch_id="batch-1")
    assert driver.push([job]) == [job.id]
    rec = driver.get(job.id)
    assert rec is not None
    assert rec.payload == payload
    assert (rec.queue_name, rec.name, rec.state, rec.priority) == ("emails", "tests.noop",
                                                                    State.PENDING, 10)
    assert (rec.attempts, rec.max_attempts, rec.timeout_seconds) == (0, 5, 9)
    assert rec.tags == ("a", "b") and rec.batch_id == "batch-1"
    assert rec.created_at.tzinfo is not None
    assert abs((rec.created_at - datetime.now(UTC)).total_seconds()) < 5
    assert rec.lease_owner is None and rec.lease_epoch == 0
    assert driver.get("no-such-id") is None


def test_push_many_returns_ids_in_order(driver: Driver) -> None:
    jobs = [new() for _ in range(50)]
    assert driver.push(jobs) == [j.id for j in jobs]
    assert driver.count(JobFilter()) == 50


def test_idempotency_key_returns_existing_job(driver: Driver) -> None:
    first, dup = new(idempotency_key="order-42"), new(idempotency_key="order-42")
    assert driver.push([first]) == [first.id]
    assert driver.push([dup, new()])[0] == first.id
    assert driver.count(JobFilter()) == 2
    assert driver.get(dup.id) is None


def test_migrate_is_idempotent(driver: Driver) -> None:
    assert driver.migrate() == []


# -- reserving -------------------------------------------------------------------------------

def test_priority_then_fifo(driver: Driver) -> None:
    low = [new(priority=1) for _ in range(3)]
    high = [new(priority=20) for _ in range(3)]
    normal = [new(priority=5) for _ in range(3)]
    for job in low + normal + high:
        driver.push([job])
    got = [j.id for j in driver.reserve("w", Q, 100, 30)]
    assert got == [j.id for j in high + normal + low]


def test_reserve_batch_limit_and_queues(driver: Driver) -> None:
    driver.push([new(queue_name="a") for _ in range(5)] + [new(queue_name="b") for _ in range(5)])
    assert len(driver.reserve("w", ["a"], 3, 30)) == 3
    assert len(driver.reserve("w", ["a"], 10, 30)) == 2
    assert driver.reserve("w", ["c"], 10, 30) == []
    assert {j.queue_name for j in driver.reserve("w", ["a", "b"], 10, 30)} == {"b"}


def test_reserve_sets_lease(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver, "worker-7", lease=30)
    assert job.state == State.PROCESSING
    assert job.attempts == 1 and job.lease_epoch == 1 and job.lease_owner == "worker-7"
    assert job.started_at is not None and job.lease_expires_at is not None
    assert 20 < (job.lease_expires_at - driver.now()).total_seconds() <= 31
    assert driver.reserve("other", Q, 10, 30) == []


def test_delayed_job_not_reserved_early(driver: Driver) -> None:
    job = new(delay_seconds=1.0)
    driver.push([job])
    rec = driver.get(job.id)
    assert rec is not None and rec.available_at > rec.created_at + timedelta(seconds=0.9)
    assert driver.reserve("w", Q, 10, 30) == []
    time.sleep(1.2)
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [job.id]


def test_dependencies_hold_until_complete(driver: Driver) -> None:
    parent, other = new(), new()
    child = new(dependencies=(parent.id, other.id))
    orphan = new(dependencies=("missing-job-id",))
    driver.push([parent, other, child, orphan])
    first = driver.reserve("w", Q, 10, 30)
    assert {j.id for j in first} == {parent.id, other.id, orphan.id}
    by_id = {j.id: j for j in first}
    assert driver.complete(by_id[parent.id].token)
    assert driver.reserve("w", Q, 10, 30) == []
    assert driver.complete(by_id[other.id].token)
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id]


def test_dependency_on_already_completed_job(driver: Driver) -> None:
    parent = new()
    driver.push([parent])
    assert driver.complete(reserve_one(driver).token)
    child = new(dependencies=(parent.id,))
    driver.push([child])
    assert reserve_one(driver).id == child.id


def test_concurrent_reservers_never_share_a_job(store_url: str, driver: Driver) -> None:
    total = 300
    driver.push([new() for _ in range(total)])
    seen: list[str] = []
    lock = threading.Lock()

    def consume(worker: str) -> None:
        d = open_driver(store_url)
        try:
            while batch := d.reserve(worker, Q, 7, 30):
                with lock:
                    seen.extend(j.id for j in batch)
                for job in batch:
                    assert d.complete(job.token)
        finally:
            d.close()

    threads = [threading.Thread(target=consume, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    counts = Counter(seen)
    assert len(counts) == total and max(counts.values()) == 1
    assert driver.count(JobFilter(states=(State.COMPLETED,))) == total


# -- settling --------------------------------------------------------------------------------

def test_complete_stores_result_once(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert driver.complete(job.token, '{"ok": true}')
    assert not driver.complete(job.token, "again")
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.COMPLETED
    assert rec.result == '{"ok": true}' and rec.completed_at is not None
    assert rec.lease_owner is None


def test_settle_with_wrong_epoch_is_rejected(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    stale = LeaseToken(job.id, job.lease_epoch - 1)
    assert not driver.complete(stale)
    assert not driver.fail(stale, "x", None)
    assert not driver.release(stale)
    assert not driver.set_progress(stale, 50)
    assert driver.get(job.id).state == State.PROCESSING  # type: ignore[union-attr]


def test_fail_with_retry_then_rerun(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert driver.fail(job.token, "ValueError: boom", retry_in=1.0)
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.RETRYING and rec.exception == "ValueError: boom"
    assert driver.reserve("w", Q, 10, 30) == []
    time.sleep(1.2)
    again = reserve_one(driver)
    assert again.id == job.id and again.attempts == 2 and again.lease_epoch == 2


def test_fail_without_retry_dead_letters(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert driver.fail(job.token, "Traceback ...\nKeyError: 'x'", retry_in=None)
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.FAILED and rec.failed_at is not None
    assert "KeyError" in (rec.exception or "")
    assert driver.reserve("w", Q, 10, 30) == []


def test_release_refunds_the_attempt(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert driver.release(job.token)
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.PENDING and rec.attempts == 0
    assert reserve_one(driver).attempts == 1


def test_release_with_delay(driver: Driver) -> None:
    driver.push([new()])
    assert driver.release(reserve_one(driver).token, delay_seconds=30)
    assert driver.reserve("w", Q, 10, 30) == []


def test_release_records_the_reason(driver: Driver) -> None:
    job = new()
    driver.push([job])
    first = reserve_one(driver)
    driver.fail(first.token, "ValueError: first try", retry_in=0)
    assert driver.release(reserve_one(driver).token, 0, "rate limit 10/s reached")
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.PENDING and rec.attempts == 1
    assert rec.exception == "rate limit 10/s reached"
    assert driver.release(reserve_one(driver).token)
    assert driver.get(job.id).exception == "rate limit 10/s reached"  # type: ignore[union-attr]


def test_progress(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert driver.set_progress(job.token, 42.5)
    assert driver.get(job.id).progress == 42.5  # type: ignore[union-attr]


# -- leases ----------------------------------------------------------------------------------

def test_expired_lease_is_recovered_and_fenced(driver: Driver) -> None:
    driver.push([new(max_attempts=3)])
    zombie = reserve_one(driver, "zombie", lease=1)
    assert driver.recover_expired() == []
    time.sleep(1.3)
    assert driver.recover_expired() == [zombie.id]
    rec = driver.get(zombie.id)
    assert rec is not None and rec.state == State.RETRYING and "zombie" in (rec.exception or "")
    fresh = reserve_one(driver, "fresh")
    assert fresh.lease_epoch == zombie.lease_epoch + 1 and fresh.attempts == 2
    assert not driver.complete(zombie.token), "a stale lease must not complete the job"
    assert not driver.fail(zombie.token, "late", None)
    assert driver.complete(fresh.token)


def test_expired_lease_with_spent_attempts_dead_letters(driver: Driver) -> None:
    driver.push([new(max_attempts=1)])
    job = reserve_one(driver, lease=1)
    time.sleep(1.3)
    assert driver.recover_expired() == [job.id]
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.FAILED and rec.failed_at is not None


def test_heartbeat_extends_reports_cancel_and_loss(driver: Driver) -> None:
    driver.push([new(), new(), new()])
    a, b, c = driver.reserve("w", Q, 3, 2)
    time.sleep(1.0)
    assert driver.cancel(b.id, "cancelled by test")
    result = driver.heartbeat("w", [a.token, b.token, LeaseToken(c.id, 99)], 30)
    assert result.extended == {a.id}
    assert result.cancelled == {b.id}
    assert result.lost == {c.id}
    time.sleep(1.3)
    assert driver.recover_expired() == [c.id]  # a was extended, b is cancelled
    rec = driver.get(a.id)
    assert rec is not None and rec.state == State.PROCESSING


# -- managing --------------------------------------------------------------------------------

def test_cancel(driver: Driver) -> None:
    pending, running = new(), new(priority=50)
    driver.push([pending, running])
    job = reserve_one(driver)
    assert job.id == running.id
    assert driver.cancel(pending.id, "not needed")
    rec = driver.get(pending.id)
    assert rec is not None and rec.state == State.CANCELLED and rec.exception == "not needed"
    assert driver.reserve("w", Q, 10, 30) == []
    assert driver.cancel(running.id, "stop")
    assert not driver.complete(job.token)
    assert not driver.cancel(running.id, "again")
    assert not driver.cancel("missing", "x")


def test_cancel_completed_is_refused(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    driver.complete(job.token)
    assert not driver.cancel(job.id, "late")
    assert driver.get(job.id).state == State.COMPLETED  # type: ignore[union-attr]


def test_manual_retry_from_dead_letter(driver: Driver) -> None:
    driver.push([new()])
    job = reserve_one(driver)
    assert not driver.retry(job.id), "a running job cannot be retried"
    driver.fail(job.token, "boom", None)
    assert driver.retry(job.id)
    rec = driver.get(job.id)
    assert rec is not None and rec.state == State.PENDING and rec.attempts == 0
    assert reserve_one(driver).id == job.id
    assert not driver.retry("missing")


def test_set_priority_reorders(driver: Driver) -> None:
    a, b = new(), new()
    driver.push([a, b])
    assert driver.set_priority(b.id, 100)
    assert reserve_one(driver).id == b.id


def test_delete(driver: Driver) -> None:
    job = new()
    driver.push([job])
    assert driver.delete(job.id)
    assert driver.get(job.id) is None
    assert not driver.delete(job.id)


def test_search_filters(driver: Driver) -> None:
    jobs = [new(queue_name="q1", name="t.a", tags=("vip",), batch_id="b1"),
            new(queue_name="q1", name="t.b"),
            new(queue_name="q2", name="t.a", tags=("other",))]
    driver.push(jobs)
    failed = reserve_one(driver, queues=["q2"])
    driver.fail(failed.token, "ZeroDivisionError: division by zero", None)

    def ids(**kw: object) -> set[str]:
        return {j.id for j in driver.search(JobFilter(**kw))}  # type: ignore[arg-type]

    assert ids(queues=("q1",)) == {jobs[0].id, jobs[1].id}
    assert ids(names=("t.a",)) == {jobs[0].id, jobs[2].id}
    assert ids(tag="vip") == {jobs[0].id}
    assert ids(batch_id="b1") == {jobs[0].id}
    assert ids(states=(State.FAILED,)) == {jobs[2].id}
    assert ids(exception_contains="ZeroDivision") == {jobs[2].id}
    assert ids(ids=(jobs[1].id,)) == {jobs[1].id}
    newest = driver.search(JobFilter(limit=2))
    assert [j.id for j in newest] == [jobs[2].id, jobs[1].id]
    assert [j.id for j in driver.search(JobFilter(limit=2, offset=2))] == [jobs[0].id]
    assert [j.id for j in driver.search(JobFilter(newest_first=False, limit=1))] == [jobs[0].id]
    assert driver.count(JobFilter(queues=("q1",))) == 2


def test_search_ids_in_states(driver: Driver) -> None:
    """Ids and states together (a worker asking which of its buffered jobs were cancelled):
    only the listed jobs in those states, in any queue; unknown ids and other states left out."""
    jobs = [new(queue_name="q1"), new(queue_name="q2"), new(queue_name="q1"),
            new(queue_name="q2")]
    driver.push(jobs)
    assert driver.cancel(jobs[0].id, "no") and driver.cancel(jobs[1].id, "no")
    assert driver.cancel(jobs[3].id, "no")
    done = reserve_one(driver, queues=["q1"])
    assert done.id == jobs[2].id and driver.complete(done.token)
    asked = (jobs[0].id, jobs[1].id, jobs[2].id, uuid7())

    def ids(*states: State) -> set[str]:
        return {j.id for j in driver.search(JobFilter(ids=asked, states=states,
                                                      limit=len(asked)))}

    assert ids(State.CANCELLED) == {jobs[0].id, jobs[1].id}
    assert ids(State.CANCELLED, State.COMPLETED) == {jobs[0].id, jobs[1].id, jobs[2].id}
    assert ids(State.PENDING) == set()
    assert driver.count(JobFilter(ids=asked, states=(State.CANCELLED,))) == 2
    assert {j.id for j in driver.search(JobFilter(ids=asked, states=(State.CANCELLED,),
                                                  queues=("q2",)))} == {jobs[1].id}


def test_stats(driver: Driver) -> None:
    driver.push([new(queue_name="a", priority=10), new(queue_name="a", priority=20),
                 new(queue_name="b")])
    job = reserve_one(driver, queues=["b"])
    driver.complete(job.token)
    stats = driver.stats()
    assert set(stats) == {"a", "b"}
    assert stats["a"].counts[State.PENDING] == 2 and stats["a"].avg_priority == 15
    assert stats["b"].counts[State.COMPLETED] == 1 and stats["b"].completed_last_minute == 1
    assert stats["a"].oldest_ready_at is not None
    assert set(stats["a"].to_dict()) >= {s.value for s in State}


def test_prune(driver: Driver) -> None:
    driver.push([new(), new(), new()])
    done, dead, _ = driver.reserve("w", Q, 3, 30)
    driver.complete(done.token)
    driver.fail(dead.token, "x", None)
    assert driver.prune(completed_age=3600, failed_age=3600) == 0
    time.sleep(0.05)
    assert driver.prune(completed_age=0, failed_age=3600) == 1
    assert driver.prune(completed_age=0, failed_age=0) == 1
    assert driver.count(JobFilter()) == 1


# -- coordination ----------------------------------------------------------------------------

def test_locks(driver: Driver) -> None:
    assert driver.lock_acquire("leader", "n1", 1)
    assert not driver.lock_acquire("leader", "n2", 1)
    assert driver.lock_acquire("leader", "n1", 1), "the holder renews"
    assert not driver.lock_release("leader", "n2")
    assert driver.lock_release("leader", "n1")
    assert driver.lock_acquire("leader", "n2", 1)
    time.sleep(1.2)
    assert driver.lock_acquire("leader", "n3", 5), "an expired lock is free"


def test_counters(driver: Driver) -> None:
    assert driver.counter_incr("rate:x", 1, 1) == 1
    assert driver.counter_incr("rate:x", 2, 1) == 3
    assert driver.counter_incr("rate:y", 1, 1) == 1
    time.sleep(1.2)
    assert driver.counter_incr("rate:x", 1, 1) == 1, "a new window starts from zero"


def test_registry(driver: Driver) -> None:
    driver.registry_put("worker", "w1", {"id": "w1", "pid": 1}, 30)
    driver.registry_put("worker", "w2", {"id": "w2", "pid": 2}, 1)
    driver.registry_put("node", "n1", {"id": "n1"}, 30)
    assert [e["id"] for e in driver.registry_list("worker")] == ["w1", "w2"]
    driver.registry_put("worker", "w1", {"id": "w1", "pid": 3}, 30)
    assert driver.registry_list("worker")[0]["pid"] == 3
    time.sleep(1.2)
    assert [e["id"] for e in driver.registry_list("worker")] == ["w1"]
    driver.registry_remove("worker", "w1")
    assert driver.registry_list("worker") == []
    assert len(driver.registry_list("node")) == 1


# -- waiting ---------------------------------------------------------------------------------

def test_wait_for_work_times_out_when_idle(driver: Driver) -> None:
    started = time.monotonic()
    driver.wait_for_work(Q, 0.5)
    assert 0.4 <= time.monotonic() - started < 3


def test_wait_for_work_wakes_on_push(store_url: str, driver: Driver) -> None:
    producer = open_driver(store_url)
    try:
        timer = threading.Timer(0.3, lambda: producer.push([new()]))
        timer.start()
        started = time.monotonic()
        driver.wait_for_work(Q, 10)
        assert time.monotonic() - started < 3
        timer.join()
    finally:
        producer.close()


def test_wait_for_work_wakes_when_delayed_job_is_due(driver: Driver) -> None:
    driver.push([new(delay_seconds=0.5)])
    started = time.monotonic()
    driver.wait_for_work(Q, 10)
    assert time.monotonic() - started < 3


def test_wait_for_work_wakes_when_a_completion_releases_a_dependent(driver: Driver) -> None:
    """A completion that leaves a dependent waiting on nothing wakes idle workers of its
    queue, as a push does, also one waiting on the very driver that completes (a worker's
    ack thread sends completions on the driver its main thread waits on). Before, SQLite
    rang its doorbell only on pushes, and its ``data_version`` does not move for the
    connection's own commits: the wait below lasted its whole 30 s."""
    parent = new()
    child = new(dependencies=(parent.id,))
    driver.push([parent, child])
    (job,) = driver.reserve("w", Q, 10, 30)
    assert job.id == parent.id
    timer = threading.Timer(0.3, lambda: driver.complete(job.token))
    timer.start()
    started = time.monotonic()
    driver.wait_for_work(Q, 30)
    waited = time.monotonic() - started
    timer.join()
    assert waited < 10, f"the released dependent woke no one for {waited:.1f} s"
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id]


def test_now_is_aware_utc(driver: Driver) -> None:
    now = driver.now()
    assert now.tzinfo is not None
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


@pytest.mark.parametrize("count", [1, 250])
def test_push_reserve_complete_counts(driver: Driver, count: int) -> None:
    driver.push([new() for _ in range(count)])
    done = 0
    while batch := driver.reserve("w", Q, 100, 30):
        for job in batch:
            assert driver.complete(job.token)
            done += 1
    assert done == count
    assert driver.stats()["default"].counts[State.COMPLETED] == count


def test_restore_copies_records_and_skips_existing(driver: Driver, tmp_path) -> None:
    source = open_driver(f"sqlite:///{tmp_path / 'source.db'}")
    parent, child, done = new(priority=7, tags=("t",)), new(), new(idempotency_key="k1")
    child = new(dependencies=(parent.id,))
    source.push([parent, child, done])
    finished = [j for j in source.reserve("w", Q, 3, 30) if j.id == done.id][0]
    source.complete(finished.token, '"result"')
    records = source.search(JobFilter(newest_first=False, limit=10))
    source.close()
    assert driver.restore(records) == 3
    assert driver.restore(records) == 0, "restoring again is a no-op (resumable)"
    copy = driver.get(done.id)
    assert copy is not None and copy.state == State.COMPLETED and copy.result == '"result"'
    assert copy.idempotency_key == "k1" and copy.attempts == 1
    assert driver.get(parent.id).tags == ("t",)  # type: ignore[union-attr]
    assert driver.push([new(idempotency_key="k1")]) == [done.id]
    assert driver.get(parent.id).state == State.PROCESSING  # type: ignore[union-attr]
    assert driver.get(child.id).state == State.PENDING  # type: ignore[union-attr]
    assert driver.reserve("w", Q, 10, 30) == [], "the child still waits on its parent"


def test_keyset_paging(driver: Driver) -> None:
    jobs = [new() for _ in range(5)]
    driver.push(jobs)
    page = driver.search(JobFilter(newest_first=False, after_id=jobs[1].id, limit=2))
    assert [j.id for j in page] == [jobs[2].id, jobs[3].id]
    page = driver.search(JobFilter(after_id=jobs[3].id, limit=10))
    assert [j.id for j in page] == [jobs[2].id, jobs[1].id, jobs[0].id]


def test_complete_many_accepts_only_current_leases(driver: Driver) -> None:
    parent, other, stale = new(), new(), new()
    child = new(dependencies=(parent.id,))
    driver.push([parent, other, stale, child])
    jobs = {j.id: j for j in driver.reserve("w", Q, 3, 30)}
    old = LeaseToken(stale.id, jobs[stale.id].lease_epoch - 1)
    accepted = driver.complete_many([(jobs[parent.id].token, '"p"'),
                                     (jobs[other.id].token, None), (old, "x"),
                                     (LeaseToken("missing", 1), None)])
    assert accepted == [True, True, False, False]
    assert driver.get(parent.id).result == '"p"'  # type: ignore[union-attr]
    assert driver.get(stale.id).state == State.PROCESSING  # type: ignore[union-attr]
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id], "dependents released"
    assert driver.complete_many([]) == []


def test_complete_many_releases_a_child_of_two_jobs_in_one_batch(driver: Driver) -> None:
    first, second, third = new(), new(), new()
    both = new(dependencies=(first.id, second.id))
    half = new(dependencies=(second.id, third.id))
    driver.push([first, second, third, both, half])
    jobs = {j.id: j for j in driver.reserve("w", Q, 3, 30)}
    assert driver.complete_many([(jobs[second.id].token, None),
                                 (jobs[first.id].token, None)]) == [True, True]
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [both.id], "one wait per edge"
    assert driver.complete_many([(jobs[second.id].token, None)]) == [False]
    assert driver.reserve("w", Q, 10, 30) == [], "a refused completion releases nothing"
    assert driver.complete_many([(jobs[third.id].token, None)]) == [True]
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [half.id]


def test_complete_many_applies_each_jobs_idempotency_mode(driver: Driver) -> None:
    fin = new(idempotency_key="fin", idempotency_mode="finished")
    win = new(idempotency_key="win", idempotency_mode="window", idempotency_window=600)
    keep = new(idempotency_key="keep")
    driver.push([fin, win, keep])
    assert all(driver.complete_many([(j.token, None) for j in driver.reserve("w", Q, 3, 30)]))
    again = new(idempotency_key="fin", idempotency_mode="finished")
    assert driver.push([again]) == [again.id], "'finished' frees the key"
    assert driver.push([new(idempotency_key="win", idempotency_mode="window")]) == [win.id]
    assert driver.push([new(idempotency_key="keep")]) == [keep.id]


# -- closing ---------------------------------------------------------------------------------

def test_before_close_runs_first_while_the_store_is_open(store_url: str) -> None:
    """A callback registered with ``before_close`` runs once, latest first, at the start of
    ``close()``: its writes land (a statistics recorder's last flush)."""
    driver = open_driver(store_url)
    ran: list[str] = []
    for name in ("first", "second"):
        driver.before_close(lambda name=name: (
            ran.append(name), driver.registry_put("closing", name, {"n": name}, 60)))
    driver.close()
    assert ran == ["second", "first"]
    reopened = open_driver(store_url)
    try:
        assert sorted(e["n"] for e in reopened.registry_list("closing")) == ["first", "second"]
    finally:
        reopened.close()
