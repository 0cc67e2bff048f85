"""The PostgreSQL driver's fast paths keep every semantic of the slow ones they replaced.

``complete_many`` acknowledges a batch with one set-based statement plus one statement that
releases dependents, pipelined as one transaction; ``complete`` goes the same way. These tests
mix, in single batches, everything that statement must tell apart: current and stale lease
epochs, unknown ids, a token given twice, jobs with dependents (one child of several jobs of the
same batch), and every idempotency mode."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from taskqueue.drivers import Driver, JobFilter, open_driver  # noqa: E402
from taskqueue.errors import Conflict, DriverError  # noqa: E402
from taskqueue.jobs.model import JobRecord, LeaseToken  # noqa: E402
from taskqueue.jobs.states import State  # noqa: E402
from tests.backends import postgres_url  # noqa: E402
from tests.conformance.test_driver import new  # noqa: E402

Q = ["default"]


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with postgres_url(tmp_path) as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[Driver]:
    driver = open_driver(pg_url)
    try:
        yield driver
    finally:
        driver.close()


def record(driver: Driver, job_id: str) -> JobRecord:
    rec = driver.get(job_id)
    assert rec is not None, job_id
    return rec


def ready_ids(driver: Driver) -> set[str]:
    return {j.id for j in driver.reserve("w", Q, 100, 30)}


def waiting_on(pg_url: str, job_id: str) -> int:
    base, schema = pg_url.split("?schema=")
    with psycopg.connect(base) as conn:
        row = conn.execute(f'SELECT waiting_on FROM "{schema}".job_queue WHERE id = %s',
                           (job_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_mixed_batch_is_judged_per_token(pg_url: str, pg: Driver) -> None:
    a, b, c, stale, plain = new(), new(), new(), new(), new()
    both = new(dependencies=(a.id, b.id))        # both parents complete in this batch
    half = new(dependencies=(c.id, stale.id))    # one parent completes, one stays running
    fin = new(idempotency_key="fin", idempotency_mode="finished")
    win = new(idempotency_key="win", idempotency_mode="window", idempotency_window=600)
    keep = new(idempotency_key="keep", idempotency_mode="exists")
    pg.push([a, b, c, stale, plain, both, half, fin, win, keep])
    jobs = {j.id: j for j in pg.reserve("w", Q, 100, 30)}
    assert set(jobs) == {a.id, b.id, c.id, stale.id, plain.id, fin.id, win.id, keep.id}
    old = LeaseToken(stale.id, jobs[stale.id].lease_epoch - 1)
    items = [  # deliberately not in id order: the answer must follow the input order
        (jobs[plain.id].token, '"plain"'), (old, '"stale"'), (jobs[b.id].token, None),
        (LeaseToken("no-such-job", 1), None), (jobs[fin.id].token, '"fin"'),
        (jobs[a.id].token, '"a"'), (jobs[win.id].token, None), (jobs[c.id].token, None),
        (jobs[keep.id].token, None),
    ]
    items.reverse()
    accepted = pg.complete_many(items)
    assert accepted == [token.job_id != "no-such-job" and token != old
                        for token, _ in items]

    assert record(pg, plain.id).result == '"plain"' and record(pg, a.id).result == '"a"'
    done = record(pg, fin.id)
    assert (done.state, done.result, done.progress, done.lease_owner) == (
        State.COMPLETED, '"fin"', 100.0, None)
    assert done.completed_at is not None and done.lease_expires_at is None
    running = record(pg, stale.id)
    assert running.state == State.PROCESSING and running.result is None, "stale epoch refused"

    assert waiting_on(pg_url, both.id) == 0, "one wait released per edge, both in one batch"
    assert waiting_on(pg_url, half.id) == 1
    assert ready_ids(pg) == {both.id}

    # Idempotency: "finished" frees its key, "window" holds it for the window, "exists" holds.
    again = new(idempotency_key="fin", idempotency_mode="finished")
    assert pg.push([again]) == [again.id]
    assert pg.push([new(idempotency_key="win", idempotency_mode="window")]) == [win.id]
    assert pg.push([new(idempotency_key="keep")]) == [keep.id]
    assert record(pg, fin.id).idempotency_key is None
    assert record(pg, win.id).idempotency_key == "win"


def test_a_token_given_twice_is_accepted_once(pg: Driver) -> None:
    job = new()
    pg.push([job])
    (running,) = pg.reserve("w", Q, 1, 30)
    assert pg.complete_many([(running.token, '"1"'), (running.token, '"2"')]) == [True, False]
    assert record(pg, job.id).state == State.COMPLETED


def test_completing_again_releases_nothing_twice(pg_url: str, pg: Driver) -> None:
    first, second = new(), new()
    child = new(dependencies=(first.id, second.id))
    pg.push([first, second, child])
    jobs = {j.id: j for j in pg.reserve("w", Q, 10, 30)}
    assert pg.complete_many([(jobs[first.id].token, None)]) == [True]
    assert pg.complete_many([(jobs[first.id].token, None)]) == [False]
    assert pg.complete(jobs[first.id].token) is False
    assert waiting_on(pg_url, child.id) == 1, "the edge to `first` counted once"
    assert ready_ids(pg) == set()
    assert pg.complete(jobs[second.id].token) is True
    assert ready_ids(pg) == {child.id}


def test_completion_after_lease_recovery_is_refused(pg: Driver) -> None:
    job = new()
    pg.push([job])
    (old,) = pg.reserve("w1", Q, 1, 0.01)
    import time

    time.sleep(0.05)
    assert pg.recover_expired() == [job.id]
    (new_owner,) = pg.reserve("w2", Q, 1, 30)
    assert pg.complete_many([(old.token, '"old"'), (new_owner.token, '"new"')]) == [
        False, True]
    assert record(pg, job.id).result == '"new"'


def test_empty_and_all_refused_batches(pg: Driver) -> None:
    assert pg.complete_many([]) == []
    assert pg.complete_many([(LeaseToken("x", 1), None), (LeaseToken("y", 2), "r")]) == [
        False, False]
    assert pg.count(JobFilter()) == 0


def test_children_pushed_while_a_batch_completes_are_released(pg_url: str, pg: Driver) -> None:
    """The race of count_waiting (postgres.sql) against the batch path: a child pushed while
    its parent's batch commits is released by the batch or born released, never neither."""
    other = open_driver(pg_url)
    try:
        for _ in range(20):
            parents = [new() for _ in range(5)]
            pg.push(parents)
            running = pg.reserve("w", Q, 5, 30)
            children = [new(dependencies=(p.id,)) for p in parents[::2]]
            barrier, accepted = threading.Barrier(2), []

            def finish(batch: list[JobRecord] = running, barrier: threading.Barrier = barrier,
                       accepted: list[list[bool]] = accepted) -> None:
                barrier.wait()
                accepted.append(other.complete_many([(j.token, None) for j in batch]))

            thread = threading.Thread(target=finish)
            thread.start()
            barrier.wait()
            pg.push(children)
            thread.join()
            assert accepted == [[True] * 5]
            assert ready_ids(pg) == {c.id for c in children}
            for child in children:
                assert waiting_on(pg_url, child.id) == 0
    finally:
        other.close()


