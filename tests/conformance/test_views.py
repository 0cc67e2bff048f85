"""The dashboard's verbs: ``sorted_search`` (jobs ordered by a whitelisted column),
``error_texts`` (failures counted per exception text) and ``due``/``count_due`` (scheduled and
retrying jobs by due time). Every backend answers the same, checked against the order and
counts computed here from ``search``."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from taskqueue.drivers import Driver, JobFilter
from taskqueue.drivers.base import SORT_COLUMNS, DueFilter, GraphNode
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new


def _failed(driver: Driver, error: str, queue: str = "views-a", name: str = "t.one",
            retry_in: float | None = None) -> str:
    job = new(queue_name=queue, name=name)
    driver.push([job])
    taken = driver.reserve_job("w1", job.id, 30)
    assert taken is not None
    assert driver.fail(taken.token, error, retry_in)
    return job.id


def _key(record: JobRecord, field: str) -> Any:
    value = getattr(record, field)
    return value.value if isinstance(value, State) else value


def test_sorted_search_orders_by_each_column_then_newest_first(driver: Driver) -> None:
    priorities = [3, 7, 3, 9, 1, 7, 5, 3]
    jobs = [new(queue_name=("views-a", "views-b")[i % 2], name=f"t.{'ba'[i % 3 == 0]}{i % 3}",
                priority=p) for i, p in enumerate(priorities)]
    driver.push(jobs)
    assert driver.cancel(jobs[2].id, "stop")
    assert driver.set_priority(jobs[5].id, 2)
    _failed(driver, "ValueError: late")  # another state, attempts and update time
    everything = driver.search(JobFilter(limit=100))
    for column, field in SORT_COLUMNS.items():
        for descending in (False, True):
            want = sorted(everything, key=lambda r, f=field: _key(r, f), reverse=descending)
            got = [r.id for offset in range(0, 12, 3) for r in driver.sorted_search(
                JobFilter(limit=3, offset=offset), column, descending)]
            assert got == [r.id for r in want], (column, descending)
    pending = JobFilter(states=(State.PENDING,), queues=("views-a",), limit=10)
    want = sorted(driver.search(pending), key=lambda r: r.priority, reverse=True)
    assert [r.id for r in driver.sorted_search(pending, "priority", True)] == \
        [r.id for r in want]
    newest = driver.search(JobFilter(limit=4))  # only these are sorted
    want = sorted(newest, key=lambda r: r.priority)
    assert [r.id for r in driver.sorted_search(JobFilter(limit=10), "priority", False, 4)] == \
        [r.id for r in want]
    with pytest.raises(ValueError, match="cannot sort"):
        driver.sorted_search(JobFilter(), "payload", False)


def test_error_texts_counts_each_text_with_its_tasks_and_queues(driver: Driver) -> None:
    card1 = [_failed(driver, "ValueError: card 1", "views-a", "t.charge"),
             _failed(driver, "ValueError: card 1", "views-b", "t.charge"),
             _failed(driver, "ValueError: card 1", "views-a", "t.refund")]
    card2 = [_failed(driver, "ValueError: card 2", "views-b", "t.charge") for _ in range(2)]
    _failed(driver, "KeyError: 'x'", retry_in=60)
    texts = driver.error_texts(JobFilter(states=(State.FAILED,)), 10)
    assert [(t.exception, t.count) for t in texts] == \
        [("ValueError: card 1", 3), ("ValueError: card 2", 2)]
    first = texts[0]
    assert first.names == ("t.charge", "t.refund") and first.queues == ("views-a", "views-b")
    assert first.latest_id == max(card1) and texts[1].latest_id == max(card2)
    assert first.latest_at is not None
    assert [t.exception for t in driver.error_texts(JobFilter(states=(State.FAILED,)), 1)] == \
        ["ValueError: card 1"]
    both = driver.error_texts(JobFilter(states=(State.FAILED, State.RETRYING)), 10)
    assert [(t.exception, t.count) for t in both][-1] == ("KeyError: 'x'", 1)
    narrowed = driver.error_texts(JobFilter(states=(State.FAILED,), queues=("views-b",),
                                            exception_contains="card"), 10)
    assert [(t.exception, t.count, t.queues) for t in narrowed] == \
        [("ValueError: card 2", 2, ("views-b",)), ("ValueError: card 1", 1, ("views-b",))]


def _texts(driver: Driver) -> list[tuple[str | None, int]]:
    return [(t.exception, t.count) for t in driver.error_texts(JobFilter(states=(State.FAILED,)),
                                                                  10)]


def test_error_texts_follow_every_write_of_the_exception(driver: Driver) -> None:
    """The SQL stores group by a digest of the text that their schema keeps on each write of
    ``exception`` (issue 18 item 13): a text written by the settle statements, by recovery (the
    text made in SQL), kept through a retry, replaced by a later failure, restored from a record
    or cleared all land in the right group."""
    again = _failed(driver, "ValueError: same", retry_in=0.0)  # retrying, then fails the same
    driver.apply_many("retry", [_failed(driver, "ValueError: same")])
    twice = _failed(driver, "KeyError: first", retry_in=0.0)
    for job_id, error in ((again, "ValueError: same"), (twice, "KeyError: second")):
        taken = driver.reserve_job("w1", job_id, 30)
        assert taken is not None and driver.fail(taken.token, error, None)
    lost = new(queue_name="views-a", max_attempts=1)
    driver.push([lost])
    assert driver.reserve_job("w-gone", lost.id, 0.01) is not None
    time.sleep(0.05)
    assert lost.id in driver.recover_expired()
    lost_text = driver.get(lost.id)
    assert lost_text is not None and lost_text.state is State.FAILED and lost_text.exception
    record = driver.get(twice)
    assert record is not None
    copy = replace(record, id=uuid7())
    assert driver.restore([copy]) == 1
    _failed(driver, "ValueError: same")
    assert sorted(_texts(driver)) == sorted([
        ("ValueError: same", 2), ("KeyError: second", 2), (lost_text.exception, 1)])
    assert driver.retry(twice) and driver.retry(copy.id)
    assert sorted(_texts(driver)) == sorted([("ValueError: same", 2),
                                             (lost_text.exception, 1)])
    by_text = {t.exception: t for t in driver.error_texts(JobFilter(states=(State.FAILED,)), 10)}
    assert by_text["ValueError: same"].latest_id == max(
        r.id for r in driver.search(JobFilter(states=(State.FAILED,), exception_contains="same")))


def test_error_texts_cut_at_the_limit_keeps_the_order_by_count_then_text(driver: Driver) -> None:
    for text, times in (("E: c", 1), ("E: a", 2), ("E: b", 2), ("E: d", 3)):
        for _ in range(times):
            _failed(driver, text)
    failed = JobFilter(states=(State.FAILED,))
    assert [(t.exception, t.count) for t in driver.error_texts(failed, 2)] == \
        [("E: d", 3), ("E: a", 2)]
    assert [t.exception for t in driver.error_texts(failed, 10)] == \
        ["E: d", "E: a", "E: b", "E: c"]


def test_graph_nodes_read_what_search_finds(driver: Driver) -> None:
    parent = new(queue_name="views-a", batch_id="views-batch")
    child = new(queue_name="views-b", name="t.child", dependencies=(parent.id,),
                batch_id="views-batch")
    other = new(queue_name="views-a")
    driver.push([parent, child, other])
    taken = driver.reserve_job("w1", parent.id, 30)
    assert taken is not None and driver.set_progress(taken.token, 40.0)
    criteria = JobFilter(batch_id="views-batch", newest_first=False)
    nodes = driver.graph_nodes(criteria)
    assert nodes == [GraphNode.of(r) for r in driver.search(criteria)]
    assert [(n.id, n.state, n.queue_name, n.dependencies) for n in nodes] == [
        (parent.id, State.PROCESSING, "views-a", ()),
        (child.id, State.PENDING, "views-b", (parent.id,))]
    assert nodes[0].attempts == 1 and nodes[0].progress == 40.0
    by_ids = driver.graph_nodes(JobFilter(ids=(other.id, child.id), limit=5))
    assert sorted(n.id for n in by_ids) == sorted([other.id, child.id])


def test_due_lists_scheduled_and_retrying_jobs_soonest_first(driver: Driver) -> None:
    later = [new(queue_name="views-a", delay_seconds=300), new(queue_name="views-b",
                                                                 delay_seconds=100),
             new(queue_name="views-a", delay_seconds=200), new(queue_name="views-b",
                                                                 delay_seconds=200),
             new(queue_name="views-a")]  # due now: not scheduled
    driver.push(later)
    retrying = [_failed(driver, "boom", retry_in=500), _failed(driver, "boom", retry_in=50)]
    _failed(driver, "gone")  # failed for good: neither
    ties = sorted([later[2].id, later[3].id])
    order = [later[1].id, *ties, later[0].id]
    scheduled = driver.due(DueFilter(State.PENDING, limit=10))
    assert [r.id for r in scheduled] == order
    assert all(r.state is State.PENDING for r in scheduled)
    assert driver.count_due(DueFilter(State.PENDING)) == 4
    paged: list[str] = []
    after = None
    for _ in range(len(order) + 1):  # one more: the empty page after the last
        page = driver.due(DueFilter(State.PENDING, after=after, limit=1))
        if not page:
            break
        paged.append(page[0].id)
        after = (page[0].available_at, page[0].id)
    assert paged == order
    only_a = driver.due(DueFilter(State.PENDING, queues=("views-a",), limit=10))
    assert [r.id for r in only_a] == [later[2].id, later[0].id]
    assert driver.count_due(DueFilter(State.PENDING, queues=("views-a",))) == 2
    waiting = driver.due(DueFilter(State.RETRYING, limit=10))
    assert [r.id for r in waiting] == retrying[::-1]
    assert driver.count_due(DueFilter(State.RETRYING)) == 2
    with pytest.raises(ValueError, match="pending or retrying"):
        driver.due(DueFilter(State.FAILED))
