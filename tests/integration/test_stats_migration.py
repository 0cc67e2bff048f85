"""The migration that adds the stats counters (issue 20 item 5) counts the jobs a store already
holds: a store as the code before it left one (jobs in every state; counters and triggers taken
away, the version unrecorded) reports exact figures after ``migrate``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue.drivers import Driver, JobFilter, open_driver
from taskqueue.jobs.states import State
from tests.backends import URLS
from tests.conformance.test_driver import new

#: Per SQL backend: (the counters' schema version, statements that take the counters away).
UNDO: dict[str, tuple[int, list[str]]] = {
    "sqlite": (6, ["DROP TRIGGER job_counts_insert", "DROP TRIGGER job_counts_update",
                   "DROP TRIGGER job_counts_delete", "DROP TRIGGER job_counts_move",
                   "DROP TABLE job_counts", "DROP TABLE job_completions",
                   "DROP TABLE job_count_states", "DROP TABLE job_completion_slots"]),
    "postgres": (8, ["DROP TRIGGER taskqueue_count_insert ON {schema}.job_queue",
                     "DROP TRIGGER taskqueue_count_update ON {schema}.job_queue",
                     "DROP TRIGGER taskqueue_count_delete ON {schema}.job_queue",
                     "DROP FUNCTION {schema}.taskqueue_count_jobs()",
                     "DROP FUNCTION {schema}.taskqueue_fold_counts()",
                     "DROP TABLE {schema}.job_counts, {schema}.job_count_deltas, "
                     "{schema}.job_completions"]),
    "mysql": (6, ["DROP TABLE job_counts, job_completions"]),
}
#: Later migrations that replace what the counters' migration made (and go with it here):
#: MySQL's 7 and 8 replace its triggers, then drop them (the driver counts its own writes).
REDONE: dict[str, list[int]] = {"mysql": [7, 8]}


def _sqlite(driver: Driver, statements: list[str]) -> None:
    conn = driver._conn  # type: ignore[attr-defined]
    for statement in statements:
        conn.execute(statement)


def _postgres(driver: Driver, statements: list[str]) -> None:
    schema = f'"{driver.schema}"'  # type: ignore[attr-defined]

    def work(cur: Any) -> None:
        for statement in statements:
            cur.execute(statement.replace("{schema}", schema).replace(
                "FROM taskqueue_migrations", f"FROM {schema}.taskqueue_migrations"))
    driver._run(work, tx=True)  # type: ignore[attr-defined]


def _mysql(driver: Driver, statements: list[str]) -> None:
    def work(cur: Any) -> None:
        for statement in statements:
            cur.execute(statement)
    driver._run(work)  # type: ignore[attr-defined]


EXECUTE: dict[str, Callable[[Driver, list[str]], None]] = {
    "sqlite": _sqlite, "postgres": _postgres, "mysql": _mysql}


@pytest.fixture(params=sorted(UNDO))
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with URLS[request.param](tmp_path) as url:
        yield request.param, url


def test_the_counters_migration_counts_an_existing_store(old_store: tuple[str, str]) -> None:
    backend, url = old_store
    version, undo = UNDO[backend]
    driver = open_driver(url)
    try:
        driver.push([new(queue_name="a", priority=p) for p in (1, 2, 3, 10)])
        driver.push([new(queue_name="b") for _ in range(5)])
        first, second = driver.reserve("w", ["a"], 2, 30.0)
        assert driver.complete(first.token) and driver.fail(second.token, "x", None)
        driver.reserve("w", ["b"], 1, 30.0)
        # the store as the code before the counters left it: rows, no counters
        versions = [version, *REDONE.get(backend, [])]
        EXECUTE[backend](driver, [*undo, "DELETE FROM taskqueue_migrations WHERE version IN "
                                         f"({', '.join(map(str, versions))})"])
        assert driver.missing_migrations() == versions

        assert driver.migrate() == versions
        stats = driver.stats()
        for queue in ("a", "b"):
            assert stats[queue].counts == {
                s: driver.count(JobFilter(queues=(queue,), states=(s,))) for s in State}
        assert stats["a"].avg_priority == 1.5      # the two waiting: priorities 2 and 1
        assert stats["a"].completed_last_minute == 1
        assert stats["b"].counts[State.PENDING] == 4
        driver.push([new(queue_name="a", priority=3)])
        assert driver.stats()["a"].counts[State.PENDING] == 3, "counted from now on"
    finally:
        driver.close()