def test_a_large_batch(pg: Driver) -> None:
    jobs = [new() for _ in range(500)]
    pg.push(jobs)
    running = pg.reserve("w", Q, 500, 30)
    assert len(running) == 500
    assert all(pg.complete_many([(j.token, f'"{j.id}"') for j in running]))
    assert pg.count(JobFilter(states=[State.COMPLETED])) == 500
    assert record(pg, jobs[123].id).result == f'"{jobs[123].id}"'



@pytest.mark.parametrize("backlog", [500, 20_000])
def test_reserve_reads_the_ready_index_in_order_on_a_young_table(
    pg_url: str, pg: Driver, backlog: int
) -> None:
    """A table that autovacuum has not analyzed yet gives the planner default estimates; the
    plan must still walk idx_ready in its order and stop at the limit, not read the whole
    backlog through another index and sort it (as it did through idx_due before migration 4).
    next_due walks idx_ready too, by priority (no idx_due since migration 12), and sorts
    nothing."""
    from taskqueue.drivers.postgres import _queries

    jobs = [new(priority=p % 3, delay_seconds=(p % 2) * 60) for p in range(backlog)]
    for start in range(0, backlog, 5000):
        pg.push(jobs[start:start + 5000])
    base, schema = pg_url.split("?schema=")
    queries = _queries(schema)
    reserve = {"worker": "w", "lease": 30.0, "queues": Q, "limit": 100}
    with psycopg.connect(base) as conn:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + queries["reserve"], reserve))
        due = "\n".join(r[0] for r in conn.execute("EXPLAIN " + queries["next_due"], (Q,)))
    assert "idx_ready" in plan and "idx_due" not in plan, plan
    assert "idx_ready" in due and "Sort" not in due and "Seq Scan" not in due, due


