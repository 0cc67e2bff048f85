"""Statistics from history: real jobs with known timings, read back from the store, on every
backend; and the health checks over the same stores."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import tests.apps.sample_tasks as tasks
from taskqueue import QueueManager
from taskqueue.cli import cli
from taskqueue.cli.observe import health as health_command
from taskqueue.observability import health
from taskqueue.observability.stats import StatsRecorder
from tests.integration.conftest import drain

STATE_KEYS = {"pending", "processing", "completed", "failed", "retrying", "cancelled",
              "avg_priority", "oldest_ready_at", "completed_last_minute"}


def test_a_clients_cancel_of_a_pending_job_is_in_the_history(store_url: str) -> None:
    """The history's ``cancelled`` counts cancels by a client, not only those of a running
    job by its worker: the client's event named no queue, so the recorder skipped it, and a
    client that never pushed (``taskqueue cancel``, a dashboard) recorded nothing at all."""
    with QueueManager.from_url(store_url) as manager:
        job = tasks.add.push([1, 2], manager=manager, queue="doomed")
        with QueueManager.from_url(store_url) as other:   # cancels without having pushed
            assert other.cancel(job)
        # (closing it wrote its counts)
        assert manager.cancel(tasks.add.push([3, 4], manager=manager, queue="doomed"))
        manager.stats_recorder.flush()
        hour = manager.stats()["queues"]["doomed"]["history"]["1h"]
    assert (hour["enqueued"], hour["cancelled"]) == (2, 2)


def test_history_from_a_run_with_known_timings(manager: QueueManager, ledger: str) -> None:
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    for _ in range(6):
        tasks.mark.push((ledger, 0.05), manager=manager, queue="timed")
    for _ in range(2):
        tasks.mark.push((ledger, 0.4), manager=manager, queue="timed")
    tasks.always_fails.push((ledger,), manager=manager, queue="timed")   # 2 attempts, then DLQ
    drain(manager, queues=["timed"])
    recorder.flush()

    report = manager.stats()
    queue = report["queues"]["timed"]
    assert set(queue) >= STATE_KEYS and queue["completed"] == 8 and queue["failed"] == 1
    five = queue["history"]["5m"]
    assert {k: five[k] for k in ("enqueued", "completed", "failed", "retried")} == {
        "enqueued": 9, "completed": 8, "failed": 1, "retried": 1}
    assert five["enqueued_per_min"] == pytest.approx(9 / 5)
    assert five["completed_per_min"] == pytest.approx(8 / 5)
    assert five["success_rate"] == pytest.approx(8 / 9, abs=1e-3)
    assert five["failure_rate"] == pytest.approx(1 / 9, abs=1e-3)
    run = five["run_time"]
    assert run["count"] == 10                        # 8 runs + 2 failed attempts
    assert 0.05 <= run["p50"] <= 0.075               # the short jobs' bucket
    assert 0.4 <= run["p95"] <= 0.5 and 0.4 <= run["p99"] <= 0.5
    assert run["avg"] == pytest.approx((6 * 0.05 + 2 * 0.4) / 10, rel=0.25)
    wait = five["wait_time"]
    assert wait["count"] == 10                       # every start, from when it was due
    assert 1.0 <= wait["max"] <= 10                  # the last job waited for all the others
    assert abs(queue["history"]["1m"]["completed"] - 8) <= 1   # may straddle a minute
    assert queue["history"]["1h"]["completed"] == 8
    assert report["totals"]["history"]["1h"]["completed"] == 8
    assert queue["oldest_pending_age"] is None


def test_a_worker_counts_each_job_once_with_other_subscribers(manager: QueueManager,
                                                             ledger: str) -> None:
    """The worker hands its recorder starts and ends directly, and a push its enqueues, not
    through the bus: with other subscribers on every kind (so the events are built too), each
    job still counts once, and those subscribers still get every event."""
    from taskqueue.observability import events as ev

    seen: list[str] = []
    manager.events.subscribe(lambda event: seen.append(event.kind))
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    for _ in range(3):
        tasks.mark.push((ledger,), manager=manager, queue="once")
    tasks.always_fails.push((ledger,), manager=manager, queue="once")  # 2 attempts, then DLQ
    drain(manager, queues=["once"])
    recorder.flush()
    five = manager.stats()["queues"]["once"]["history"]["5m"]
    assert {k: five[k] for k in ("enqueued", "completed", "failed", "retried")} == {
        "enqueued": 4, "completed": 3, "failed": 1, "retried": 1}
    assert five["run_time"]["count"] == 5 and five["wait_time"]["count"] == 5
    assert [seen.count(k) for k in (ev.JOB_ENQUEUED, ev.JOB_STARTED, ev.JOB_COMPLETED,
                                    ev.JOB_RETRIED, ev.JOB_FAILED)] == [4, 5, 3, 1, 1]


def test_oldest_pending_age_and_totals(manager: QueueManager) -> None:
    tasks.add.push((1, 2), manager=manager, queue="idle")
    report = manager.stats()
    age = report["queues"]["idle"]["oldest_pending_age"]
    assert isinstance(age, float) and 0 <= age < 60
    assert report["totals"]["oldest_pending_age"] == age


def test_every_producer_counts_its_enqueues(sqlite_url: str) -> None:
    """No recorder installed by hand: the push counts (issue 19 item 12). Through the CLI
    (`taskqueue test`, then `taskqueue stats`) and through a plain manager."""
    result = CliRunner().invoke(cli, ["--url", sqlite_url, "test", "--jobs", "7"])
    assert result.exit_code == 0, result.output
    with QueueManager.from_url(sqlite_url) as producer:
        tasks.add.push((1, 2), manager=producer, queue="idle")
    shown = json.loads(CliRunner().invoke(cli, ["--url", sqlite_url, "stats", "--json"]).output)
    assert shown["queues"]["default"]["history"]["1h"]["enqueued"] == 7
    assert shown["queues"]["idle"]["history"]["1h"]["enqueued"] == 1
    assert shown["totals"]["history"]["5m"]["enqueued_per_min"] == pytest.approx(8 / 5)


def test_history_is_read_from_any_node(manager: QueueManager, ledger: str,
                                       sqlite_url: str) -> None:
    """A worker flushes when it stops; another manager (another node) reads the figures."""
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    for _ in range(3):
        tasks.mark.push((ledger,), manager=manager)
    manager.start_worker(stop_when_empty=True, poll_interval=0.05)
    with QueueManager.from_url(sqlite_url) as other:
        StatsRecorder.install(other, flush_interval=3600)
        tasks.add.push((1, 1), manager=other)
        drain(other)
        other_recorder_entries = other.driver.registry_list("stats")
        assert len(other_recorder_entries) == 1      # only the stopped worker flushed so far
        recorder.close()
        assert other.stats()["totals"]["history"]["5m"]["completed"] == 3


def test_stats_cli_shows_history(manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    tasks.mark.push((ledger,), manager=manager)
    drain(manager)
    recorder.flush()
    result = CliRunner().invoke(cli, ["--url", sqlite_url, "stats", "--json"])
    data = json.loads(result.output)
    assert data["queues"]["default"]["history"]["5m"]["completed"] == 1
    shown = CliRunner().invoke(cli, ["--url", sqlite_url, "stats"])
    assert shown.exit_code == 0 and "run p95" in shown.output and "history" in shown.output


# -- every backend ------------------------------------------------------------------------------

@pytest.fixture
def any_manager(store_url: str) -> Iterator[QueueManager]:
    with QueueManager.from_url(store_url) as m:
        yield m


def worker_entry(queues: list[str], beat_age: float = 0.0) -> dict[str, object]:
    return {"id": "w-test", "queues": queues, "paused_queues": [], "state": "running",
            "rss_mb": 50.0, "last_heartbeat": time.time() - beat_age}


def test_stats_from_history_on_every_backend(any_manager: QueueManager) -> None:
    recorder = StatsRecorder.install(any_manager, flush_interval=3600)
    for i in range(3):
        tasks.add.push((i, i), manager=any_manager, queue="math")
    drain(any_manager, queues=["math"])
    recorder.flush()
    report = any_manager.stats()
    five = report["queues"]["math"]["history"]["5m"]
    assert (five["enqueued"], five["completed"], five["success_rate"]) == (3, 3, 1.0)
    assert five["run_time"]["count"] == 3 and five["wait_time"]["count"] == 3
    assert report["queues"]["math"]["completed"] == 3


def wait_until_due(manager: QueueManager, queue: str) -> None:
    """Until the store's clock has passed the queue's oldest due time (a few ms)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        oldest = manager.driver.stats()[queue].oldest_ready_at
        if oldest is not None and manager.driver.now() > oldest:
            return
        time.sleep(0.01)
    raise AssertionError("the store clock did not move")


