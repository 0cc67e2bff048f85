"""Alert rules on known figures, their configuration, and the incident life cycle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskqueue.drivers import Driver, QueueStats, open_driver
from taskqueue.errors import ConfigError
from taskqueue.jobs.states import State
from taskqueue.observability.alerts import (
    AlertConfig,
    AlertService,
    DeadLetter,
    FailureRate,
    Finding,
    NoWorker,
    OldestJob,
    QueueDepth,
    Snapshot,
    WorkerMemory,
    config_from_dict,
    load_config,
    parse_duration,
)
from taskqueue.observability.notifiers import EmailNotifier, Notification, WebhookNotifier
from taskqueue.observability.stats import History, TaskStats

NOW = 1_000_000 * 60.0 + 30


def queue(pending: int = 0, retrying: int = 0, oldest_age: float | None = None) -> QueueStats:
    qs = QueueStats()
    qs.counts[State.PENDING], qs.counts[State.RETRYING] = pending, retrying
    if oldest_age is not None:
        qs.oldest_ready_at = datetime.fromtimestamp(NOW - oldest_age, UTC)
    return qs


def snapshot(stats: dict[str, QueueStats] | None = None,
             workers: list[dict[str, Any]] | None = None,
             cells: dict[str, dict[str, int]] | None = None) -> Snapshot:
    entries = [{"v": 1, "minute": int(NOW // 60), "source": "s",
                "queues": {q: {"t": TaskStats(dict(c)).to_json()}}}
               for q, c in (cells or {}).items()]
    return Snapshot(None, stats or {}, workers or [],  # type: ignore[arg-type]
                    History.from_entries(entries, now=NOW), NOW, NOW)


def subjects(findings: list[Finding]) -> list[str]:
    return [f.subject for f in findings]


def test_failure_rate_needs_enough_jobs_and_a_rate_over_the_threshold() -> None:
    snap = snapshot(cells={"a": {"completed": 8, "failed": 2}, "b": {"completed": 2, "failed": 2},
                           "c": {"completed": 95, "failed": 5, "retried": 50}})
    rule = FailureRate(threshold=10, min_jobs=5)
    found = rule.evaluate(snap)
    assert subjects(found) == ["a"]
    assert found[0].value == pytest.approx(20.0) and "20.0% of 10 jobs" in found[0].message
    assert subjects(FailureRate(threshold=10, include_retries=True).evaluate(snap)) == ["a", "c"]
    assert subjects(FailureRate(threshold=10, queue="b", min_jobs=1).evaluate(snap)) == ["b"]


def test_depth_age_and_worker_rules() -> None:
    workers = [{"id": "w1", "queues": ["a"], "paused_queues": [], "rss_mb": 120.0},
               {"id": "w2", "queues": ["b"], "paused_queues": ["b"], "rss_mb": 900.0}]
    snap = snapshot({"a": queue(pending=50, oldest_age=30), "b": queue(retrying=3,
                                                                       oldest_age=4000),
                     "idle": queue()}, workers)
    assert subjects(QueueDepth(threshold=10).evaluate(snap)) == ["a"]
    assert subjects(QueueDepth(threshold=1, states=("retrying",)).evaluate(snap)) == ["b"]
    assert subjects(OldestJob(max_age=600).evaluate(snap)) == ["b"]
    # "b" is only served by a worker that paused it; "idle" has nothing waiting
    assert subjects(NoWorker().evaluate(snap)) == ["b"]
    # a named queue with nothing waiting does not fire either (it needs no worker yet)
    assert subjects(NoWorker(queue="reports").evaluate(snap)) == []
    assert subjects(NoWorker(queue="idle").evaluate(snap)) == []
    assert subjects(NoWorker(queue="b").evaluate(snap)) == ["b"]
    assert subjects(WorkerMemory(max_mb=500).evaluate(snap)) == ["w2"]
    assert subjects(WorkerMemory(max_mb=500, queue="a").evaluate(snap)) == []


def test_dead_letter_rule_counts_recent_failures(tmp_path: Path) -> None:
    driver = open_driver(f"sqlite:///{tmp_path / 'q.db'}")
    snap = snapshot(cells={"a": {"failed": 2}, "b": {"completed": 9}})
    snap.driver = driver
    found = DeadLetter().evaluate(snap)
    driver.close()
    assert subjects(found) == ["a"] and "2 job(s) failed into the dead letter queue" in \
        found[0].message
    assert DeadLetter(threshold=5).evaluate(snap) == []


TOML = """
[alerts]
cooldown = "10m"
repeat_after = "4h"

[[alerts.channels]]
name = "ops"
type = "slack"
url_env = "OPS_SLACK_URL"

[[alerts.channels]]
type = "email"
host = "smtp.example.com"
port = 587
from = "jobs@example.com"
to = ["ops@example.com", "dev@example.com"]
username = "jobs"
password_env = "SMTP_PASSWORD"
starttls = true

[[alerts.rules]]
kind = "failure_rate"
queue = "emails"
threshold = 5
window = "15m"
channels = "ops"