def test_next_due_is_the_earliest_due_time_over_every_priority(pg_url: str,
                                                                pg: Driver) -> None:
    """Without idx_due, next_due and the stats' oldest ready time come from idx_ready, whose
    order puts priority before the due time: the earliest job may be the one of the lowest
    priority, behind many later ones of higher priorities. Jobs waiting on a dependency, or
    of another queue, do not count; a job due now makes the answer negative."""
    from taskqueue.drivers.postgres import _queries

    base, schema = pg_url.split("?schema=")
    queries = _queries(schema)

    def next_due() -> float | None:
        with psycopg.connect(base) as conn:
            row = conn.execute(queries["next_due"], (Q,)).fetchone()
        assert row is not None
        return None if row[0] is None else float(row[0])

    assert next_due() is None
    parent = new(delay_seconds=5000)
    pg.push([parent])
    pg.push([new(priority=p, delay_seconds=1000 + p) for p in range(20, 1001, 7)])
    pg.push([new(priority=3, delay_seconds=600), new(priority=3, delay_seconds=900),
             new(queue_name="other", delay_seconds=10),
             new(priority=0, delay_seconds=10, dependencies=(parent.id,))])
    assert 500 < (next_due() or 0) <= 600
    oldest = pg.stats()["default"].oldest_ready_at
    assert oldest is not None and oldest == min(
        j.available_at for j in pg.search(JobFilter(queues=("default",), limit=1000))
        if j.id != parent.id and j.available_at is not None and not j.dependencies)
    pg.push([new(priority=1)])
    assert (next_due() or 0) <= 0


def test_batch_acknowledgement_probes_the_primary_key(pg_url: str, pg: Driver) -> None:
    """complete_many and extend_leases find their rows by id (or, on a small table, a scan),
    never by reading idx_lease, whose dead entries (one per reservation since the last vacuum)
    the planner cannot see; release_dependents_many looks up the batch's jobs, never every
    completed job."""
    from taskqueue.drivers.postgres import _queries

    parents = [new() for _ in range(3000)]
    pg.push(parents)
    pg.push([new(queue_name="children", dependencies=(p.id,)) for p in parents[::3]])
    for _ in range(10):
        running = pg.reserve("w", Q, 100, 30)
        assert all(pg.complete_many([(j.token, None) for j in running]))
    running = pg.reserve("w", Q, 100, 30)
    base, schema = pg_url.split("?schema=")
    queries = _queries(schema)
    ids, epochs = [j.id for j in running], [j.lease_epoch for j in running]
    with psycopg.connect(base) as conn:
        for name, params in [("complete_many", (ids, epochs, [None] * len(ids))),
                             ("extend_leases", (30.0, ids, epochs)),
                             ("release_dependents_many", {"ids": ids, "channel": "c"})]:
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + queries[name], params))
            assert "idx_lease" not in plan and "idx_state_id" not in plan, (name, plan)


