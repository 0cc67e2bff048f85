"""``push_many`` checks the options of consecutive jobs of one task once (``prepare_many``);
each job must still come out exactly as ``prepare`` makes it alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager, task
from taskqueue.codec import loads
from taskqueue.jobs.model import NewJob


@task(name="prepare_many.a", priority=7, tags=["t"])
def a(n: int) -> None: ...


@task(name="prepare_many.b", timeout=30, retry_backoff=2.0)
def b(n: int) -> None: ...


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[QueueManager]:
    m = QueueManager.from_url(f"sqlite:///{tmp_path}/q.db")
    yield m
    m.close()


def comparable(job: NewJob) -> dict[str, Any]:
    """The job without what is unique to it (its id, and the payload's encoding)."""
    fields = asdict(job)
    fields.pop("id")
    fields["payload"] = loads(job.payload[4:])
    fields["tags"] = tuple(t for t in job.tags if not t.startswith("series:"))
    return fields


def test_a_batch_gives_each_job_what_prepare_gives_it_alone(manager: QueueManager) -> None:
    calls = [a.s(1), a.s(2), b.s(3), b.s(4), a.s(5).set(priority=9, delay=5),
             a.s(6), b.s(7).set(requires="gpu"), a.s(8).set(unique=True)]
    batch = manager.prepare_many(calls, queue="q", max_attempts=4)
    alone = [manager.prepare(call, queue="q", max_attempts=4) for call in calls]
    assert [comparable(j) for j in batch] == [comparable(j) for j in alone]
    assert len({j.id for j in batch}) == len(calls)
    assert [j.priority for j in batch] == [7, 7, 5, 5, 9, 7, 5, 7]
    assert batch[6].queue_name == "q@gpu" and batch[4].delay_seconds == 5.0
    assert batch[7].idempotency_key is not None


def test_a_bad_option_later_in_a_batch_is_refused(manager: QueueManager) -> None:
    with pytest.raises(ValueError, match="priority"):
        manager.push_many([a.s(1), a.s(2), a.s(3).set(priority=5000)])
    with pytest.raises(ValueError, match="max_attempts"):
        manager.push_many([b.s(1), b.s(2).set(max_attempts=-1)])


def test_recurring_jobs_of_one_batch_are_separate_series(manager: QueueManager) -> None:
    jobs = manager.prepare_many([a.s(1).set(every=60), a.s(2).set(every=60)])
    series = [loads(j.payload[4:])["_wf"]["series"] for j in jobs]
    assert series == [j.id for j in jobs]
    assert [t for t in jobs[0].tags if t.startswith("series:")] == [f"series:{jobs[0].id}"]


# -- options settled once per option set (Client._settled) --------------------------------------

def test_pushes_with_remembered_options_come_out_as_prepared_afresh(
        manager: QueueManager) -> None:
    calls = [a.s(1), a.s(2).set(priority=9, tags=("x", "y")), b.s(3).set(delay=5)]
    first = [manager.prepare(c, queue="q") for c in calls]
    remembered = len(manager._settled_by_key)
    again = [manager.prepare(c, queue="q") for c in calls]
    assert remembered == 3 and len(manager._settled_by_key) == 3
    assert [comparable(j) for j in first] == [comparable(j) for j in again]
    manager._settled_by_key.clear()
    assert [comparable(manager.prepare(c, queue="q")) for c in calls] == [
        comparable(j) for j in first]


def test_equal_option_values_of_another_type_are_checked_again(manager: QueueManager) -> None:
    """``True == 1``: a remembered ``priority=1`` must not let ``priority=True`` through, nor
    ``tags=(1,)`` (not strings) reuse the tags of another option set."""
    assert manager.prepare(a.s(1), priority=1).priority == 1
    with pytest.raises(ValueError, match="priority"):
        manager.prepare(a.s(1), priority=True)
    assert manager.prepare(a.s(1), tags=["1"]).tags == ("1",)
    assert manager.prepare(a.s(1), tags=[1]).tags == ("1",)   # str()'d, not remembered
    assert manager.prepare(a.s(1), tags=[True]).tags == ("True",)


def test_eta_counts_from_each_push(manager: QueueManager) -> None:
    from datetime import UTC, datetime, timedelta

    eta = datetime.now(UTC) + timedelta(seconds=100)
    first = manager.prepare(a.s(1), eta=eta).delay_seconds
    assert manager.prepare(a.s(1), eta=eta - timedelta(seconds=50)).delay_seconds < first - 40
    assert not manager._settled_by_key
