"""PostgreSQL's dashboard searches at scale: trigram indexes for tags and exception texts
(migration 7) and planner estimates for counts that would read most of a large table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from taskqueue.drivers import JobFilter, open_driver  # noqa: E402
from taskqueue.drivers import postgres as pg_driver  # noqa: E402
from taskqueue.drivers.base import EstimatesCounts  # noqa: E402
from taskqueue.drivers.postgres import PostgresDriver  # noqa: E402
from taskqueue.jobs.states import State  # noqa: E402
from tests.backends import postgres_url  # noqa: E402
from tests.conformance.test_driver import new  # noqa: E402


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresDriver]:
    with postgres_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, PostgresDriver)
        try:
            yield driver
        finally:
            driver.close()


def plan(pg: PostgresDriver, where: str, params: list[object]) -> str:
    """The plan of a listing query with only bitmap scans allowed: on a table this small the
    planner rightly prefers reading it (or the id index) whole; this shows the search *can* be
    answered from an index, as it is on a large table."""
    def work(cur: psycopg.Cursor) -> str:  # type: ignore[type-arg]
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        rows = cur.execute(f"EXPLAIN (FORMAT JSON) SELECT id FROM {pg._table} WHERE {where} "
                           "ORDER BY id DESC LIMIT 51", params).fetchall()
        return json.dumps(rows[0][0])
    return pg._run(work, tx=True)


def test_tag_and_error_searches_read_the_trigram_indexes(pg: PostgresDriver) -> None:
    rare = new(tags=("vip:rare",))
    pg.push([rare, *(new(tags=("common",)) for _ in range(50))])
    job = pg.reserve_job("w", rare.id, 30)
    assert job is not None and pg.fail(job.token, "QuotaExceeded: tenant 8841", None)
    assert "idx_tags_trgm" in plan(pg, "tags LIKE %s ESCAPE '!'", ['%"vip:rare"%'])
    assert "idx_exception_trgm" in plan(pg, "exception LIKE %s ESCAPE '!'",
                                        ["%QuotaExceeded%"])
    assert [r.id for r in pg.search(JobFilter(tag="vip:rare"))] == [rare.id]
    assert [r.id for r in pg.search(JobFilter(exception_contains="Quota"))] == [rare.id]
    assert pg.count(JobFilter(exception_contains="tenant 8841",
                              states=(State.FAILED,))) == 1


def test_counts_estimated_only_when_counting_would_be_slow(pg: PostgresDriver,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    assert isinstance(pg, EstimatesCounts)
    pg.push([new() for _ in range(30)])
    assert pg.estimate_count(JobFilter()) is None, "a small table is counted"
    monkeypatch.setattr(pg_driver, "ESTIMATE_ABOVE_COST", 0.0)
    estimate = pg.estimate_count(JobFilter(states=(State.PENDING,)))
    assert isinstance(estimate, int) and estimate >= 1