def test_an_idle_connection_the_server_closed_is_not_handed_out(pg_url: str) -> None:
    """The pool checks an idle connection without a round trip (is the socket readable?):
    one whose backend was terminated meanwhile is replaced, so the caller sees no error."""
    import time

    from taskqueue.drivers.postgres import PostgresDriver

    driver = PostgresDriver.from_url(pg_url, check_after=0.05)
    try:
        driver.push([new()])
        pids = [conn.info.backend_pid for conn, _ in driver._pool._idle]
        assert pids
        with psycopg.connect(pg_url.split("?schema=")[0], autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        assert driver.count(JobFilter()) == 1
        assert [j.state for j in driver.reserve("w", Q, 10, 30)] == [State.PROCESSING]
    finally:
        driver.close()


def test_jobs_without_keys_stay_out_of_the_idempotency_index(pg_url: str, pg: Driver) -> None:
    """Most jobs have no idempotency key: they cost no entry in its unique index (an empty
    B-tree is its metapage alone), while a keyed job still gets one and still blocks."""
    pg.push([new() for _ in range(200)])
    for _ in range(50):
        pg.push([new()])
    base, schema = pg_url.split("?schema=")

    def key_index_pages() -> list[int]:
        with psycopg.connect(base) as conn:
            rows = conn.execute(
                "SELECT pg_relation_size(format('%%I.%%I', schemaname, indexname)) / 8192 "
                "FROM pg_indexes WHERE schemaname = %s AND tablename = 'job_queue' "
                "AND indexdef LIKE '%%(idempotency_key)%%'", (schema,)).fetchall()
        return [int(pages) for (pages,) in rows]

    assert key_index_pages() == [1]
    first = new(idempotency_key="k")
    assert pg.push([first]) == [first.id]
    assert pg.push([new(idempotency_key="k")]) == [first.id]
    assert key_index_pages() == [2]


def test_a_large_plain_batch_keeps_every_field_order_and_wake_up(pg_url: str,
                                                                  pg: Driver) -> None:
    """A batch of plain jobs due now goes in with COPY: every field as given, the server's
    time, FIFO within a priority, and one NOTIFY that wakes an idle worker."""
    jobs = [new(payload=bytes([i % 256]) * (i + 1), priority=5 + i % 2, tags=("t", str(i)),
                batch_id="b1" if i % 3 else None, max_attempts=1 + i % 4, timeout_seconds=7)
            for i in range(100)]
    waiter = open_driver(pg_url)
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(
        waiter.wait_for_work(Q, 30) is None))
    try:
        thread.start()
        before = pg.now()
        assert pg.push(jobs) == [j.id for j in jobs]
        thread.join(30)
        assert woke == [True]
        for job in jobs:
            got = record(pg, job.id)
            assert (got.payload, got.priority, got.tags, got.batch_id, got.max_attempts,
                    got.timeout_seconds, got.state) == (job.payload, job.priority, job.tags,
                                                        job.batch_id, job.max_attempts, 7,
                                                        State.PENDING)
            assert before <= got.created_at == got.available_at <= pg.now()
        order = [j.id for j in pg.reserve("w", Q, 100, 30)]
        assert order == [j.id for j in jobs if j.priority == 6] + [
            j.id for j in jobs if j.priority == 5]
    finally:
        waiter.close()


def test_a_large_batch_of_ids_of_any_length_keeps_each_id(pg: Driver) -> None:
    """COPY rows assume a UUID's 36 characters per id only when every id of a run has them:
    ids of a caller's own (any text) are stored as given."""
    mixed = [new(id=f"job-{i}" + "é" * (i % 3), payload=bytes([i])) for i in range(60)]
    mixed[30:30] = [new(), new()]
    near = [new(payload=bytes([i])) for i in range(40)] + [new(id="a" * 35), new(id="b" * 37)]
    for jobs in (mixed, near):  # the second: 36 characters on average
        assert pg.push(jobs) == [job.id for job in jobs]
        assert [(record(pg, job.id).id, record(pg, job.id).payload) for job in jobs] == [
            (job.id, job.payload) for job in jobs]


def test_a_large_batch_with_a_value_beyond_its_column_is_refused(pg: Driver) -> None:
    """COPY's rows are formatted by the driver: an int the int4 column cannot hold fails the
    push, as a single push does, instead of being stored cut to its low 32 bits."""
    jobs = [new() for _ in range(49)] + [new(max_attempts=2**40 + 7)]
    with pytest.raises(DriverError, match="out of range"):
        pg.push(jobs)
    with pytest.raises(DriverError, match="out of range"):
        pg.push(jobs[-1:])
    assert pg.get(jobs[0].id) is None


def test_a_large_delayed_batch_stays_delayed(pg: Driver) -> None:
    jobs = [new(delay_seconds=3600.0 if i == 7 else 0.0) for i in range(50)]
    pg.push(jobs)
    assert len(pg.reserve("w", Q, 100, 30)) == 49
    assert record(pg, jobs[7].id).available_at > pg.now()


def test_a_reservation_commits_durably(pg: Driver) -> None:
    """`reserve` waits for its WAL flush like every other write: a reservation lost in a crash
    would hand its lease epoch to the next worker too, and the first worker's heartbeats and
    completion would pass for the new owner's. Run in a transaction of our own, the statement
    must leave `synchronous_commit` as it found it."""
    pg.push([new() for _ in range(3)])
    params = {"worker": "w", "lease": 30.0, "queues": [Q[0]], "limit": 2}
    reserve = pg._q["reserve"]  # type: ignore[attr-defined]
    with pg._pool.connection() as conn, conn.transaction():  # type: ignore[attr-defined]
        assert len(conn.execute(reserve, params).fetchall()) == 2
        assert conn.execute("SHOW synchronous_commit").fetchall() == [("on",)]