[[alerts.rules]]
name = "backlog"
kind = "queue_depth"
threshold = 10000
severity = "critical"
"""


def test_config_from_toml_with_secrets_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(TOML)
    env = {"OPS_SLACK_URL": "https://hooks.example/T/B/x", "SMTP_PASSWORD": "pw"}
    config = load_config(path, env)
    assert (config.cooldown, config.repeat_after) == (600.0, 4 * 3600.0)
    rate, backlog = config.rules
    assert isinstance(rate, FailureRate) and rate.window == 900 and rate.channels == ("ops",)
    assert rate.name == "failure_rate:emails"
    assert isinstance(backlog, QueueDepth) and backlog.severity == "critical"
    slack, email = config.channels["ops"], config.channels["email"]
    assert isinstance(slack, WebhookNotifier) and slack.style == "slack"
    assert slack.url == env["OPS_SLACK_URL"]
    assert isinstance(email, EmailNotifier) and email.password == "pw"
    assert email.recipients == ["ops@example.com", "dev@example.com"]
    assert "pw" not in repr(email)


@pytest.mark.parametrize("data,message", [
    ({"rules": [{"kind": "failure_rat"}]}, "did you mean 'failure_rate'"),
    ({"rules": [{"kind": "queue_depth", "treshold": 3}]}, "did you mean 'threshold'"),
    ({"rules": [{"kind": "oldest_job", "max_age": "soon"}]}, "not a duration"),
    ({"rules": [{"kind": "no_worker", "channels": ["pager"]}]}, "unknown channel"),
    ({"channels": [{"type": "pigeon"}]}, "is not one of"),
    ({"channels": [{"type": "webhook", "url_env": "NOPE"}]}, "'NOPE'"),
    ({"rulez": []}, "unknown setting 'rulez'"),
])
def test_bad_configuration_is_refused_with_a_hint(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, {})


def test_durations() -> None:
    assert [parse_duration(v) for v in (5, "90s", "5m", "1.5h", "2d", "250ms")] == \
        [5, 90, 300, 5400, 172800, 0.25]


# -- incidents --------------------------------------------------------------------------------

class Inbox:
    name = "inbox"

    def __init__(self) -> None:
        self.got: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.got.append(notification)

    def statuses(self) -> list[str]:
        return [("reminder" if n.reminder else n.status) for n in self.got]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Driver]:
    driver = open_driver(f"sqlite:///{tmp_path / 'q.db'}")
    yield driver
    driver.close()


def service(store: Driver, clock: Clock, **timing: float) -> tuple[AlertService, Inbox]:
    inbox = Inbox()
    rule = QueueDepth(threshold=1)
    config = AlertConfig([rule], {"inbox": inbox}, **timing)
    return AlertService(store, config, clock=clock), inbox


def fire(svc: AlertService, firing: bool) -> list[Notification]:
    rule = svc.config.rules[0]
    findings = [Finding(rule, "emails", 5, "emails: 5 jobs")] if firing else []
    return svc.process(findings)


def test_one_notification_per_incident_and_one_resolution(store: Driver) -> None:
    clock = Clock()
    svc, inbox = service(store, clock, cooldown=300)
    for firing in (True, True, True, False, False):
        fire(svc, firing)
        clock.now += 30
    assert inbox.statuses() == ["firing", "resolved"]
    assert inbox.got[1].message.startswith("resolved: ")
    assert [h["status"] for h in svc.history()] == ["firing", "resolved"]
    assert all(h["channels"] == {"inbox": "ok"} for h in svc.history())
    assert svc.active() == []


def test_cooldown_holds_back_a_flapping_alert(store: Driver) -> None:
    clock = Clock()
    svc, inbox = service(store, clock, cooldown=300)
    fire(svc, True)
    clock.now += 10
    fire(svc, False)             # resolved (announced)
    clock.now += 10
    fire(svc, True)              # re-fires inside the cooldown: held back
    clock.now += 10
    fire(svc, False)             # clears before the cooldown ends: never announced
    clock.now += 10
    fire(svc, True)
    assert inbox.statuses() == ["firing", "resolved"]
    clock.now += 300
    fire(svc, True)              # still firing once the cooldown is over: announced now
    assert inbox.statuses() == ["firing", "resolved", "firing"]


def test_reminders_while_an_alert_keeps_firing(store: Driver) -> None:
    clock = Clock()
    svc, inbox = service(store, clock, cooldown=60, repeat_after=3600)
    for _ in range(5):
        fire(svc, True)
        clock.now += 1000
    assert inbox.statuses() == ["firing", "reminder"]


def test_a_failed_delivery_is_retried_at_the_next_evaluation(store: Driver) -> None:
    clock = Clock()
    svc, inbox = service(store, clock, cooldown=300)
    broken = {"n": 1}
    real_send = inbox.send

    def flaky(notification: Notification) -> None:
        if broken["n"]:
            broken["n"] -= 1
            raise OSError("connection refused")
        real_send(notification)

    inbox.send = flaky  # type: ignore[method-assign]
    fire(svc, True)
    assert inbox.got == [] and svc.history()[0]["channels"]["inbox"].startswith("error")
    fire(svc, True)
    assert inbox.statuses() == ["firing"]


def test_only_the_leader_notifies(store: Driver) -> None:
    inbox = Inbox()
    config = AlertConfig([NoWorker(queue="emails")], {"inbox": inbox})
    from taskqueue import QueueManager, TestJob

    QueueManager(store).push(TestJob({"n": 1}, queue="emails"))  # a job waits, unserved
    first = AlertService(store, config, owner="node-a")
    second = AlertService(store, config, owner="node-b")
    assert len(first.run_once()) == 1
    assert second.run_once() == []
    assert first.run_once() == []   # still firing: no second notification
    assert len(inbox.got) == 1


def test_a_rule_that_raises_does_not_resolve_its_alerts(store: Driver) -> None:
    clock = Clock()
    svc, inbox = service(store, clock)
    fire(svc, True)
    svc.process([], broken={svc.config.rules[0].name})
    assert inbox.statuses() == ["firing"]


def test_resolved_state_is_kept_for_the_cooldown(store: Driver) -> None:
    clock = Clock()
    svc, _ = service(store, clock, cooldown=60)
    fire(svc, True)
    fire(svc, False)
    (state,) = store.registry_list("alert_state")
    assert state["status"] == "resolved" and state["notified"] is False
    assert state["last_notified"] == clock.now
