"""The MySQL driver's batched hot paths (``_mysql_batch``): complete_many as one script, and
the one-statement pick of reserve. Each test fails on a plausible wrong shortcut."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State
from tests.backends import mysql_url
from tests.conformance.test_driver import new

pymysql = pytest.importorskip("pymysql")
Q = ["default"]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with mysql_url(tmp_path) as u:
        yield u


@pytest.fixture
def driver(url: str) -> Iterator[Any]:
    d = open_driver(url, read_timeout=10)
    try:
        yield d
    finally:
        d.close()


def raw(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port, user="root",
                           database=parts.path.lstrip("/"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def waiting_on(url: str, job_id: str) -> int:
    return int(raw(url, "SELECT waiting_on FROM job_queue WHERE id = %s", job_id)[0][0])


def test_mixed_batch_accepts_each_live_token_once_with_its_own_result(driver: Any,
                                                                      url: str) -> None:
    a, b, c = new(), new(), new()
    driver.push([a, b, c])
    held = {j.id: j for j in driver.reserve("w", Q, 10, 30)}
    ta, tb, tc = (held[x.id].token for x in (a, b, c))
    items: list[tuple[LeaseToken, str | None]] = [
        (LeaseToken(a.id, ta.epoch - 1), "stale-a"),   # stale, named before the live one
        (ta, "live-a"),
        (ta, "again-a"),                               # duplicate of a live token
        (LeaseToken(uuid7(), 1), "unknown"),
        (tb, None),
        (LeaseToken(c.id, tc.epoch + 5), "future-c"),  # an epoch nobody holds
    ]
    assert driver.complete_many(items) == [False, True, False, False, True, False]
    got = {x.id: driver.get(x.id) for x in (a, b, c)}
    assert got[a.id].state == State.COMPLETED and got[a.id].result == "live-a"
    assert got[b.id].state == State.COMPLETED and got[b.id].result is None
    assert got[c.id].state == State.PROCESSING and got[c.id].result is None
    assert got[a.id].lease_owner is None and got[a.id].progress == 100
    # a second batch with the same tokens is refused entirely, c is still completable
    assert driver.complete_many([(ta, "x"), (tb, "y"), (tc, "z")]) == [False, False, True]
    assert driver.get(a.id).result == "live-a" and driver.get(c.id).result == "z"


def test_dependents_released_once_per_edge_for_the_batch_jobs_only(driver: Any,
                                                                   url: str) -> None:
    p1, p2, p3, done = new(), new(), new(), new()
    driver.push([done])
    early = driver.reserve("w", Q, 1, 30)[0]
    assert driver.complete(early.token)
    both = new(dependencies=(p1.id, p2.id))         # child of two jobs of one batch
    of_p3 = new(dependencies=(p3.id,))              # its parent's token will be stale
    with_done = new(dependencies=(done.id, p3.id))  # one edge satisfied at push already
    driver.push([p1, p2, p3, both, of_p3, with_done])
    assert waiting_on(url, both.id) == 2 and waiting_on(url, with_done.id) == 1
    held = {j.id: j for j in driver.reserve("w", Q, 10, 30)}
    assert set(held) == {p1.id, p2.id, p3.id}
    stale3 = LeaseToken(p3.id, held[p3.id].lease_epoch - 1)
    out = driver.complete_many([(held[p1.id].token, None), (stale3, None),
                                (early.token, None), (held[p2.id].token, None),
                                (held[p1.id].token, None)])
    assert out == [True, False, False, True, False]
    assert waiting_on(url, both.id) == 0, "one wait per edge, not one per child"
    assert waiting_on(url, of_p3.id) == 1 and waiting_on(url, with_done.id) == 1
    edges = dict(raw(url, "SELECT depends_on, satisfied FROM job_dependencies "
                          "WHERE job_id = %s", both.id))
    assert edges == {p1.id: 1, p2.id: 1}
    assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [both.id]
    # p3 completes later: its two children each lose exactly one wait
    assert driver.complete_many([(held[p3.id].token, None)]) == [True]
    assert waiting_on(url, of_p3.id) == 0 and waiting_on(url, with_done.id) == 0
    assert {j.id for j in driver.reserve("w", Q, 10, 30)} == {of_p3.id, with_done.id}


def test_each_jobs_idempotency_mode_applies_in_one_batch(driver: Any, url: str) -> None:
    jobs = {mode: new(idempotency_key=f"k-{mode}", idempotency_mode=mode,
                      idempotency_window=3600.0 if mode == "window" else 0.0)
            for mode in ("exists", "finished", "window")}
    driver.push(list(jobs.values()))
    held = driver.reserve("w", Q, 10, 30)
    assert driver.complete_many([(j.token, None) for j in held]) == [True] * 3
    rows = {r[0]: r[1:] for r in raw(
        url, "SELECT idempotency_mode, idempotency_key, idempotency_expires_at FROM job_queue")}
    assert rows["exists"][0] == "k-exists" and rows["exists"][1] is None
    assert rows["finished"][0] is None and rows["finished"][1] is None
    assert rows["window"][0] == "k-window" and rows["window"][1] is not None
    assert driver.push([new(idempotency_key="k-exists")]) == [jobs["exists"].id]
    assert driver.push([new(idempotency_key="k-window")]) == [jobs["window"].id]
    fresh = new(idempotency_key="k-finished")
    assert driver.push([fresh]) == [fresh.id]


def test_complete_many_does_not_wait_for_a_child_being_pushed(driver: Any, url: str) -> None:
    parent = new()
    driver.push([parent])
    job = driver.reserve("w", Q, 1, 30)[0]
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    app = pymysql.connect(host=parts.hostname, port=parts.port, user="root",
                          database=parts.path.lstrip("/"))
    try:
        app.begin()  # a child's edge, inserted but not committed
        with app.cursor() as cur:
            cur.execute("INSERT INTO job_dependencies (job_id, depends_on) VALUES (%s, %s)",
                        (uuid7(), parent.id))
        started = time.monotonic()
        assert driver.complete_many([(job.token, None)]) == [True]
        assert time.monotonic() - started < 2, "the completion waited for the push"
        app.rollback()
    finally:
        app.close()


@contextlib.contextmanager
def another_session_holding_the_best_two(url: str) -> Iterator[Any]:
    """A second connection that has run a reservation's pick for the two best ready jobs and
    holds their row locks until it rolls back (yielded) or the block ends."""
    from urllib.parse import urlsplit

    from taskqueue.drivers.mysql import Q as queries

    parts = urlsplit(url)
    other = pymysql.connect(host=parts.hostname, port=parts.port, user="root",
                            database=parts.path.lstrip("/"))
    try:
        with other.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            other.begin()
            cur.execute(queries["reserve_pick"].format(queues="%s"), ("default", 2))
            assert len(cur.fetchall()) == 2
        yield other
    finally:
        other.close()


def test_reserve_locks_only_the_rows_it_takes(driver: Any, url: str) -> None:
    """Another session holding a reservation's pick locks only its own candidates, so a
    concurrent reserve gets the rest (a locking read over the ready index would lock all)."""
    driver.push([new(priority=p) for p in (9, 8, 7, 6, 5, 4)])
    with another_session_holding_the_best_two(url) as other:
        got = driver.reserve("w", Q, 10, 30)
        assert [j.priority for j in got] == [7, 6, 5, 4], "skips the two held, takes the rest"
        other.rollback()
        assert [j.priority for j in driver.reserve("w", Q, 10, 30)] == [9, 8]


def test_reserve_tops_up_past_rows_another_session_holds(driver: Any, url: str) -> None:
    driver.push([new(priority=p) for p in (9, 8, 7, 6)])
    with another_session_holding_the_best_two(url) as other:
        got = driver.reserve("w", Q, 2, 30)  # the best two are held: look further down
        assert [j.priority for j in got] == [7, 6]
        other.rollback()


def test_migration_4_drops_unused_indexes_and_resumes_when_interrupted(driver: Any,
                                                                       url: str) -> None:
    gone = {"idx_state", "idx_queue_state", "idx_priority", "idx_created_at"}
    names = {r[2] for r in raw(url, "SHOW INDEX FROM job_queue")}
    assert not gone & names and {"idx_state_id", "idx_queue_state_id", "idx_ready"} <= names
    # a run that stopped after its first DROP: the rest is applied, the first one skipped
    raw(url, "DELETE FROM taskqueue_migrations WHERE version = 4")
    raw(url, "CREATE INDEX idx_priority ON job_queue (priority)")
    raw(url, "CREATE INDEX idx_created_at ON job_queue (created_at)")
    assert driver.migrate() == [4]
    assert not gone & {r[2] for r in raw(url, "SHOW INDEX FROM job_queue")}


def counters(url: str) -> dict[tuple[str, str], int]:
    rows = raw(url, "SELECT queue_name, state, SUM(n) FROM job_counts GROUP BY 1, 2")
    return {(q, s): int(n) for q, s, n in rows if int(n)}


def table_counts(url: str) -> dict[tuple[str, str], int]:
    rows = raw(url, "SELECT queue_name, state, COUNT(*) FROM job_queue GROUP BY 1, 2")
    return {(q, s): int(n) for q, s, n in rows}


def own_connection(url: str) -> Any:
    """A connection of the application's own (autocommit off)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port, user="root",
                           database=parts.path.lstrip("/"))