def _fail_inserts(pg_url: str, sqlstate: str, first: int = 1, last: int = 1) -> None:
    """Make the inserts number ``first`` to ``last`` into the schema's job table fail with
    ``sqlstate`` (a trigger counting with a sequence, which a rollback does not undo)."""
    base, schema = pg_url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SEQUENCE "{schema}".inserts_seen')
        conn.execute(f'''CREATE FUNCTION "{schema}".fail_insert() RETURNS trigger
            LANGUAGE plpgsql AS $$ DECLARE n bigint := nextval('"{schema}".inserts_seen');
            BEGIN
                IF n BETWEEN {first} AND {last} THEN
                    RAISE EXCEPTION 'simulated %', '{sqlstate}' USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN NEW;
            END $$''')
        conn.execute(f'CREATE TRIGGER fail_insert BEFORE INSERT ON "{schema}".job_queue '
                     f'FOR EACH ROW EXECUTE FUNCTION "{schema}".fail_insert()')


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_push_rolled_back_by_a_deadlock_or_serialization_failure_is_retried(
        pg_url: str, pg: Driver, sqlstate: str) -> None:
    """The server rolled the whole statement back, so the driver runs it again: a deadlock
    (40P01) or a serialization failure (40001). psycopg gives each its own class, outside its
    TransactionRollback (40000 only): they used to surface as DriverUnavailable at once."""
    _fail_inserts(pg_url, sqlstate)
    single, batch = new(), [new() for _ in range(100)]
    assert pg.push([single]) == [single.id]
    assert pg.push(batch) == [job.id for job in batch]
    assert pg.count(JobFilter()) == 101


def test_a_push_that_keeps_deadlocking_is_a_conflict(pg_url: str, pg: Driver) -> None:
    _fail_inserts(pg_url, "40P01", 1, 3)
    with pytest.raises(Conflict, match="rolled back by a concurrent change"):
        pg.push([new()])
    assert pg.count(JobFilter()) == 0


@pytest.mark.parametrize("analyzed", [False, True])
def test_prune_reads_the_finished_jobs_from_their_indexes(pg_url: str, pg: Driver,
                                                          analyzed: bool) -> None:
    """Prune and its dry run read the jobs past their retention from migration 13's two
    partial indexes (completed; failed or cancelled), by the time they finished, young table
    or analyzed; before, every finished row was read to compare its time."""
    from taskqueue.drivers.postgres import _queries

    jobs = [new() for _ in range(3000)]
    pg.push(jobs)
    for _ in range(6):
        running = pg.reserve("w", Q, 500, 30)
        assert all(pg.complete_many([(j.token, None) for j in running[:400]]))
        assert all(pg.fail(j.token, "x", None) for j in running[400:])
    base, schema = pg_url.split("?schema=")
    queries = _queries(schema)
    params = {"completed": 3600.0, "failed": 3600.0, "limit": 100}
    with psycopg.connect(base) as conn:
        if analyzed:
            conn.execute(f'ANALYZE "{schema}".job_queue')
        for name in ("prune", "prune_count"):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + queries[name], params))
            assert "idx_done_completed" in plan and "idx_done_failed" in plan, (name, plan)
            # no row is read to compare its time (the DELETE may join the few found ones to
            # the table as the planner likes)
            assert not [line for line in plan.splitlines() if "Filter:" in line and (
                "completed_at" in line or "COALESCE" in line)], (name, plan)


def test_a_streamed_batch_rolled_back_by_a_deadlock_is_sent_again_whole(pg_url: str) -> None:
    """``push_many`` makes its jobs a run at a time while their COPY runs. A deadlock at
    the first attempt's 300th row rolls the COPY back and the driver retries: the retry sends
    every job again, those made before the failure and the rest, each stored once, in order."""
    from taskqueue import QueueManager
    from taskqueue.jobs.definition import Call

    manager = QueueManager.from_url(pg_url)
    _fail_inserts(pg_url, "40P01", 300, 300)
    try:
        handles = manager.push_many([Call("t", {"args": [i]}, {}) for i in range(1000)])
        base, schema = pg_url.split("?schema=")
        with psycopg.connect(base) as conn:
            seen = conn.execute(f'SELECT last_value FROM "{schema}".inserts_seen').fetchone()
        assert seen == (1300,), "the first attempt failed at row 300, the second sent 1,000"
        assert len(set(handles)) == 1000
        assert [manager.decode(manager.require(h))["args"] for h in handles] == [
            [i] for i in range(1000)]
        assert manager.driver.count(JobFilter()) == 1000
    finally:
        manager.close()