def test_health_checks_on_every_backend(any_manager: QueueManager) -> None:
    driver = any_manager.driver
    policy = health.HealthPolicy(stale_after=20, stuck_after=0)
    report = health.full_check(driver, policy)
    assert not report.ok and report.reasons == ["workers: no live worker registered"]
    assert health.full_check(driver, health.HealthPolicy(require_workers=False)).ok

    driver.registry_put("worker", "w-test", worker_entry(["default"]), ttl_seconds=30)
    assert health.full_check(driver, policy).ok

    tasks.add.push((1, 2), manager=any_manager, queue="orphan")
    wait_until_due(any_manager, "orphan")
    report = health.full_check(driver, policy)
    assert [c.name for c in report.checks if not c.ok] == ["queues"]
    assert "orphan" in report.reasons[0]
    any_manager.pause_queue("orphan")
    assert "paused on purpose: orphan" in health.full_check(driver, policy).checks[-1].detail

    driver.registry_put("worker", "w-test", worker_entry(["default"], beat_age=60),
                        ttl_seconds=30)
    report = health.full_check(driver, policy)
    assert [c.name for c in report.checks if not c.ok] == ["heartbeats"]
    assert "w-test" in report.reasons[0]


def group_for(url: str) -> click.Group:
    @click.group()
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.obj = {"url": url}

    group.add_command(health_command)
    return group


def test_health_command_exit_codes(any_manager: QueueManager, store_url: str) -> None:
    runner = CliRunner()
    failing = runner.invoke(group_for(store_url), ["health", "--json"])
    assert failing.exit_code == 1, failing.output
    assert json.loads(failing.output)["status"] == "fail"
    any_manager.driver.registry_put("worker", "w-test", worker_entry(["default"]), 30)
    passing = runner.invoke(group_for(store_url), ["health"])
    assert passing.exit_code == 0, passing.output
    assert "ok" in passing.output and "store" in passing.output
