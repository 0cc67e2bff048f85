"""``push_many`` does the per-job work of a batch of one task once or for all jobs together
(ids, payloads, jobs made from one template, counts); each job must still be what a single
push makes, and a bad job must still fail the whole push loudly."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager, task
from taskqueue.codec import Codec, KeyRing, generate_key, parse_key
from taskqueue.codec.serialize import dumps, dumps_many
from taskqueue.errors import DecryptionError, PayloadError, PayloadTooLarge
from taskqueue.jobs.ids import uuid7, uuid7_many
from taskqueue.jobs.model import JobRun, NewJob, jobs_like
from taskqueue.jobs.states import State


@task(name="bulk_push.add")
def add(a: int, b: int = 0) -> None: ...


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[QueueManager]:
    m = QueueManager.from_url(f"sqlite:///{tmp_path}/q.db")
    yield m
    m.close()


def test_ids_made_together_follow_on_from_single_ones() -> None:
    """Strictly increasing across single and batched ids, across the borrowed milliseconds
    of a batch larger than a millisecond's 4,096 counters, and each a valid UUIDv7."""
    ids = [uuid7(), *uuid7_many(3), uuid7(), *uuid7_many(9000), uuid7(), *uuid7_many(1)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
    counters = [int(text[15:18], 16) for text in ids[5:9005]]
    steps = {b - a for a, b in zip(counters, counters[1:], strict=False)}
    assert steps <= {1, -0xFFF} and 1 in steps  # +1, or 0xFFF -> 0 in the next millisecond
    assert uuid7_many(0) == []


def test_a_batch_of_bodies_encodes_like_each_body_alone() -> None:
    bodies: list[Any] = [{"args": [i, "x" * (i * 300)], "kwargs": {"f": i / 3}}
                         for i in range(8)]  # some over the compression threshold
    ids = uuid7_many(len(bodies))
    codec = Codec()
    assert codec.encode_many(bodies, job_ids=ids, queue="q") == [
        codec.encode(b, job_id=i, queue="q") for b, i in zip(bodies, ids, strict=True)]
    assert dumps_many(bodies) == [dumps(b) for b in bodies]


def test_an_encrypted_batch_seals_each_job_to_its_own_id() -> None:
    codec = Codec(KeyRing(parse_key(generate_key())))
    bodies = [{"args": [i]} for i in range(50)] + [{"args": ["y" * 5000]}]
    ids = uuid7_many(len(bodies))
    sealed = codec.encode_many(bodies, job_ids=ids, queue="q")
    assert [codec.decode(s, job_id=i, queue="q") for s, i in zip(sealed, ids, strict=True)] \
        == bodies
    assert len({s[8:20] for s in sealed}) == len(sealed)  # a fresh nonce each
    with pytest.raises(DecryptionError):
        codec.decode(sealed[0], job_id=ids[1], queue="q")
    with pytest.raises(DecryptionError):
        codec.decode(sealed[0], job_id=ids[0], queue="other")


@pytest.mark.parametrize(("bad", "message"), [
    (datetime(2024, 1, 1), "args[0] is a datetime"),
    (math.nan, "args[0] is nan"),
    (uuid.UUID(int=1), "args[0] is a UUID"),
    ("\ud800", "args[0] is a str that is not valid UTF-8"),
])
def test_one_bad_argument_fails_the_whole_batch_naming_it(manager: QueueManager, bad: Any,
                                                          message: str) -> None:
    calls = [add.s(i) for i in range(300)] + [add.s(bad)] + [add.s(i) for i in range(300)]
    with pytest.raises(PayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        manager.push_many(calls)
    assert manager.driver.stats() == {} or all(
        s.counts.get(State.PENDING, 0) == 0 for s in manager.driver.stats().values())


def test_a_payload_over_the_limit_fails_the_batch(tmp_path: Path) -> None:
    m = QueueManager.from_url(f"sqlite:///{tmp_path}/q.db", max_payload=2000)
    try:
        with pytest.raises(PayloadTooLarge):
            m.push_many([add.s(1), add.s(2), add.s(3, [str(i) for i in range(5000)])])
        assert m.push_many([add.s(1), add.s(2)])
    finally:
        m.close()


def test_calls_that_do_not_fit_the_signature_are_refused_when_made() -> None:
    with pytest.raises(TypeError, match="bulk_push.add"):
        add.s(1, 2, 3)
    with pytest.raises(TypeError, match="bulk_push.add"):
        add.s(1, c=3)
    assert add.s(1, b=2).body == {"args": [1], "kwargs": {"b": 2}}


def test_jobs_made_from_a_template_equal_jobs_made_one_by_one() -> None:
    from dataclasses import replace

    template = NewJob(id="", name="n", payload=b"", queue_name="q", priority=9, max_attempts=4,
                      timeout_seconds=7, delay_seconds=1.5, dependencies=("d",), tags=("t",),
                      idempotency_key="k", batch_id="b", idempotency_mode="window",
                      idempotency_window=3.0)
    made = jobs_like(template, ["a", "b"], [b"1", b"2"])
    assert made == [replace(template, id="a", payload=b"1"),
                    replace(template, id="b", payload=b"2")]


def test_a_batch_is_counted_job_by_job(manager: QueueManager) -> None:
    manager.push_many([add.s(i) for i in range(700)] + [add.s(1).set(queue="other")]
                      + [add.s(i) for i in range(5)])
    manager.stats_recorder.flush()
    counts = {(q, t): f.counts.get("enqueued", 0) for minute in
              manager.stats_recorder._minutes.values() for q, tasks in minute.items()
              for t, f in tasks.items()}
    assert counts == {("default", "bulk_push.add"): 705, ("other", "bulk_push.add"): 1}


def test_a_batch_returns_a_working_handle_per_job(manager: QueueManager) -> None:
    from taskqueue.jobs.handle import JobHandle

    handles = manager.push_many([add.s(i) for i in range(40)])
    assert all(type(h) is JobHandle and h.manager is manager for h in handles)
    assert [h.state for h in handles[:2]] == [State.PENDING, State.PENDING]
    assert handles[3].record().id == handles[3].id == str(handles[3])


def test_prepared_jobs_are_made_as_taken_and_taken_again_whole() -> None:
    """``push_many``'s jobs are made a run at a time as the driver takes them; a driver that
    retries takes them again from the first (those made, then the rest)."""
    from taskqueue.client.prepare import PreparedJobs

    made: list[int] = []

    def make() -> Iterator[JobRun]:
        for n in range(3):
            made.append(n)
            yield JobRun(NewJob(id="", name="t", payload=b""), [f"{n}.0", f"{n}.1"],
                         [b"a", b"b"])

    everything = [f"{n}.{k}" for n in range(3) for k in range(2)]
    prepared = PreparedJobs(6, make())
    assert len(prepared) == 6 and made == []
    first = prepared.runs()
    assert next(first).ids == ["0.0", "0.1"] and made == [0]
    first.close()  # a retry: the driver starts over
    assert [job_id for run in prepared.runs() for job_id in run.ids] == everything
    assert made == [0, 1, 2]
    assert [job.id for job in prepared] == everything and prepared[5].id == "2.1"
    assert [job.payload for job in prepared] == [b"a", b"b"] * 3


def test_a_batch_whose_making_failed_is_never_handed_out_in_part() -> None:
    from taskqueue.client.prepare import PreparedJobs

    def make() -> Iterator[JobRun]:
        yield JobRun(NewJob(id="", name="t", payload=b""), ["a"], [b""])
        raise PayloadError("bad")

    prepared = PreparedJobs(2, make())
    with pytest.raises(PayloadError):
        list(prepared.runs())
    with pytest.raises(RuntimeError, match="1 of the batch's jobs were never made"):
        prepared.made()
