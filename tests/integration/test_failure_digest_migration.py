"""The migration that groups failures by a digest of the exception (issue 18 item 13) fills
the digest in for a store that already holds failed jobs: a store as the code before it left
one (failed, retrying and cancelled jobs; the digest, its triggers and its index taken away,
the version unrecorded) groups its failures exactly as before after ``migrate``, and keeps
doing so as those jobs fail again, are retried or are restored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue.drivers import Driver, JobFilter, open_driver
from taskqueue.jobs.states import State
from tests.backends import URLS
from tests.conformance.test_driver import new
from tests.integration.test_stats_migration import EXECUTE

#: Per SQL backend: (the digest's schema version, statements that take the digest away).
UNDO: dict[str, tuple[int, list[str]]] = {
    "postgres": (10, ["DROP TRIGGER job_exception_digest_insert ON {schema}.job_queue",
                      "DROP TRIGGER job_exception_digest_update ON {schema}.job_queue",
                      "DROP FUNCTION {schema}.taskqueue_exception_digest()",
                      "DROP INDEX {schema}.idx_failed_digest",
                      "ALTER TABLE {schema}.job_queue DROP COLUMN exception_digest"]),
    "sqlite": (12, ["DROP TRIGGER job_error_ref_insert", "DROP TRIGGER job_error_ref_update",
                    "DROP INDEX idx_failed_ref", "DROP TABLE job_error_texts",
                    "ALTER TABLE job_queue DROP COLUMN exception_ref",
                    "CREATE INDEX idx_failed_text ON job_queue (exception, name, queue_name, id, "
                    "failed_at, updated_at) WHERE state = 'failed'"]),
}
FAILED = JobFilter(states=(State.FAILED,))


@pytest.fixture(params=sorted(UNDO))
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with URLS[request.param](tmp_path) as url:
        yield request.param, url


def _fail(driver: Driver, job_id: str, error: str, retry_in: float | None = None) -> None:
    taken = driver.reserve_job("w", job_id, 30)
    assert taken is not None and driver.fail(taken.token, error, retry_in)


def _groups(driver: Driver) -> list[tuple[str | None, int, tuple[str, ...]]]:
    return [(t.exception, t.count, t.queues) for t in driver.error_texts(FAILED, 100)]


def test_the_digest_migration_keeps_the_groups_of_an_existing_store(
        old_store: tuple[str, str]) -> None:
    backend, url = old_store
    version, undo = UNDO[backend]
    driver = open_driver(url)
    try:
        jobs = [new(queue_name=q) for q in ("a", "a", "b", "b", "b", "c", "c")]
        driver.push(jobs)
        ids = [j.id for j in jobs]
        for job_id, error in zip(ids[:4], ("E: one", "E: one", "E: one", "E: two"),
                                 strict=True):
            _fail(driver, job_id, error)
        _fail(driver, ids[4], "E: two", retry_in=0.0)   # retrying with a text
        driver.cancel(ids[5], "stopped by hand")          # cancelled with a text
        _fail(driver, ids[6], "Traceback (most recent call last):\n" + "  x\n" * 2000 +
              "E: long")                                  # longer than an index entry may be
        before = _groups(driver)
        EXECUTE[backend](driver, [*undo, f"DELETE FROM taskqueue_migrations WHERE version = "
                                         f"{version}"])
        assert driver.missing_migrations() == [version]

        assert driver.migrate() == [version]
        assert _groups(driver) == before
        assert before[0] == ("E: one", 3, ("a", "b"))
        _fail(driver, ids[4], "E: two")                   # fails again with the same text
        assert driver.retry(ids[0])
        record = driver.get(ids[3])
        assert record is not None and driver.delete(ids[3])
        assert driver.restore([record]) == 1
        after = {text: (n, queues) for text, n, queues in _groups(driver)}
        assert after["E: one"] == (2, ("a", "b"))
        assert after["E: two"] == (2, ("b",))
        assert sum(n for n, _ in after.values()) == driver.count(FAILED) == 5
    finally:
        driver.close()


def test_postgres_groups_failed_jobs_from_the_digest_index(tmp_path: Path) -> None:
    """The plan of the grouping reads idx_failed_digest (an index-only scan once vacuumed)."""
    with URLS["postgres"](tmp_path) as url:
        driver = open_driver(url)
        try:
            table = f'"{driver.schema}".job_queue'  # type: ignore[attr-defined]

            def plan(cur: object) -> str:
                cur.execute("SET LOCAL enable_seqscan = off")  # type: ignore[attr-defined]
                rows = cur.execute(  # type: ignore[attr-defined]
                    f"EXPLAIN SELECT exception_digest, name, queue_name, count(*), max(id), "
                    f"max(coalesce(failed_at, updated_at)) FROM {table} "
                    "WHERE state = 'failed' GROUP BY 1, 2, 3").fetchall()
                return "\n".join(r[0] for r in rows)
            assert "idx_failed_digest" in driver._run(plan, tx=True)  # type: ignore[attr-defined]
        finally:
            driver.close()


def test_sqlite_prune_forgets_the_texts_no_failed_job_has(tmp_path: Path) -> None:
    """SQLite stores each failed job's text once (job_error_texts); a text no failed job
    points at any more (retried, pruned) goes with the next prune that deletes jobs."""
    with URLS["sqlite"](tmp_path) as url:
        driver = open_driver(url)
        try:
            jobs = [new(queue_name="a") for _ in range(3)]
            driver.push(jobs)
            for job, error in zip(jobs, ("E: kept", "E: retried", "E: kept"), strict=True):
                _fail(driver, job.id, error)
            assert driver.retry(jobs[1].id)
            done = new(queue_name="a")
            driver.push([done])
            taken = driver.reserve_job("w", done.id, 30)
            assert taken is not None and driver.complete(taken.token)

            def texts() -> list[str]:
                return sorted(r[0] for r in driver._read(  # type: ignore[attr-defined]
                    "SELECT exception FROM job_error_texts"))
            assert texts() == ["E: kept", "E: retried"]
            assert driver.prune(0.0, 3600.0) == 1
            assert texts() == ["E: kept"]
            assert _groups(driver) == [("E: kept", 2, ("a",))]
        finally:
            driver.close()
