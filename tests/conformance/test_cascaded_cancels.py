"""Every job a cancel reaches has its own ``job.cancelled`` event, with its task and queue,
and is counted in the statistics history: the job cancelled, and the dependents (and theirs)
cancelled with it, whoever cancelled it (a client, a bulk action, a worker whose job failed for
good), on every backend."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

import tests.apps.sample_tasks as tasks
from taskqueue import QueueManager
from taskqueue.observability.events import JOB_CANCELLED, Event
from tests.integration.conftest import drain


@pytest.fixture
def manager(store_url: str) -> Iterator[QueueManager]:
    with QueueManager.from_url(store_url) as made:
        yield made


def _cancelled(manager: QueueManager) -> list[Event]:
    seen: list[Event] = []
    manager.events.subscribe(seen.append, JOB_CANCELLED)
    return seen


def _history(manager: QueueManager, queues: list[str]) -> dict[str, int]:
    manager.stats_recorder.flush()
    report = manager.stats()["queues"]
    return {q: report[q]["history"]["1h"]["cancelled"] for q in queues}


def test_a_cancel_announces_and_counts_every_dependent(manager: QueueManager) -> None:
    """A chain across two queues (``first`` <- ``second`` <- ``third``, the middle one in
    another queue) and a second dependent of ``first``: one cancel, four events."""
    seen = _cancelled(manager)
    first = tasks.add.push([1, 1], manager=manager, queue="cc-a")
    second = tasks.add.push([2, 2], manager=manager, queue="cc-b", depends_on=[first])
    third = tasks.double.push([], manager=manager, queue="cc-a", depends_on=[second],
                              pass_result="previous")
    fourth = tasks.add.push([4, 4], manager=manager, queue="cc-a", depends_on=[first])
    assert manager.cancel(first, "not needed")
    assert Counter((e.job_id, e.name, e.queue) for e in seen) == Counter([
        (first, "tests.add", "cc-a"), (second, "tests.add", "cc-b"),
        (third, "tests.double", "cc-a"), (fourth, "tests.add", "cc-a")])
    cascaded = {e.job_id: e.error for e in seen if e.job_id != first}
    assert cascaded[second] == f"cancelled: dependency {first} did not complete (not needed)"
    assert cascaded[third].startswith(f"cancelled: dependency {second} did not complete")
    for job in (first, second, third, fourth):
        assert manager.get(job).state.value == "cancelled"
    assert _history(manager, ["cc-a", "cc-b"]) == {"cc-a": 3, "cc-b": 1}


def test_a_bulk_cancel_announces_and_counts_every_dependent(manager: QueueManager) -> None:
    seen = _cancelled(manager)
    parents = [tasks.add.push([i, i], manager=manager, queue="cb-a") for i in range(3)]
    child = tasks.add.push([9, 9], manager=manager, queue="cb-b", depends_on=[parents[0]])
    grandchild = tasks.add.push([8, 8], manager=manager, queue="cb-b", depends_on=[child])
    assert manager.apply_many("cancel", parents) == parents
    assert sorted(e.job_id for e in seen) == sorted([*parents, child, grandchild])
    assert all(e.queue is not None and e.name == "tests.add" for e in seen)
    assert _history(manager, ["cb-a", "cb-b"]) == {"cb-a": 3, "cb-b": 2}


def test_a_job_failing_for_good_announces_and_counts_its_cancelled_dependents(
        manager: QueueManager) -> None:
    seen = _cancelled(manager)
    parent = tasks.boom.push([], manager=manager, queue="cf")
    child = tasks.add.push([1, 2], manager=manager, queue="cf", depends_on=[parent])
    grandchild = tasks.add.push([3, 4], manager=manager, queue="cf", depends_on=[child])
    drain(manager, queues=["cf"])
    assert manager.get(parent).state.value == "failed"
    assert sorted(e.job_id for e in seen) == sorted([child, grandchild])
    assert _history(manager, ["cf"]) == {"cf": 2}