def same_counts(url: str) -> None:
    assert counters(url) == table_counts(url)


def test_no_trigger_on_the_job_table_and_every_driver_write_counts_itself(
        driver: Any, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 8: the job table has no trigger (a row trigger cost MariaDB tens of
    microseconds per row, even gated off), and the counters equal the table after each path
    that adds, moves or removes jobs, those the conformance mix does not take included: keyed
    pushes meeting an existing key, a push on the caller's connection (committed, rolled
    back), reserve_job, recover_worker, recover_expired, dependency_failed, restore, chunked
    prune, replayed and stale completions."""
    triggers = "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = " \
               "DATABASE() AND event_object_table = 'job_queue'"
    assert raw(url, triggers) == [(0,)]
    driver.push([new(priority=p % 3) for p in range(60)])
    driver.push([new(queue_name="other")])
    keyed = [new(idempotency_key="k1", priority=2), new(idempotency_key="k2", priority=7)]
    assert driver.push(keyed) == [j.id for j in keyed]
    again = [new(idempotency_key="k1", priority=2), new(idempotency_key="k3", priority=7)]
    assert driver.push(again)[0] == keyed[0].id        # k1 exists: one job added, not two
    same_counts(url)
    for commit in (True, False):
        app = own_connection(url)
        try:
            app.begin()
            driver.push([new(queue_name="tx"), new(queue_name="tx", priority=9)], connection=app)
            app.commit() if commit else app.rollback()
        finally:
            app.close()
    same_counts(url)
    running = driver.reserve("w", Q, 50, 30)
    items = [(j.token, None) for j in running[:40]]
    assert all(driver.complete_many(items))
    assert not any(driver.complete_many(items))          # replayed: nothing changes twice
    stale = LeaseToken(running[40].id, running[40].lease_epoch + 1)
    assert driver.complete_many([(stale, None), (running[41].token, None)]) == [False, True]
    assert driver.complete(running[42].token) and not driver.complete(running[42].token)
    assert driver.fail(running[43].token, "boom", retry_in=None)
    assert not driver.fail(running[43].token, "boom", retry_in=None)
    assert driver.fail(running[44].token, "boom", retry_in=30.0)
    assert driver.release(running[45].token, 0.0, "later")
    same_counts(url)
    held = sorted(j.id for j in [running[40], *running[46:50]])
    assert driver.recover_worker("w", "died", started={running[46].id}) == held
    # (one retried, four handed back)
    one = driver.reserve_job("w2", driver.search(JobFilter(states=(State.PENDING,),
                                                           limit=1))[0].id, 0.1)
    assert one is not None
    time.sleep(0.3)
    assert driver.recover_expired() == [one.id]
    same_counts(url)
    parent = new(queue_name="dep")
    driver.push([parent, new(queue_name="dep", priority=3, dependencies=(parent.id,))])
    taken = driver.reserve("w", ["dep"], 1, 30)[0]
    assert driver.fail(taken.token, "x", None)
    assert len(driver.dependency_failed(parent.id, True, "parent failed")) == 1
    same_counts(url)
    done = driver.search(JobFilter(states=(State.COMPLETED,), limit=100))
    assert driver.delete(done[0].id)
    assert driver.restore([done[0], done[1]]) == 1           # done[1] is still there
    same_counts(url)
    monkeypatch.setattr("taskqueue.drivers.mysql._PRUNE_CHUNK", 7)
    finished = sum(n for (q, s), n in table_counts(url).items()
                   if s in ("completed", "failed", "cancelled"))
    assert driver.prune(0.0, 0.0) == finished > 7
    same_counts(url)
    assert int(raw(url, "SELECT SUM(n) FROM job_completions")[0][0]) == 42


def test_a_failed_push_counts_nothing(driver: Any, url: str) -> None:
    """A push that fails half-way (a duplicate id) rolls back its rows and its counts."""
    job = new()
    driver.push([job])
    for batch in ([new(), job], [new() for _ in range(20)] + [job]):
        with pytest.raises(Exception):  # noqa: B017 - Conflict or IntegrityError, both refuse it
            driver.push(batch)
    same_counts(url)


def test_recount_corrects_the_counters_after_sql_of_other_programs(driver: Any,
                                                                   url: str) -> None:
    """Writes made outside the driver are not counted until ``recount`` (which ``taskqueue
    migrate`` runs): it adds what the counters miss, once."""
    driver.push([new(priority=p) for p in (1, 2, 3)])
    job = driver.reserve("w", Q, 1, 30)[0]
    raw(url, "UPDATE job_queue SET state = 'cancelled' WHERE id = %s", job.id)
    raw(url, "DELETE FROM job_queue WHERE state = 'pending' AND priority = 1")
    raw(url, "INSERT INTO job_queue (id, payload, name, queue_name, created_at, updated_at, "
             "available_at) SELECT CONCAT('x', RIGHT(id, 35)), payload, name, 'other', created_at, "
             "updated_at, available_at FROM job_queue WHERE priority = 2")
    assert counters(url) != table_counts(url)
    assert driver.recount() == 4      # processing -1, cancelled +1, pending -1, other +1
    same_counts(url)
    assert driver.recount() == 0
    raw(url, "DELETE FROM job_queue WHERE queue_name = 'other'")
    from click.testing import CliRunner

    from taskqueue.cli import cli
    result = CliRunner().invoke(cli, ["--url", url, "migrate"], catch_exceptions=False)
    assert "stats counters corrected: 1 job(s)" in result.output
    same_counts(url)


def test_migration_8_drops_the_triggers_of_a_counted_store(driver: Any, url: str) -> None:
    """A store at migration 7 (its triggers counting another program's writes) upgrades to
    counters the driver keeps: the triggers go, the counts stay exact."""
    from taskqueue.drivers.mysql import Q as queries
    from taskqueue.drivers.mysql import _statements

    driver.push([new(priority=p) for p in (1, 5, 5)])
    for statement in _statements(queries["migration_7"]):
        raw(url, statement)
    raw(url, "DELETE FROM taskqueue_migrations WHERE version = 8")
    raw(url, "INSERT INTO job_queue (id, payload, name, created_at, updated_at, available_at) "
             "VALUES ('t1', '', 'n', NOW(), NOW(), NOW())")                # counted by 7's trigger
    raw(url, "UPDATE job_queue SET state = 'failed' WHERE priority = 1")
    same_counts(url)
    assert driver.migrate() == [8]
    assert raw(url, "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = "
                    "DATABASE() AND event_object_table = 'job_queue'") == [(0,)]
    same_counts(url)
    assert driver.retry(driver.search(JobFilter(states=(State.FAILED,)))[0].id)
    assert len(driver.reserve("w", Q, 10, 30)) == 4
    same_counts(url)


def test_prune_reads_the_finished_jobs_and_their_edges_by_index(driver: Any, url: str) -> None:
    """Prune and its dry run read the jobs past their retention from idx_done (migration 9:
    which age applies, since when), and delete the edges of the jobs they deleted through
    idx_dependencies_job; before, every finished row was read to compare its time and every
    edge was joined with the table on each prune."""
    from taskqueue.drivers.mysql import Q as queries

    driver.push([new() for _ in range(3000)])
    for _ in range(6):
        running = driver.reserve("w", Q, 500, 30)
        assert all(driver.complete_many([(j.token, None) for j in running[:400]]))
        assert all(driver.fail(j.token, "x", None) for j in running[400:])
    raw(url, "ANALYZE TABLE job_queue")
    age = 3600 * 10**6
    ids = [r[0] for r in raw(url, "SELECT id FROM job_queue LIMIT 3")]
    for sql, params in [(queries["prune_lock"], (1, age, 100)),
                        (queries["prune_lock"], (2, age, 100)),
                        (queries["prune_count"], (age, age)),
                        (queries["prune_edges"].format(ids="%s, %s, %s"), tuple(ids))]:
        plan = raw(url, "EXPLAIN " + sql, *params)
        keys = {row[5] for row in plan if row[2] in ("job_queue", "job_dependencies")}
        wanted = "idx_dependencies_job" if "job_dependencies" in sql else "idx_done"
        assert keys == {wanted}, (sql, plan)


def test_prune_takes_each_kind_at_its_age_and_the_edges_of_what_it_deleted(
        driver: Any, url: str) -> None:
    parent, kept_parent, cancelled = new(), new(), new()
    child, waiting = new(dependencies=(parent.id,)), new(dependencies=(kept_parent.id,))
    driver.push([parent, kept_parent, cancelled])
    driver.push([child, waiting])
    assert driver.cancel(cancelled.id, "not needed")
    running = {r.id: r for r in driver.reserve("w", Q, 10, 30)}
    assert set(running) == {parent.id, kept_parent.id}
    assert driver.complete(running[parent.id].token, None)
    (released,) = driver.reserve("w", Q, 10, 30)
    assert released.id == child.id and driver.complete(released.token, None)
    time.sleep(1.1)
    assert driver.prune(1.0, 3600.0, dry_run=True) == 2, "the completed ones"
    assert driver.prune(3600.0, 1.0, dry_run=True) == 1, "the cancelled one"
    assert driver.prune(1.0, 3600.0) == 2
    assert driver.get(cancelled.id) is not None
    assert driver.prune(3600.0, 1.0, limit=5) == 1
    assert driver.get(cancelled.id) is None
    assert {j.id for j in driver.search(JobFilter(limit=10))} == {kept_parent.id, waiting.id}
    edges = raw(url, "SELECT job_id, depends_on FROM job_dependencies")
    assert edges == [(waiting.id, kept_parent.id)], edges
