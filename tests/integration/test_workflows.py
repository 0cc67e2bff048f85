"""Job types and workflows (issue #5) on every backend."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from taskqueue import (
    JobFailed,
    QueueManager,
    State,
    Worker,
    WorkerOptions,
    chain,
    group,
    set_default_manager,
)
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain, ledger_lines


@pytest.fixture
def m(store_url: str) -> Iterator[QueueManager]:
    manager = QueueManager.from_url(store_url)
    set_default_manager(manager)
    yield manager
    set_default_manager(None)
    manager.close()


@pytest.fixture
def background(m: QueueManager) -> Iterator[Worker]:
    """A worker running in a thread of this process until the test ends."""
    worker = Worker(m, WorkerOptions(poll_interval=0.2, maintenance_interval=0.5,
                                     cancel_grace=0.5, lease_seconds=5))
    thread = threading.Thread(target=worker._loop, daemon=True)
    worker.heartbeat.start()
    thread.start()
    yield worker
    worker.request_stop("test over")
    thread.join(timeout=30)
    worker.heartbeat.stop()


def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# 1. sync -------------------------------------------------------------------------------------

def test_run_now_runs_inline_with_records(m: QueueManager, ledger: str) -> None:
    assert t.add.run_now(20, 22) == 42
    done = m.search(JobFilter(names=("tests.add",)))
    assert [r.state for r in done] == [State.COMPLETED]
    assert t.flaky.run_now(ledger, 2) == "finally"
    assert [int(line[1]) for line in ledger_lines(ledger)] == [1, 2], "retried inline"
    with pytest.raises(JobFailed, match="NonRetryable: this can never work"):
        t.permanent.run_now(ledger)
    report = t.SendReport({"ledger": ledger, "to": "x@y"})
    assert report.dispatch_sync(m) == {"sent_to": "x@y"}


# 2. async ------------------------------------------------------------------------------------

def test_asyncio_client_api(m: QueueManager, background: Worker) -> None:
    async def main() -> object:
        handle = await t.add.adelay(2, 3)
        return await m.aresult(handle, timeout=20)

    assert asyncio.run(main()) == 5


# 3. delayed ----------------------------------------------------------------------------------

def test_delayed_job_runs_promptly_after_its_time(m: QueueManager, background: Worker) -> None:
    handle = t.add.push([1, 1], delay=timedelta(seconds=1))
    assert m.get(handle).state == State.PENDING  # type: ignore[union-attr]
    assert handle.wait(timeout=20) == 2
    rec = handle.record()
    assert rec.started_at is not None and rec.started_at >= rec.available_at
    assert (rec.started_at - rec.available_at).total_seconds() < 1.0


# 4. recurring --------------------------------------------------------------------------------

def test_recurring_job_repeats_until_stopped(m: QueueManager, background: Worker,
                                             ledger: str) -> None:
    first = t.mark.push([ledger], every=timedelta(seconds=0.4))
    wait_until(lambda: len(ledger_lines(ledger)) >= 3)
    m.cancel_series(first)
    seen = len(ledger_lines(ledger))
    time.sleep(1.5)
    assert len(ledger_lines(ledger)) <= seen + 1, "at most the run in flight finishes"
    runs = m.search(JobFilter(tag=f"series:{first}", states=(State.COMPLETED,), limit=100))
    assert len(runs) >= 3 and len({r.id for r in runs}) == len(runs)


# 5. batch ------------------------------------------------------------------------------------

def test_batch_progress_and_callback_once(m: QueueManager, ledger: str) -> None:
    calls = [t.add.s(i, i) for i in range(300)]
    batch_id = m.batch(calls, name="nightly", on_complete=t.note.s(ledger, "complete"),
                       on_failure=t.note.s(ledger, "failure"))
    status = m.batch_status(batch_id)
    assert (status.name, status.total, status.pending, status.finished) == ("nightly", 300,
                                                                             300, False)
    drain(m)
    status = m.batch_status(batch_id)
    assert status.completed == 300 and status.finished and status.progress == 100
    assert [line for line in ledger_lines(ledger)] == [["complete", "300"]]


def test_batch_failure_callback_and_cancel(m: QueueManager, ledger: str) -> None:
    m.batch([t.boom.s(), t.add.s(1, 2)], on_failure=t.note.s(ledger, "failure"),
            on_complete=t.note.s(ledger, "complete"))
    drain(m)
    assert [line[0] for line in ledger_lines(ledger)] == ["failure"]
    other = m.batch([t.add.s(i, 1) for i in range(10)], name="doomed")
    assert m.cancel_batch(other) == 10
    assert m.batch_status(other).cancelled == 10


# 6. chain ------------------------------------------------------------------------------------

def test_chain_passes_results_in_order(m: QueueManager) -> None:
    handles = chain(t.add.s(1, 2), t.double.s().set(pass_result=True),
                    t.double.s().set(pass_result=True))
    drain(m)
    assert [h.wait(1) for h in handles] == [3, 6, 12]
    assert handles[2].record().dependencies == (handles[1],)


def test_chain_failure_cancels_the_rest_unless_marked(m: QueueManager, ledger: str) -> None:
    stopped = chain(t.boom.s(), t.mark.s(ledger), t.mark.s(ledger))
    drain(m)
    assert [h.state for h in stopped] == [State.FAILED, State.CANCELLED, State.CANCELLED]
    assert "did not complete" in (stopped[1].record().exception or "")
    assert ledger_lines(ledger) == []
    goes_on = chain(t.boom.s().set(continue_on_failure=True), t.mark.s(ledger))
    drain(m)
    assert [h.state for h in goes_on] == [State.FAILED, State.COMPLETED]


# 7. parallel ---------------------------------------------------------------------------------

def test_group_with_fan_in_callback(m: QueueManager) -> None:
    handles = group(t.add.s(1, 1), t.add.s(2, 2), t.add.s(3, 3), then=t.collect.s())
    drain(m)
    assert handles[-1].wait(1) == 12
    assert set(handles[-1].record().dependencies) == set(handles[:3])


def test_one_member_group_still_gives_the_callback_results(m: QueueManager) -> None:
    """A group's callback always receives ``results`` (a list), even with one member."""
    handles = group(t.add.s(5, 5), then=t.collect.s())
    drain(m)
    assert handles[-1].wait(1) == 10, handles[-1].record().exception


