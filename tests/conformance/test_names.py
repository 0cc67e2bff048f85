"""Hostile names get the same answer on every backend: refused by the manager before anything is
stored, with a message naming the field (issue 19 item 23). Before, an empty queue silently
became ``default``, a NUL was refused only by PostgreSQL, and a 10 KB queue name was stored by
SQLite and Redis but refused (as a "payload" problem) elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskqueue import QueueManager, TestJob
from taskqueue.drivers import JobFilter
from taskqueue.jobs.names import MAX_KEY, MAX_QUEUE, MAX_TAG, MAX_TASK


@pytest.fixture
def manager(store_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(store_url)
    yield m
    m.close()


HOSTILE = [
    ({"queue": ""}, "queue name must not be empty"),
    ({"queue": "   "}, "queue name must not be empty or blank"),
    ({"queue": "a\x00b"}, "queue name contains the control character '\\x00'"),
    ({"queue": "line\nbreak"}, "queue name contains the control character '\\n'"),
    ({"queue": "del\x7f"}, "queue name contains the control character '\\x7f'"),
    ({"queue": "q" * 10_000}, f"queue name is 10000 characters long; the limit is {MAX_QUEUE}"),
    ({"tags": ["ok", ""]}, "tag must not be empty"),
    ({"tags": ["t" * (MAX_TAG + 1)]}, f"the limit is {MAX_TAG}"),
    ({"tags": ["a\x00"]}, "tag contains the control character"),
    ({"idempotency_key": "k\x00"}, "idempotency key contains the control character"),
    ({"idempotency_key": "k" * (MAX_KEY + 1)}, f"the limit is {MAX_KEY}"),
    ({"requires": ["gpu\x00"]}, "required tag contains the control character"),
]


@pytest.mark.parametrize(("options", "message"), HOSTILE,
                         ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(HOSTILE)])
def test_hostile_names_are_refused_alike_on_every_backend(manager: QueueManager,
                                                          options: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ValueError) as refused:
        manager.push(TestJob({"n": 1}), **options)
    assert message in str(refused.value)
    assert manager.driver.count(JobFilter()) == 0, "nothing was stored"


def test_a_task_name_over_the_limit_is_refused(manager: QueueManager) -> None:
    from taskqueue.jobs.definition import Call

    with pytest.raises(ValueError, match=f"task name is {MAX_TASK + 1} characters"):
        manager.push(Call("x" * (MAX_TASK + 1), {}, {}))
    assert manager.driver.count(JobFilter()) == 0


def test_names_at_the_limits_are_stored_and_read_back(manager: QueueManager) -> None:
    queue, tag, key = "q" * MAX_QUEUE, "t" * MAX_TAG, "k" * MAX_KEY
    job_id = manager.push(TestJob({"n": 1}), queue=queue, tags=[tag, "ünïcode ✓"],
                          idempotency_key=key)
    record = manager.get(str(job_id))
    assert record is not None
    assert (record.queue_name, record.tags, record.idempotency_key) == (
        queue, (tag, "ünïcode ✓"), key)
    assert manager.push(TestJob({"n": 2}), queue=queue, idempotency_key=key) == job_id


def test_pausing_a_hostile_queue_name_is_refused(manager: QueueManager) -> None:
    with pytest.raises(ValueError, match="queue name contains the control character"):
        manager.pause_queue("bad\x00")
