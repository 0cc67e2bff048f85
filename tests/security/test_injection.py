"""Security 13 (issue #11): data only ever travels as parameters, on every backend.

Hostile strings (SQL, LIKE wildcards, escapes, Redis key-pattern and hash-tag syntax, Lua and
JSON fragments, path pieces) go through every verb as queue names, task names, tags, batch ids,
idempotency keys, worker ids, error texts, lock/counter/registry names and filter values. Each
must round-trip byte for byte, match only itself, and leave the store intact (a control job in an
ordinary queue is unaffected and the verbs still work afterwards).
"""

from __future__ import annotations

from pathlib import Path

from taskqueue.drivers import Driver, JobFilter
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State

HOSTILE = [
    "'; DROP TABLE job_queue; --",
    "\" OR \"1\"=\"1",
    "x' OR '1'='1' /*",
    "1; DELETE FROM job_queue WHERE 1=1",
    "') UNION SELECT * FROM taskqueue_migrations --",
    "\\'; SELECT pg_sleep(5); --",
    "%",
    "_",
    "a%b_c",
    "\\",
    "back\\slash",
    "*",
    "?[a-z]*",
    "{hash}tag",
    "}{",
    "prefix:jobs",
    "]]..redis.call('FLUSHALL')..[[",
    "\r\nFLUSHALL\r\n",
    "$(touch /tmp/x)`id`",
    "../../../etc/passwd",
    "queue/with/slashes",
    "ünïcødé-名前-🚀",
    "null",
    "[]",
    '{"tags": ["x"]}',
    " padded ",
]
IDS = [f"s{i}" for i in range(len(HOSTILE))]


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def only(driver: Driver, criteria: JobFilter) -> list[str]:
    return sorted(r.id for r in driver.search(criteria))


def test_hostile_strings_round_trip_and_match_only_themselves(driver: Driver,
                                                              tmp_path: Path) -> None:
    control = new(queue_name="default", name="control", tags=("plain", "x"), batch_id="b")
    driver.push([control])
    for s in HOSTILE:
        _round_trip(driver, s)
        assert only(driver, JobFilter(queues=("default",))) == [control.id], s
    assert driver.get(control.id) is not None, "the control job is untouched"
    assert driver.count(JobFilter()) == 1
    assert [r.id for r in driver.reserve("w", ["default"], 5, 30)] == [control.id]
    _no_stray_files(tmp_path)


def _round_trip(driver: Driver, s: str) -> None:
    job = new(queue_name=s, name=s, tags=(s, "plain"), batch_id=s, idempotency_key=s)
    assert driver.push([job]) == [job.id]
    assert driver.push([new(queue_name=s, idempotency_key=s)]) == [job.id], "key is exact"

    record = driver.get(job.id)
    assert record is not None
    assert (record.queue_name, record.name, record.tags, record.batch_id,
            record.idempotency_key) == (s, s, (s, "plain"), s, s)

    assert only(driver, JobFilter(queues=(s,))) == [job.id]
    assert only(driver, JobFilter(names=(s,))) == [job.id]
    assert only(driver, JobFilter(batch_id=s)) == [job.id]
    assert only(driver, JobFilter(ids=(s,))) == []
    assert driver.count(JobFilter(queues=(s,))) == 1

    reserved = driver.reserve(s, [s], 5, 30)
    assert [r.id for r in reserved] == [job.id]
    assert reserved[0].lease_owner == s
    driver.heartbeat(s, [reserved[0].token], 30)
    assert driver.fail(reserved[0].token, f"boom {s} boom", None)
    failed = driver.get(job.id)
    assert failed is not None and failed.state == State.FAILED
    assert failed.exception == f"boom {s} boom"
    assert driver.retry(job.id)
    assert driver.cancel(job.id, s)
    assert driver.get(job.id).exception == s  # type: ignore[union-attr]

    assert driver.lock_acquire(s, s, 30) and not driver.lock_acquire(s, "other", 30)
    assert driver.lock_release(s, s)
    assert driver.counter_incr(s, 2, 30) == 2 and driver.counter_incr(s, 1, 30) == 3
    driver.registry_put(s, s, {"k": s}, 30)
    assert [e["k"] for e in driver.registry_list(s)] == [s]
    driver.registry_remove(s, s)
    assert driver.registry_list(s) == []
    assert s in driver.stats()
    assert driver.delete(job.id) and driver.get(job.id) is None


def _no_stray_files(tmp_path: Path) -> None:
    """A path piece in a queue name must not create anything outside the store directory."""
    outside = [p for p in tmp_path.parent.glob("etc*")] + list(tmp_path.glob("etc*"))
    assert not outside, outside


def _filters_are_literal(driver: Driver, values: list[str]) -> None:
    for s in values:
        tagged = new(queue_name=f"f-{len(s)}", tags=(s,))
        bystander = new(queue_name=tagged.queue_name, tags=("plain", "s"))
        driver.push([tagged, bystander])
        for _ in range(2):
            token = driver.reserve("w", [tagged.queue_name], 1, 30)[0].token
            text = f"error <{s}>" if token.job_id == tagged.id else "error <plain text>"
            driver.fail(token, text, None)
        assert only(driver, JobFilter(tag=s)) == [tagged.id], ("tag filter", s)
        assert only(driver, JobFilter(exception_contains=s)) == [tagged.id], ("error filter", s)
        driver.delete(tagged.id)
        driver.delete(bystander.id)


def test_tag_and_error_filters_are_literal(driver: Driver, backend: str) -> None:
    """A filter value is matched literally: ``%`` or ``_`` is not a wildcard, a backslash is a
    backslash. (A wildcard filter would widen a bulk action "on everything matching".)
    Regression: the SQL drivers used unescaped LIKE patterns (fixed in drivers/_sql.py)."""
    _filters_are_literal(driver, list(HOSTILE))
