"""The Redis driver's fast paths: reserve rows mapped by position, completions batched per
queue with the queues remembered from reserve (and looked up when not), pipelines of plain
EVALSHAs. Each test would fail on a wrong implementation of one of them."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import NoScriptError, ResponseError

from taskqueue.drivers import _redis_memory, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import JobRecord, LeaseToken, NewJob
from taskqueue.jobs.states import State
from tests.backends import redis_url
from tests.conformance.test_driver import new

redis = pytest.importorskip("redis")
REDIS_SERVER = shutil.which("redis-server")
FIELDS = [f.name for f in dataclasses.fields(JobRecord) if f.name != "extra"]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with redis_url(tmp_path) as found:
        yield found


@pytest.fixture
def driver(url: str) -> Iterator[Any]:
    d = open_driver(url)
    try:
        yield d
    finally:
        d.close()


def same_as_stored(driver: Any, job: JobRecord) -> None:
    stored = driver.get(job.id)
    assert stored is not None
    for name in FIELDS:
        assert getattr(job, name) == getattr(stored, name), name
        assert type(getattr(job, name)) is type(getattr(stored, name)), name


def test_reserved_records_match_get_field_by_field(driver: Any) -> None:
    parent = new(queue_name="a")
    driver.push([parent])
    done = driver.reserve("w0", ["a"], 1, 30)[0]
    assert driver.complete_many([(done.token, "parent result")]) == [True]
    rich = new(queue_name="a", priority=999, tags=("x", "y é"), dependencies=(parent.id,),
               idempotency_key="k-exists", batch_id="b1", max_attempts=7, timeout_seconds=9,
               payload=bytes(range(256)))
    started = new(queue_name="a", idempotency_key="k-started", idempotency_mode="started")
    plain = new(queue_name="a", priority=0)
    driver.push([rich, started, plain])
    # A retried job brings an exception, attempts and progress from its first run.
    again = new(queue_name="a", priority=500)
    driver.push([again])
    first = driver.reserve("w0", ["a"], 1, 30)[0]
    assert first.id == rich.id
    assert driver.set_progress(first.token, 42.5)
    assert driver.fail(first.token, "boom\nline 2", 0.0)

    jobs = driver.reserve("w1", ["a"], 10, 12.5)
    assert [j.id for j in jobs] == [rich.id, again.id, started.id, plain.id]
    for job in jobs:
        same_as_stored(driver, job)
        assert job.state is State.PROCESSING and job.lease_owner == "w1"
        assert job.lease_expires_at is not None and job.started_at is not None
        assert job.available_at.tzinfo is not None
    by_id = {j.id: j for j in jobs}
    assert by_id[rich.id].attempts == 2 and by_id[rich.id].lease_epoch == 2
    assert by_id[rich.id].exception == "boom\nline 2" and by_id[rich.id].progress == 42.5
    assert by_id[rich.id].tags == ("x", "y é") and by_id[rich.id].dependencies == (parent.id,)
    assert by_id[rich.id].payload == bytes(range(256))
    assert by_id[started.id].idempotency_key is None       # "started" frees the key
    assert by_id[plain.id].dependencies == () and by_id[plain.id].tags == ()
    lease = by_id[plain.id].lease_expires_at - by_id[plain.id].started_at  # type: ignore[operator]
    assert lease.total_seconds() == 12.5


def test_reserve_job_row_matches_get(driver: Any) -> None:
    job = new(queue_name="a", tags=("t",), idempotency_key="k", idempotency_mode="debounce")
    driver.push([job])
    got = driver.reserve_job("w", job.id, 30)
    assert got is not None and got.state is State.PROCESSING and got.idempotency_key is None
    same_as_stored(driver, got)
    assert driver.complete(got.token) is True


def test_complete_many_mixes_valid_and_stale_tokens_across_queues(driver: Any) -> None:
    a1, a2, b1, b2 = (new(queue_name=q) for q in ("a", "a", "b", "b"))
    driver.push([a1, a2, b1, b2])
    jobs = {j.id: j for j in driver.reserve("w", ["a", "b"], 10, 30)}
    assert set(jobs) == {a1.id, a2.id, b1.id, b2.id}
    items = [
        (LeaseToken(a1.id, jobs[a1.id].lease_epoch + 1), None),   # wrong epoch
        (jobs[b1.id].token, "r-b1"),                               # valid, queue b
        (LeaseToken(uuid7(), 1), None),                            # no such job
        (jobs[a2.id].token, None),                                 # valid, queue a
        (LeaseToken(b2.id, 0), None),                              # old epoch
        (jobs[b1.id].token, "twice"),                              # already completed above
    ]
    assert driver.complete_many(items) == [False, True, False, True, False, False]
    assert driver.get(b1.id).state is State.COMPLETED and driver.get(b1.id).result == "r-b1"
    assert driver.get(a2.id).state is State.COMPLETED and driver.get(a2.id).result is None
    for stale in (a1.id, b2.id):
        assert driver.get(stale).state is State.PROCESSING
    # The rejected ones still complete with their real tokens.
    assert driver.complete_many([(jobs[b2.id].token, None), (jobs[a1.id].token, None)]) == [
        True, True]
    counts = driver.stats()
    assert counts["a"].counts[State.COMPLETED] == 2 and counts["a"].counts[State.PROCESSING] == 0
    assert counts["b"].counts[State.COMPLETED] == 2 and counts["b"].counts[State.PROCESSING] == 0


def test_completion_by_a_driver_that_did_not_reserve(url: str, driver: Any) -> None:
    """A restarted worker has no memory of what it reserved: it looks the queues up."""
    jobs = [new(queue_name="a"), new(queue_name="b"), new(queue_name="b")]
    driver.push(jobs)
    reserved = driver.reserve("w", ["a", "b"], 3, 30)
    other = open_driver(url)
    try:
        tokens = [j.token for j in reserved]
        stale = LeaseToken(tokens[0].job_id, tokens[0].epoch + 5)
        assert other.complete_many([(stale, None), *((t, None) for t in tokens[1:])]) == [
            False, True, True]
        assert other.complete(tokens[0], "late") is True
        assert other.complete(tokens[0], "again") is False
    finally:
        other.close()
    assert {driver.get(j.id).state for j in jobs} == {State.COMPLETED}
    # The reserving driver's own memory is stale now: a second completion is refused.
    assert driver.complete_many([(t, None) for t in tokens]) == [False, False, False]


def test_a_wrong_remembered_queue_is_looked_up_again(driver: Any) -> None:
    job = new(queue_name="a")
    driver.push([job])
    got = driver.reserve("w", ["a"], 1, 30)[0]
    driver._memory._homes[got.id] = "b"    # as if deleted and pushed again elsewhere
    assert driver.complete_many([(got.token, None)]) == [True]
    assert driver.get(job.id).state is State.COMPLETED


def test_memory_of_reserved_jobs_is_bounded(driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redis_memory, "MEMO_MAX", 20)
    driver.push([new(queue_name="a") for _ in range(60)])
    held = []
    for _ in range(6):
        held += driver.reserve("w", ["a"], 10, 30)
        assert len(driver._memory) <= 20
    assert driver.complete_many([(j.token, None) for j in held]) == [True] * 60
    assert len(driver._memory) == 0
    fail = new(queue_name="a")
    driver.push([fail])
    job = driver.reserve("w", ["a"], 1, 30)[0]
    assert driver.fail(job.token, "x", None) is True
    assert not driver._memory.knows(job.id)


def test_completions_release_dependents_in_both_queues(driver: Any) -> None:
    parent = new(queue_name="a")
    here = new(queue_name="a", dependencies=(parent.id,))
    there = new(queue_name="b", dependencies=(parent.id,))
    driver.push([parent, here, there])
    got = driver.reserve("w", ["a"], 5, 30)
    assert [j.id for j in got] == [parent.id]
    assert driver.complete_many([(got[0].token, None)]) == [True]
    assert {j.id for j in driver.reserve("w", ["a", "b"], 5, 30)} == {here.id, there.id}


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_pipelines_reload_scripts_the_server_forgot(tmp_path: Path) -> None:
    """Multi-queue calls pipeline plain EVALSHAs; after SCRIPT FLUSH (a restarted server) each
    NOSCRIPT is loaded and run again, once, and nothing runs twice."""
    assert REDIS_SERVER is not None
    port = _spare_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                             str(tmp_path), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        d = open_driver(f"redis://127.0.0.1:{port}/0?prefix=t")
        try:
            d.push([new(queue_name=q) for q in ("a", "a", "b", "c")])
            admin.script_flush()
            jobs = d.reserve("w", ["a", "b", "c"], 10, 30)
            assert len(jobs) == 4 and len({j.id for j in jobs}) == 4
            assert all(j.attempts == 1 and j.lease_epoch == 1 for j in jobs)
            admin.script_flush()
            assert d.complete_many([(j.token, None) for j in jobs]) == [True] * 4
            assert d.count(d_filter(State.COMPLETED)) == 4
        finally:
            d.close()
        admin.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def d_filter(state: State) -> Any:
    from taskqueue.drivers import JobFilter

    return JobFilter(states=(state,))


# -- a wake-up reserves at once (wait_for_work pipelines BLPOP with the worker's reserve) -------

def _push_soon(driver: Any, job: NewJob, delay: float = 0.05) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), driver.push([job])))
    thread.start()
    return thread


def test_a_wake_up_hands_its_reservation_to_the_next_reserve(url: str, driver: Any) -> None:
    producer = open_driver(url)
    try:
        assert driver.reserve("w1", ["a"], 5, 30) == []        # an idle worker's last call
        job = new(queue_name="a", priority=7)
        thread = _push_soon(producer, job)
        started = time.monotonic()
        driver.wait_for_work(["a"], 5.0)
        thread.join()
        assert time.monotonic() - started < 2.0
        held = driver.get(job.id)
        assert held.state is State.PROCESSING and held.lease_owner == "w1"
        got = driver.reserve("w1", ["a"], 5, 30)
        assert [j.id for j in got] == [job.id]
        same_as_stored(driver, got[0])
        assert got[0].attempts == 1 and got[0].lease_epoch == 1
        assert driver.reserve("w1", ["a"], 5, 30) == []        # handed out once
        assert driver.complete_many([(got[0].token, None)]) == [True]
    finally:
        producer.close()


@pytest.mark.parametrize("case", ["other worker", "other lease", "too late", "closed",
                                  "fewer wanted", "worker left"])
def test_a_reservation_from_a_wake_up_nobody_asked_for_is_handed_back(
        url: str, driver: Any, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [new(queue_name="a"), new(queue_name="a")]
    assert driver.reserve("w1", ["a"], 5, 30) == []
    driver.push(jobs)
    driver.wait_for_work(["a"], 2.0)          # woken at once; reserves both for w1
    assert {driver.get(j.id).state for j in jobs} == {State.PROCESSING}
    if case in ("closed", "worker left"):
        if case == "closed":
            driver.close()
        else:
            driver.registry_remove("worker", "w1")   # the worker's last call at shutdown
        other = open_driver(url)
        try:
            after = [other.get(j.id) for j in jobs]
        finally:
            other.close()
        assert [(j.state, j.attempts) for j in after] == [(State.PENDING, 0)] * 2
        return
    worker, lease, limit = "w1", 30.0, 5
    if case == "other worker":
        worker = "w2"
    elif case == "other lease":
        lease = 60.0
    elif case == "too late":
        monkeypatch.setattr(_redis_memory, "WAITED_MAX_AGE", 0.0)
    else:
        limit = 1
    got = driver.reserve(worker, ["a"], limit, lease)
    if case == "fewer wanted":
        assert [j.id for j in got] == [jobs[0].id] and got[0].lease_epoch == 1
        rest = driver.get(jobs[1].id)
        assert (rest.state, rest.attempts) == (State.PENDING, 0)
        return
    # Handed back (no attempt used), then reserved afresh by this call.
    assert [j.id for j in got] == [j.id for j in jobs]
    for job in got:
        assert job.lease_owner == worker and job.attempts == 1 and job.lease_epoch == 2
        same_as_stored(driver, job)
    assert driver.complete_many([(j.token, None) for j in got]) == [True, True]


def test_a_wait_that_times_out_still_takes_a_job_that_fell_due(driver: Any) -> None:
    job = new(queue_name="a", delay_seconds=0.3)
    driver.push([job])
    assert driver.reserve("w1", ["a"], 5, 30) == []
    started = time.monotonic()
    driver.wait_for_work(["a"], 3.0)
    assert 0.2 < time.monotonic() - started < 2.0
    got = driver.reserve("w1", ["a"], 5, 30)
    assert [j.id for j in got] == [job.id]
    assert driver.complete(got[0].token) is True


def _count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every request the process writes to Redis from now on (one per round trip: a pipeline
    is written at once), as the command names it holds."""
    sent: list[bytes] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        parts = command if isinstance(command, list) else [command]
        sent.append(b" ".join(p.split(b"\r\n")[2] for p in parts if isinstance(p, bytes)))
        real(self, command, check_health)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    return sent


