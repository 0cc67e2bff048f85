"""The MySQL driver's batched hot paths (``_mysql_batch``): complete_many as one script, and
the one-statement pick of reserve. Each test fails on a plausible wrong shortcut."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue.drivers import open_driver
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


def test_hot_paths_count_their_own_rows_and_fire_no_counting_trigger(driver: Any,
                                                                    url: str) -> None:
    """Migration 7: a plain push of 16 jobs or more, a reservation and a batch of completions
    count their rows themselves, a statement per batch, while the counting triggers stand
    aside (a probe trigger, gated like them, records every row they would have counted: only
    the single push's); the other verbs still go through the triggers. Either way the
    counters equal the table, including after a replayed batch of completions and a stale
    token."""
    raw(url, "CREATE TABLE probe (kind VARCHAR(8))")
    raw(url, "CREATE TRIGGER probe_update AFTER UPDATE ON job_queue FOR EACH ROW "
             "IF @taskqueue_counted IS NULL AND NOT (OLD.state <=> NEW.state) THEN "
             "INSERT INTO probe VALUES ('update'); END IF")
    raw(url, "CREATE TRIGGER probe_insert AFTER INSERT ON job_queue FOR EACH ROW "
             "IF @taskqueue_counted IS NULL THEN INSERT INTO probe VALUES ('insert'); END IF")
    driver.push([new(priority=p % 3) for p in range(60)])
    driver.push([new(queue_name="other")])
    running = driver.reserve("w", Q, 50, 30)
    assert len(running) == 50
    items = [(j.token, None) for j in running[:40]]
    assert all(driver.complete_many(items))
    assert not any(driver.complete_many(items))          # replayed: nothing changes twice
    stale = LeaseToken(running[40].id, running[40].lease_epoch + 1)
    assert driver.complete_many([(stale, None), (running[41].token, None)]) == [False, True]
    probed = "SELECT kind, COUNT(*) FROM probe GROUP BY kind ORDER BY kind"
    assert raw(url, probed) == [("insert", 1)]     # the single push: a trigger call is cheaper
    assert counters(url) == table_counts(url)
    assert driver.fail(running[42].token, "boom", retry_in=None)   # a trigger counts this one
    assert raw(url, probed) == [("insert", 1), ("update", 1)]
    assert counters(url) == table_counts(url)
    completed = int(raw(url, "SELECT SUM(n) FROM job_completions")[0][0])
    assert completed == 41


def test_a_failed_script_leaves_the_session_counted_by_the_triggers(driver: Any,
                                                                  url: str) -> None:
    """A push that fails half-way (a duplicate id) rolls back its rows and its counts, and the
    pooled session it used goes back with the triggers counting again."""
    job = new()
    driver.push([job])
    with pytest.raises(Exception):  # noqa: B017 - Conflict or IntegrityError, both refuse it
        driver.push([new(), job])
    for _ in range(3):   # whichever pooled session comes next
        driver.cancel(driver.push([new()])[0], "x")
    assert counters(url) == table_counts(url)
