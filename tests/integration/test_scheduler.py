"""The scheduler: due runs and missed-run policies, leader election, exactly-once enqueue,
failover between two scheduler processes, conditions on schedules, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from taskqueue import QueueManager
from taskqueue.drivers import JobFilter
from taskqueue.scheduling import (
    Schedule,
    ScheduleError,
    Scheduler,
    ScheduleStore,
    condition,
    start_scheduler_thread,
)
from taskqueue.scheduling.scheduler import STATUS_KIND, due_runs
from taskqueue.scheduling.schedules import DEFINITIONS, STATES
from tests.apps import schedule_tasks

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 3, 12, 0, 30, tzinfo=UTC)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


@pytest.fixture
def sqlite_manager(sqlite_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(sqlite_url)
    try:
        yield m
    finally:
        m.close()


def schedule(cron: str, since: datetime, **kwargs: object) -> Schedule:
    return replace(Schedule.create("s", "sched.tick", cron=cron, **kwargs), since=since)  # type: ignore[arg-type]


def fire_time(key: str | None) -> datetime:
    assert key is not None and key.startswith("schedule:")
    return datetime.fromisoformat(key.split(":", 2)[2])


def scheduled_jobs(manager: QueueManager, queue: str = "sched") -> list[datetime]:
    jobs = manager.search(JobFilter(queues=(queue,), limit=100_000))
    return [fire_time(j.idempotency_key) for j in jobs]


# -- which runs are due ---------------------------------------------------------------------------

def test_on_time_runs_within_the_grace_window() -> None:
    runs, skipped = due_runs(schedule("* * * * * *", NOW - timedelta(seconds=5)), NOW, 60)
    assert runs == [NOW - timedelta(seconds=s) for s in range(4, -1, -1)] and skipped == []


def test_nothing_is_due_before_the_schedule_existed() -> None:
    assert due_runs(schedule("0 0 * * *", NOW - timedelta(hours=1)), NOW, 60) == ([], [])


@pytest.mark.parametrize(("missed", "count", "first_missed"), [
    ("skip", 0, None), ("once", 1, "11:59:00"), ("all", 9, "11:51:00"),
])
def test_missed_run_policies(missed: str, count: int, first_missed: str | None) -> None:
    """Down for ten minutes, a per-minute schedule: 9 runs are older than the grace period."""
    sched = schedule("* * * * *", NOW - timedelta(minutes=10), missed=missed)
    runs, skipped = due_runs(sched, NOW, grace=60)
    on_time = [NOW.replace(second=0)]
    assert runs[len(runs) - 1:] == on_time and len(runs) == count + 1
    if first_missed:
        assert runs[0].strftime("%H:%M:%S") == first_missed
    assert skipped == ([] if missed != "skip" else [datetime(2024, 6, 3, 11, 59, tzinfo=UTC)])


def test_catch_up_is_bounded() -> None:
    sched = schedule("* * * * * *", NOW - timedelta(days=3), missed="all")
    runs, _ = due_runs(sched, NOW, grace=10)
    assert len(runs) == 100 and runs[-1] == NOW
    assert all(b - a == timedelta(seconds=1) for a, b in zip(runs, runs[1:], strict=False))


def test_last_fire_time_moves_the_start() -> None:
    sched = replace(schedule("* * * * * *", NOW - timedelta(hours=1)),
                    last_fire=NOW - timedelta(seconds=2))
    assert due_runs(sched, NOW, 60)[0] == [NOW - timedelta(seconds=1), NOW]


# -- the service, in process ----------------------------------------------------------------------

def add_every_second(manager: QueueManager, back: float = 3.0, **kwargs: object) -> Schedule:
    since = datetime.now(UTC) - timedelta(seconds=back)
    return ScheduleStore(manager.driver).add(
        replace(Schedule.create("every-second", "sched.tick", cron="* * * * * *", **kwargs),  # type: ignore[arg-type]
                since=since))


def test_only_the_leader_enqueues_and_a_standby_takes_over(
        sqlite_manager: QueueManager) -> None:
    add_every_second(sqlite_manager)
    first, second = (Scheduler(sqlite_manager, lock_ttl=2, tick=0.2) for _ in range(2))
    tick = first.run_once()
    assert tick.leader and len(tick.fired) >= 3 and all(f.job_id for f in tick.fired)
    assert not second.run_once().leader
    first.close()  # a clean stop hands the lock over at once
    assert second.run_once().leader
    second.close()


def test_each_fire_time_is_enqueued_once_even_when_recomputed(
        sqlite_manager: QueueManager) -> None:
    add_every_second(sqlite_manager, back=5)
    first = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2)
    ids = {f.fire: f.job_id for f in first.run_once().fired}
    # the leader "crashed" after pushing but before recording: the state is lost
    sqlite_manager.driver.registry_remove(STATES, "every-second")
    first.close()
    second = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2)
    again = {f.fire: f.job_id for f in second.run_once().fired}
    second.close()
    assert all(again[fire] == job_id for fire, job_id in ids.items()), "same jobs returned"
    fires = scheduled_jobs(sqlite_manager)
    assert len(fires) == len(set(fires)) == len(again)


def test_jobs_carry_the_task_defaults_tag_and_key(sqlite_manager: QueueManager) -> None:
    add_every_second(sqlite_manager, back=1.5, kwargs={}, priority=9)
    tick = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2).run_once()
    job = sqlite_manager.require(str(tick.fired[-1].job_id))
    assert job.queue_name == "sched"          # the task's own default queue
    assert job.priority == 9                   # the schedule's option over it
    assert "schedule:every-second" in job.tags
    assert job.idempotency_key == f"schedule:every-second:{tick.fired[-1].fire.isoformat()}"


def test_paused_schedules_do_not_fire_and_resume_skips_the_pause(
        sqlite_manager: QueueManager) -> None:
    add_every_second(sqlite_manager, back=5)
    store = ScheduleStore(sqlite_manager.driver)
    store.pause("every-second")
    scheduler = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2)
    assert scheduler.run_once().fired == []
    resumed = store.resume("every-second")
    assert not resumed.paused and resumed.since > datetime.now(UTC) - timedelta(seconds=1)
    assert len(scheduler.run_once().fired) <= 1
    scheduler.close()


_OPEN = threading.Event()


@condition("sched_test_open")
def sched_test_open() -> bool:
    return _OPEN.is_set()


def test_schedule_conditions_skip_runs(sqlite_manager: QueueManager,
                                       caplog: pytest.LogCaptureFixture) -> None:
    add_every_second(sqlite_manager, back=2.5, conditions=["sched_test_open"])
    scheduler = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2)
    caplog.set_level("INFO", logger="taskqueue.scheduler")
    tick = scheduler.run_once()
    assert tick.fired and all(f.skipped and not f.job_id for f in tick.fired)
    assert "condition 'sched_test_open' not met" in caplog.text
    assert scheduled_jobs(sqlite_manager) == []
    stored = ScheduleStore(sqlite_manager.driver).require("every-second")
    assert stored.last_fire == tick.fired[-1].fire, "skipped runs are not retried"
    _OPEN.set()
    try:
        wait_for(lambda: any(f.job_id for f in scheduler.run_once().fired), timeout=5)
    finally:
        _OPEN.clear()
        scheduler.close()


def test_a_broken_schedule_does_not_stop_the_others(sqlite_manager: QueueManager,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    good = add_every_second(sqlite_manager, back=1.5)
    broken = {**good.to_dict(), "name": "broken", "cron": "not a cron"}
    sqlite_manager.driver.registry_put(DEFINITIONS, "broken", broken, 3600)
    sqlite_manager.driver.registry_put(DEFINITIONS, "garbage", {"name": "garbage"}, 3600)
    scheduler = Scheduler(sqlite_manager, lock_ttl=2, tick=0.2)
    tick = scheduler.run_once()
    scheduler.close()
    assert tick.fired and {f.schedule for f in tick.fired} == {"every-second"}
    assert "schedule broken: could not be processed" in caplog.text
    assert "malformed schedule entry 'garbage'" in caplog.text


def test_store_rejects_bad_schedules(sqlite_manager: QueueManager) -> None:
    store = ScheduleStore(sqlite_manager.driver)
    with pytest.raises(ScheduleError, match="missed must be one of"):
        Schedule.create("x", "t", cron="@daily", missed="sometimes")
    with pytest.raises(ScheduleError, match="exactly one of cron"):
        Schedule.create("x", "t")
    with pytest.raises(ScheduleError, match="cannot be set on a schedule"):
        Schedule.create("x", "t", cron="@daily", delay=5)
    with pytest.raises(ScheduleError, match="without spaces"):
        Schedule.create("two words", "t", cron="@daily")
    with pytest.raises(ScheduleError, match="cannot parse condition"):
        Schedule.create("x", "t", cron="@daily", conditions=["cpu > 5"])
    store.add(Schedule.create("x", "t", every="weekday at 9am in Europe/Paris"))
    stored = store.require("x")
    assert (stored.cron, stored.timezone, stored.text) == (
        "0 9 * * 1-5", "Europe/Paris", "weekday at 9am in Europe/Paris")
    with pytest.raises(ScheduleError, match="already exists"):
        store.add(Schedule.create("x", "t", cron="@hourly"))
    store.pause("x")
    replaced = store.add(Schedule.create("x", "t", cron="@hourly"), replace_existing=True)
    assert replaced.paused and replaced.cron == "0 * * * *", "replace keeps the pause"


def test_scheduler_thread_stops_and_hands_over(sqlite_manager: QueueManager,
                                               sqlite_url: str) -> None:
    add_every_second(sqlite_manager, back=0)
    stop = threading.Event()
    other = QueueManager.from_url(sqlite_url)
    thread = start_scheduler_thread(other, stop, lock_ttl=5, tick=0.1)
    try:
        wait_for(lambda: len(scheduled_jobs(sqlite_manager)) >= 2, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
        other.close()
    assert not thread.is_alive()
    standby = Scheduler(sqlite_manager, lock_ttl=5, tick=0.1)
    assert standby.run_once().leader, "the stopped thread released the lock"
    standby.close()


# -- failover between two processes ---------------------------------------------------------------

def spawn_scheduler(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.apps.schedule_tasks", "--url", url, "schedule:run",
         "--lock-ttl", "2", "--tick", "0.2"],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def is_leader(manager: QueueManager, pid: int) -> bool:
    return any(e["pid"] == pid and e["leader"] for e in manager.driver.registry_list(STATUS_KIND))


def test_failover_between_two_scheduler_processes(store_url: str) -> None:
    """Kill -9 the leader: the standby takes over within one lock TTL, and every second has
    exactly one job: none lost in the gap, none doubled across the handover."""
    manager = QueueManager.from_url(store_url)
    add_every_second(manager, back=0)
    leader = spawn_scheduler(store_url)
    standby: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: is_leader(manager, leader.pid), timeout=20)
        standby = spawn_scheduler(store_url)
        wait_for(lambda: any(e["pid"] == standby.pid  # type: ignore[union-attr]
                             for e in manager.driver.registry_list(STATUS_KIND)), timeout=20)
        wait_for(lambda: len(scheduled_jobs(manager)) >= 3, timeout=10)
        os.kill(leader.pid, signal.SIGKILL)
        killed = datetime.now(UTC)
        leader.wait(timeout=10)
        wait_for(lambda: is_leader(manager, standby.pid), timeout=10)  # type: ignore[union-attr]
        took_over = datetime.now(UTC)
        wait_for(lambda: max(scheduled_jobs(manager)) >= took_over + timedelta(seconds=2))
        standby.send_signal(signal.SIGTERM)
        _, err = standby.communicate(timeout=15)
        assert standby.returncode == 0, err
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    fires = Counter(scheduled_jobs(manager))
    jobs = {fire_time(j.idempotency_key): j
            for j in manager.search(JobFilter(queues=("sched",), limit=100_000))}
    manager.close()
    seconds = sorted(fires)
    assert max(fires.values()) == 1, "a fire time was enqueued twice"
    assert seconds == [seconds[0] + timedelta(seconds=i) for i in range(len(seconds))], \
        "a fire time was lost"
    assert seconds[0] < killed - timedelta(seconds=1) and seconds[-1] > took_over
    gap = [f for f in seconds if killed <= f <= took_over]
    late = max((jobs[f].created_at - f).total_seconds() for f in gap) if gap else 0.0
    print(f"\n[{store_url.split(':')[0]}] failover in {(took_over - killed).total_seconds():.2f}s "
          f"(lock TTL 2s, tick 0.2s); {len(seconds)} seconds scheduled, each once; "
          f"{len(gap)} fell in the gap, enqueued up to {late:.2f}s late by the new leader")
    assert (took_over - killed).total_seconds() < 2 + 0.2 + 1.0


# -- CLI ------------------------------------------------------------------------------------------

@pytest.fixture
def cli(sqlite_url: str) -> Iterator[callable]:  # type: ignore[valid-type]
    runner = CliRunner()

    def invoke(*args: str) -> click.testing.Result:
        return runner.invoke(schedule_tasks.cli, ["--url", sqlite_url, *args])

    yield invoke


def test_cli_parse_shows_cron_and_five_runs(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("schedule:parse", "every weekday at 9am", "--tz", "Europe/Paris")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "cron:      0 9 * * 1-5" and lines[1] == "time zone: Europe/Paris"
    runs = [line for line in lines if line.startswith("  ")]
    assert len(runs) == 5 and all(" 09:00:00 CE" in line for line in runs)
    data = json.loads(cli("schedule:parse", "*/10 * * * * *", "--json").output)
    assert data["cron"] == "*/10 * * * * *" and len(data["next"]) == 5


def test_cli_parse_error_exits_2_with_the_failing_part(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("schedule:parse", "every blue moon at 9")
    assert result.exit_code == 2
    assert 'at "blue" (word 2)' in result.output


def test_cli_manages_schedules(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    added = cli("schedule:add", "nightly", "--task", "sched.tick", "--every", "day at 2:30",
                "--tz", "Europe/Paris", "--kwargs", "{}", "--missed", "once")
    assert added.exit_code == 0, added.output
    assert "30 2 * * * (Europe/Paris)" in added.output
    assert cli("schedule:add", "nightly", "--task", "x", "--cron", "@daily").exit_code == 2
    assert cli("schedule:add", "bad", "--task", "x", "--cron", "@daily",
               "--args", "{").exit_code == 2
    assert cli("schedule:add", "fast", "--task", "sched.tick", "--cron", "* * * * * *",
               "--queue", "fastq").exit_code == 0
    assert cli("schedule:pause", "nightly").exit_code == 0
    listed = json.loads(cli("schedule:list", "--json").output)
    assert [(s["name"], s["paused"], s["missed"]) for s in listed] == [
        ("fast", False, "skip"), ("nightly", True, "once")]
    assert listed[1]["text"] == "every day at 2:30"
    assert "nightly" in cli("schedule:list").output
    time.sleep(1.1)
    tick = json.loads(cli("schedule:run", "--once", "--json").output)
    assert tick["leader"] and {f["schedule"] for f in tick["fired"]} == {"fast"}
    assert cli("schedule:resume", "nightly").exit_code == 0
    assert cli("schedule:remove", "nightly").exit_code == 0
    missing = cli("schedule:remove", "nightly")
    assert missing.exit_code == 1 and "no schedule named 'nightly'" in missing.output
    assert [s["name"] for s in json.loads(cli("schedule:list", "--json").output)] == ["fast"]
