"""SQLite's dashboard searches at scale: the trigram full-text index of tags and exception
texts (migration 7) stays in step with the jobs through every verb, answers rare searches,
and leaves common ones to the scan; counts only a scan could make are estimated."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.drivers import sqlite as sqlite_driver
from taskqueue.drivers.sqlite import SQLiteDriver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteDriver]:
    driver = open_driver(f"sqlite:///{tmp_path / 'q.db'}")
    assert isinstance(driver, SQLiteDriver)
    try:
        yield driver
    finally:
        driver.close()


def texts(path: str) -> dict[str, tuple[str | None, str | None]]:
    """job_text as it is, after FTS5's own consistency check of the index."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO job_search (job_search) VALUES ('integrity-check')")
        return {row[0]: (row[1], row[2])
                for row in conn.execute("SELECT job_id, tags, exception FROM job_text")}
    finally:
        conn.close()


def test_the_index_follows_every_verb(db: SQLiteDriver, tmp_path: Path) -> None:
    tagged, plain, doomed = new(tags=("vip",)), new(), new(tags=("x",))
    db.push([tagged, plain, doomed])
    path = str(tmp_path / "q.db")
    assert texts(path) == {tagged.id: ('["vip"]', None), doomed.id: ('["x"]', None)}
    job = db.reserve_job("w", plain.id, 30)
    assert job is not None and db.fail(job.token, "QuotaExceeded: tenant 8841", 0)
    assert texts(path)[plain.id] == (None, "QuotaExceeded: tenant 8841")
    job = db.reserve_job("w", plain.id, 30)
    assert job is not None and db.complete(job.token)
    assert plain.id not in texts(path), "a completion clears the exception"
    assert db.cancel(tagged.id, "not needed")
    assert texts(path)[tagged.id] == ('["vip"]', "not needed")
    assert db.apply_many("delete", [doomed.id]) == [doomed.id]
    assert db.delete(tagged.id)
    assert texts(path) == {}