def test_the_wait_after_an_empty_reserve_asks_no_due_time(
        driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker's reservation that takes nothing says when the next delayed job falls
    due; the wait that follows uses that (one round trip per slice: its BLPOP with the primed
    reserve, whose empty answer says it again for the next slice) instead of asking first."""
    assert driver.reserve("w1", ["a"], 5, 30) == []
    driver.wait_for_work(["a"], 0.01)   # the blocking connection is open
    late = new(queue_name="a", delay_seconds=1.3)
    driver.push([late])
    sent = _count_round_trips(monkeypatch)
    assert driver.reserve("w1", ["a"], 5, 30) == []
    started = time.monotonic()
    driver.wait_for_work(["a"], 5.0)    # a full slice of 1 s, then one of 0.3 s
    assert 1.1 < time.monotonic() - started < 3.0
    assert len(sent) == 3, sent        # the reserve, then one pipeline per slice
    assert all(b"BLPOP" in s for s in sent[1:]), sent
    got = driver.reserve("w1", ["a"], 5, 30)
    assert [j.id for j in got] == [late.id]


def test_a_stale_due_time_is_asked_again(driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The due time an empty reservation told stands only for the wait that follows at once."""
    assert driver.reserve("w1", ["a"], 5, 30) == []
    monkeypatch.setattr(_redis_memory, "DUE_MAX_AGE", 0.0)
    soon = new(queue_name="a", delay_seconds=0.2)
    driver.push([soon])                 # after the reservation: only asking finds it
    started = time.monotonic()
    driver.wait_for_work(["a"], 3.0)
    assert time.monotonic() - started < 0.9
    assert [j.id for j in driver.reserve("w1", ["a"], 5, 30)] == [soon.id]


def test_several_queues_wait_without_reserving(driver: Any) -> None:
    assert driver.reserve("w1", ["a", "b"], 5, 30) == []
    job = new(queue_name="b")
    driver.push([job])
    driver.wait_for_work(["a", "b"], 2.0)
    assert driver.get(job.id).state is State.PENDING
    assert [j.id for j in driver.reserve("w1", ["a", "b"], 5, 30)] == [job.id]


def test_a_reservation_nobody_comes_for_is_handed_back_by_the_heartbeat_thread(
        driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker paused (or stopping) right after a wake-up does not call reserve; its
    heartbeat thread's periodic calls hand the jobs back long before their lease expires."""
    job = new(queue_name="a")
    assert driver.reserve("w1", ["a"], 5, 30) == []
    driver.push([job])
    driver.wait_for_work(["a"], 2.0)
    assert driver.get(job.id).state is State.PROCESSING
    driver.registry_put("worker", "w1", {"id": "w1"}, 30)     # fresh: kept
    driver.heartbeat("w1", [], 30)
    assert driver.get(job.id).state is State.PROCESSING
    monkeypatch.setattr(_redis_memory, "WAITED_MAX_AGE", 0.0)
    driver.registry_put("worker", "w1", {"id": "w1"}, 30)
    back = driver.get(job.id)
    assert (back.state, back.attempts, back.lease_owner) == (State.PENDING, 0, None)
    got = driver.reserve("w1", ["a"], 5, 30)
    assert [j.id for j in got] == [job.id] and got[0].lease_epoch == 2


def test_only_the_wait_right_after_a_reserve_reserves(driver: Any) -> None:
    """A worker whose queues are paused in the store stops calling reserve but still waits:
    those waits must not take jobs."""
    assert driver.reserve("w1", ["a"], 5, 30) == []
    driver.wait_for_work(["a"], 0.05)                  # times out, takes nothing
    job = new(queue_name="a")
    driver.push([job])
    driver.wait_for_work(["a"], 0.5)                   # no reserve in between
    assert driver.get(job.id).state is State.PENDING
    assert [j.id for j in driver.reserve("w1", ["a"], 5, 30)] == [job.id]


# -- single pushes go through the driver's own connection (the lane), off the pool --------------

@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_single_pushes_survive_a_killed_connection_and_a_forgotten_script(
        tmp_path: Path) -> None:
    """A push whose lane connection was killed, or whose script the server forgot, is sent
    again and stored exactly once."""
    assert REDIS_SERVER is not None
    port = _spare_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                             str(tmp_path), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        d = open_driver(f"redis://127.0.0.1:{port}/0?prefix=t")
        try:
            ids = [d.push([new(queue_name="a")])[0]]
            lane = d._lane.call("CLIENT", "ID")[1]
            assert admin.execute_command("CLIENT", "KILL", "ID", lane) == 1
            ids.append(d.push([new(queue_name="a")])[0])
            admin.script_flush()
            ids.append(d.push([new(queue_name="a")])[0])
            ids.append(d.push([new(queue_name="a")])[0])
            assert d._lane.call("CLIENT", "ID")[1] != lane  # a new connection took over
            assert d.count(d_filter(State.PENDING)) == 4
            assert sorted(j.id for j in d.reserve("w", ["a"], 10, 30)) == sorted(ids)
        finally:
            d.close()
        admin.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_forked_producer_pushes_on_a_connection_of_its_own(driver: Any) -> None:
    """After a fork, parent and child each push through their own socket: sharing the
    parent's would mix up the replies of the two processes."""
    import os

    driver.push([new(queue_name="a")])  # the parent's lane is connected
    parent_lane = driver._lane.call("CLIENT", "ID")[1]
    pid = os.fork()
    if pid == 0:  # the child: push, and report through the exit status
        ok = False
        try:
            ok = driver._lane.call("CLIENT", "ID")[1] != parent_lane
            ok = ok and len(driver.push([new(queue_name="a")])) == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert driver._lane.call("CLIENT", "ID")[1] == parent_lane
    driver.push([new(queue_name="a")])
    assert driver.count(d_filter(State.PENDING)) == 3


def test_a_push_while_another_thread_holds_the_lane_goes_through_the_pool(driver: Any) -> None:
    """Concurrent producers (threads, ``apush``) are not lined up behind one connection: a push
    that finds the lane in use takes a pooled connection, as before the lane existed."""
    driver.push([new(queue_name="a")])
    assert driver._lane._lock.acquire(timeout=5)  # another thread's push, under way
    try:
        pusher = threading.Thread(target=lambda: driver.push([new(queue_name="a")]))
        pusher.start()
        pusher.join(timeout=10)
        assert not pusher.is_alive(), "the push waited for the lane"
    finally:
        driver._lane._lock.release()
    assert driver.count(d_filter(State.PENDING)) == 2


# -- a single push has its own script (push_one) -------------------------------------------------

@pytest.mark.parametrize("options", [
    {},
    {"priority": 20, "max_attempts": 7, "timeout_seconds": 9, "tags": ("a", "b"),
     "batch_id": "b-1"},
    {"delay_seconds": 30.5},
    {"idempotency_key": "k1"},
    {"idempotency_key": "k2", "idempotency_mode": "finished"},
    {"idempotency_key": "k3", "idempotency_mode": "window", "idempotency_window": 12.5},
])
def test_a_single_push_stores_what_a_batch_push_stores(driver: Any,
                                                       options: dict[str, Any]) -> None:
    """The single-job script writes the same hash fields and indexes as the batch script
    (times and the id aside), so nothing that reads a job can tell which one stored it."""
    one = new(queue_name="a", payload=b"TQ\x01\x00[1]", **options)
    batch_options = {**options}
    if "idempotency_key" in batch_options:
        batch_options["idempotency_key"] += "-batch"
    pair = [new(queue_name="b", payload=b"TQ\x01\x00[1]", **batch_options),
            new(queue_name="b")]
    assert driver.push([one]) == [one.id]
    assert driver.push(pair) == [j.id for j in pair]
    r = driver._r

    def stored(job: NewJob) -> dict[str, bytes]:
        raw = r.hgetall(driver.keys.job(job.queue_name, job.id))
        skip = {b"id", b"queue_name", b"available_at", b"created_at", b"updated_at"}
        found = {k: v for k, v in raw.items() if k not in skip}
        if b"idempotency_key" in found:
            found[b"idempotency_key"] = found[b"idempotency_key"].removesuffix(b"-batch")
        return found

    assert stored(one) == stored(pair[0])
    assert r.hget(driver.keys.job("a", one.id), "queue_name") == b"a"
    indexes = ("pending", "ready", "delayed", "parked")
    assert [r.zscore(driver.keys.queue("a") + ":" + i, one.id) is not None
            for i in indexes[:3]] == [
        r.zscore(driver.keys.queue("b") + ":" + i, pair[0].id) is not None for i in indexes[:3]]
    if "idempotency_key" in options:   # the key is claimed: a duplicate gets the first job
        again = new(queue_name="a", payload=b"TQ\x01\x00[2]", **options)
        assert driver.push([again]) == [one.id]
    assert driver.push([one]) == [one.id]   # the same job again (a retried push): stored once
    with pytest.raises(Exception, match="already exists"):
        driver.push([dataclasses.replace(one, payload=b"other")])


def test_the_lane_raises_error_replies_as_redis_py_does_and_keeps_its_connection(
        driver: Any) -> None:
    """The lane reads replies itself: an error reply is raised as redis-py's own exception
    class (the driver's NOSCRIPT recovery depends on it), a multi-part reply arrives whole,
    and the connection stays in use after an error."""
    lane = driver._lane
    first = lane.call("CLIENT", "ID")[1]
    with pytest.raises(NoScriptError):
        lane.call("EVALSHA", "0" * 40, 0)
    with pytest.raises(ResponseError, match="unknown command"):
        lane.call("NO-SUCH-COMMAND")
    big = b"x" * 200_000   # a reply longer than one read of the socket
    assert lane.call("ECHO", big) == (True, big)
    assert lane.call("CLIENT", "ID") == (True, first)