def test_pass_result_keyword_is_chosen_and_checked_at_enqueue(m: QueueManager) -> None:
    """The receiving signature is checked when the workflow is enqueued: a clear TypeError then,
    nothing stored, instead of a TypeError in the worker later."""
    with pytest.raises(TypeError, match=r"task tests.add is given its dependencies' results as "
                                        r"the keyword argument 'previous' \(pass_result\)"):
        chain(t.add.s(1, 2), t.add.s(1).set(pass_result=True))
    with pytest.raises(TypeError, match=r"task tests.double .* 'results'"):
        group(t.add.s(1, 1), then=t.double.s())
    with pytest.raises(ValueError, match="pass_result must be True, 'previous' or 'results'"):
        chain(t.add.s(1, 2), t.double.s().set(pass_result="prev"))
    assert m.search() == [], "nothing was enqueued"
    # explicit keywords: a list even from one dependency, or the one result
    first = t.add.delay(2, 3)
    as_list = t.collect.push([], depends_on=[first], pass_result="results")
    single = t.double.push([], depends_on=[first], pass_result="previous")
    drain(m)
    assert (m.result(as_list), m.result(single)) == (5, 10)


# 8. dependencies -----------------------------------------------------------------------------

def test_diamond_dependencies_and_refusals(m: QueueManager, ledger: str) -> None:
    top = t.mark.delay(ledger)
    left = t.mark.push([ledger], depends_on=[top])
    right = t.mark.push([ledger], depends_on=[top])
    bottom = t.mark.push([ledger], depends_on=[left, right])
    drain(m)
    order = [line[0] for line in ledger_lines(ledger)]
    assert order[0] == top and order[-1] == bottom and set(order[1:3]) == {left, right}
    with pytest.raises(ValueError, match="unknown job id"):
        t.mark.push([ledger], depends_on=["no-such-job"])
    a, b = m.prepare(t.mark.s(ledger)), m.prepare(t.mark.s(ledger))
    a, b = replace(a, dependencies=(b.id,)), replace(b, dependencies=(a.id,))
    with pytest.raises(ValueError, match="dependency cycle refused"):
        m.push_prepared([a, b])