def test_rare_texts_through_the_index_common_ones_by_scan(db: SQLiteDriver,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    common = [new(tags=("tenant:1",)) for _ in range(6)]
    rare = new(tags=("vip:rare",))
    db.push([*common, rare, new(tags=("tenant:10",))])
    monkeypatch.setattr(sqlite_driver, "FEW_MATCHES", 3)
    assert db._text_matches(JobFilter(tag="vip:rare")) == [rare.id]
    assert db._text_matches(JobFilter(tag="tenant:1")) is None, "many: scanned"
    assert [r.id for r in db.search(JobFilter(tag="vip:rare"))] == [rare.id]
    assert db.count(JobFilter(tag="tenant:1")) == 6, "the tag, not a longer one containing it"
    assert db._text_matches(JobFilter(exception_contains="%")) is None, "shorter than 3"


def test_an_existing_store_is_indexed_by_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    driver = open_driver(f"sqlite:///{path}")
    job = new(tags=("legacy",))
    driver.push([job])
    driver.close()
    conn = sqlite3.connect(path)
    with conn:
        for name in ("job_text_add", "job_text_change", "job_text_drop", "job_search_add",
                     "job_search_drop"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")  # job_text_add: until migration 8
        conn.execute("DROP TABLE job_search")
        conn.execute("DROP TABLE job_text")
        conn.execute("DELETE FROM taskqueue_migrations WHERE version >= 7")
    conn.close()
    driver = open_driver(f"sqlite:///{path}")
    try:
        assert driver._text_matches(JobFilter(tag="legacy")) == [job.id]  # type: ignore[attr-defined]
    finally:
        driver.close()


def test_a_count_only_a_scan_could_make_is_estimated(db: SQLiteDriver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_driver, "SAMPLE", 50)
    db.push([new(name="a" if i % 4 else "b") for i in range(400)])
    assert db.estimate_count(JobFilter(states=(State.PENDING,))) is None, "an index counts it"
    estimate = db.estimate_count(JobFilter(names=("a",)))
    assert estimate is not None and 200 <= estimate <= 400, estimate
    assert db.estimate_count(JobFilter(names=("a",), batch_id="none")) is None, "few to count"


def test_an_estimate_takes_the_candidates_from_the_counters(db: SQLiteDriver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Before every text or name count the estimate counted its candidates: with no queue or
    state filter, every job of the table (0.2-0.4 s at a million jobs, even for a rare word
    the full-text index then counts in milliseconds). Queue and state filters alone are read
    from the counters now; only the sample reads jobs, the newest ``SAMPLE`` of them."""
    monkeypatch.setattr(sqlite_driver, "SAMPLE", 50)
    db.push([new(name="a" if i % 4 else "b", queue_name="q" if i % 2 else "r",
                 tags=("blue",) if i % 3 else ()) for i in range(400)])
    statements: list[str] = []
    read = db._read

    def recording(sql: str, params: object = ()) -> object:
        statements.append(sql)
        return read(sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(db, "_read", recording)
    for criteria in (JobFilter(names=("a",)), JobFilter(tag="blue", queues=("q",)),
                     JobFilter(exception_contains="nothing like it"),
                     JobFilter(names=("b",), states=(State.PENDING,))):
        statements.clear()
        estimate = db.estimate_count(criteria)
        counts = [s for s in statements if "count(*)" in s.lower()]
        assert all("id >= (" in s for s in counts), (criteria, counts)
        assert any("job_counts" in s for s in statements), (criteria, statements)
        if criteria.names == ("a",):
            assert estimate is not None and 200 <= estimate <= 400, estimate


def test_an_estimate_over_several_states_samples_the_newest_jobs_of_all_of_them(
        db: SQLiteDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's edge for ``state IN (a, b)`` is merged from each state's newest jobs:
    the same jobs as the newest ``SAMPLE`` of the union, so the same estimate."""
    monkeypatch.setattr(sqlite_driver, "SAMPLE", 50)
    jobs = [new(name="a" if i % 3 else "b") for i in range(300)]
    db.push(jobs)
    db.apply_many("cancel", [j.id for j in jobs if int(j.id[-2:], 16) % 3 == 0], reason="x")
    states = (State.PENDING, State.CANCELLED)
    newest = sorted(jobs, key=lambda j: j.id, reverse=True)[:50]
    found = sum(j.name == "a" for j in newest)
    assert db.estimate_count(JobFilter(names=("a",), states=states)) == round(found * 300 / 50)


def test_jobs_pushed_and_restored_with_texts_are_found_and_others_cost_no_index_write(
        tmp_path: Path) -> None:
    """Since migration 8 the driver, not a trigger on job_queue, files a new job's texts: a
    pushed or restored job with tags (or a restored one with an exception) is found, a job
    without any has no job_text row, and no trigger on job_queue inserts into job_text."""
    path = tmp_path / "q.db"
    driver = open_driver(f"sqlite:///{path}")
    try:
        tagged, plain = new(tags=("blue",)), new()
        driver.push([tagged, plain])
        failed = dataclasses.replace(driver.get(plain.id), id=uuid7(), tags=(),
                                     state=State.FAILED, exception="KeyError: 'sku-77'")
        driver.restore([failed])
        assert driver._text_matches(JobFilter(tag="blue")) == [tagged.id]  # type: ignore[attr-defined]
        assert driver._text_matches(JobFilter(exception_contains="sku-77")) == [failed.id]  # type: ignore[attr-defined]
        conn = sqlite3.connect(path)
        texts = {row[0] for row in conn.execute("SELECT job_id FROM job_text")}
        triggers = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'job_queue' "
            "AND sql LIKE '%INSERT%job_text%' AND sql LIKE '%AFTER INSERT%'")]
        conn.close()
        assert texts == {tagged.id, failed.id} and triggers == []
    finally:
        driver.close()


def test_queue_and_state_counts_come_from_the_counters(db: SQLiteDriver, tmp_path: Path
                                                       ) -> None:
    jobs = [new(queue_name="a" if i % 2 else "b") for i in range(10)]
    db.push(jobs)
    db.apply_many("cancel", [j.id for j in jobs[:3]], reason="x")
    job = db.reserve_job("w", jobs[5].id, 30)
    assert job is not None and db.fail(job.token, "boom", None)
    conn = sqlite3.connect(tmp_path / "q.db")
    try:
        for criteria, where in ((JobFilter(), "1=1"),
                                (JobFilter(states=(State.CANCELLED,)), "state = 'cancelled'"),
                                (JobFilter(queues=("a",), states=(State.PENDING, State.FAILED)),
                                 "queue_name = 'a' AND state IN ('pending', 'failed')")):
            real = conn.execute(f"SELECT count(*) FROM job_queue WHERE {where}").fetchone()[0]
            assert db.count(criteria) == real == db._count_from_counters(criteria)
    finally:
        conn.close()