# 9. cancellation -----------------------------------------------------------------------------

@pytest.mark.parametrize("task_name", ["cooperative", "stubborn"])
def test_cancel_a_running_job(m: QueueManager, background: Worker, ledger: str,
                              task_name: str) -> None:
    handle = getattr(t, task_name).delay(ledger)
    ended: list[object] = []  # the worker's word that the run ended
    m.events.subscribe(lambda e: ended.append(e.fields) if e.worker_id else None,
                       "job.cancelled")
    wait_until(lambda: len(ledger_lines(ledger)) >= 1)
    assert m.cancel(handle, "no longer needed", by="alice")
    wait_until(lambda: handle.id not in background._running and ended, timeout=20)
    rec = handle.record()
    assert rec.state == State.CANCELLED
    assert "no longer needed (by alice)" in (rec.exception or "")
    if task_name == "stubborn":
        assert ledger_lines(ledger)[-1][-1] == "stopped", "stopped after the grace period"
    assert ended == [{"already_cancelled": True}]
    m.stats_recorder.flush()   # one cancel, counted once (by the client's event)
    assert m.stats()["queues"][rec.queue_name]["history"]["1h"]["cancelled"] == 1


# 10. unique jobs -----------------------------------------------------------------------------

def test_unique_jobs_and_their_modes(m: QueueManager) -> None:
    first = t.add.push([1, 2], unique=True)
    assert t.add.push([1, 2], unique=True) == first
    assert t.add.push([2, 1], unique=True) != first
    drain(m)
    assert t.add.push([1, 2], unique=True) != first, "finished: the key is free again"

    started = t.echo.push(["x"], unique="until_started")
    assert t.echo.push(["x"], unique="until_started") == started
    drain(m)
    assert t.echo.push(["x"], unique="until_started") != started

    windowed = t.echo.push(["w"], unique_for=timedelta(seconds=1))
    drain(m)
    assert t.echo.push(["w"], unique_for=1) == windowed
    time.sleep(1.2)
    assert t.echo.push(["w"], unique_for=1) != windowed


def test_debounce_replaces_the_pending_arguments(m: QueueManager) -> None:
    first = t.echo.push(["v1"], idempotency_key="profile:7", unique="debounce")
    again = t.echo.push(["v2"], idempotency_key="profile:7", unique="debounce")
    assert again == first
    drain(m)
    assert first.wait(1) == "v2"
    assert len(m.search(JobFilter(names=("tests.echo",)))) == 1


# 12. results ---------------------------------------------------------------------------------

def test_results_wait_and_retention(m: QueueManager) -> None:
    handle = t.add.delay(40, 2)
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.1)
    drain(m)
    assert handle.wait() == 42 and m.result(handle) == 42
    assert m.driver.prune(completed_age=0, failed_age=3600) >= 1
    assert m.get(handle) is None, "results live as long as the completed job (retention)"


def test_jobs_show_reports_workflow_position(m: QueueManager, store_url: str) -> None:
    from click.testing import CliRunner

    from taskqueue.cli import cli

    handles = chain(t.add.s(1, 2), t.double.s().set(pass_result=True))
    batch_id = m.batch([t.add.s(1, 1)], name="b")
    out = CliRunner().invoke(cli, ["--url", store_url, "jobs", "show", handles[1], "--json"])
    import json

    shown = json.loads(out.stdout)
    assert shown["dependencies"] == [handles[0]]
    assert shown["workflow"]["chain_step"] == "2 of 2"
    batch_job = m.search(JobFilter(batch_id=batch_id))[0]
    out = CliRunner().invoke(cli, ["--url", store_url, "jobs", "show", batch_job.id, "--json"])
    assert json.loads(out.stdout)["batch_id"] == batch_id
    status = CliRunner().invoke(cli, ["--url", store_url, "batch:status", batch_id, "--json"])
    assert json.loads(status.stdout)["total"] == 1
