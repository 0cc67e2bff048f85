"""Alerts delivered for real: a local HTTP receiver and a local SMTP server started by the test;
an incident fires once and resolves once; real failing jobs trip the dead-letter rule."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import tests.apps.sample_tasks as tasks
from taskqueue import QueueManager
from taskqueue.cli.observe import alerts_check
from taskqueue.errors import ConfigError
from taskqueue.observability.alerts import (
    AlertConfig,
    AlertService,
    DeadLetter,
    QueueDepth,
    config_from_dict,
)
from taskqueue.observability.notifiers import EmailNotifier, Notification, WebhookNotifier
from taskqueue.observability.stats import StatsRecorder
from tests.integration.conftest import drain


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records JSON bodies; can fail the first N calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_first = fail_first
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.got:
                    receiver.calls += 1
                    failing = receiver.calls <= receiver.fail_first
                    if not failing:
                        receiver.bodies.append(json.loads(raw))
                    receiver.got.notify_all()
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def statuses(self) -> list[str]:
        return [str(b.get("status") or b.get("text", "").split(":")[0]) for b in self.bodies]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def depth_service(manager: QueueManager, channel: Any, **timing: float) -> AlertService:
    config = AlertConfig([QueueDepth(queue="mail", threshold=2)], {channel.name: channel},
                         **timing)
    return AlertService(manager.driver, config)


def test_webhook_fires_once_and_resolves_once(manager: QueueManager, receiver: Receiver,
                                              ledger: str) -> None:
    service = depth_service(manager, WebhookNotifier(receiver.url), cooldown=0)
    for _ in range(3):
        tasks.mark.push((ledger,), manager=manager, queue="mail")
    assert [n.status for n in service.run_once()] == ["firing"]
    assert service.run_once() == [] and service.run_once() == []
    drain(manager, queues=["mail"])
    assert [n.status for n in service.run_once()] == ["resolved"]
    assert service.run_once() == []

    assert receiver.statuses() == ["firing", "resolved"]
    firing = receiver.bodies[0]
    assert firing["alert"] == "queue_depth:mail|mail" and firing["value"] == 3
    assert firing["source"] == "taskqueue" and "3 jobs pending/retrying" in firing["message"]
    history = service.history()
    assert [(h["status"], h["channels"]) for h in history] == [
        ("firing", {"webhook": "ok"}), ("resolved", {"webhook": "ok"})]


def test_an_incident_on_every_backend(store_url: str, receiver: Receiver) -> None:
    with QueueManager.from_url(store_url) as manager:
        service = depth_service(manager, WebhookNotifier(receiver.url), cooldown=0)
        ids = [tasks.add.push((1, 1), manager=manager, queue="mail") for _ in range(3)]
        assert [n.status for n in service.run_once()] == ["firing"]
        assert service.run_once() == []
        for job_id in ids:
            manager.cancel(job_id)
        assert [n.status for n in service.run_once()] == ["resolved"]
        assert [h["status"] for h in service.history()] == ["firing", "resolved"]
    assert receiver.statuses() == ["firing", "resolved"]


def test_cooldown_keeps_a_flapping_queue_quiet(manager: QueueManager, receiver: Receiver,
                                               ledger: str) -> None:
    service = depth_service(manager, WebhookNotifier(receiver.url), cooldown=3600)
    for round_ in range(3):
        ids = [tasks.mark.push((ledger,), manager=manager, queue="mail") for _ in range(3)]
        service.run_once()
        for job_id in ids:
            manager.cancel(job_id)
        service.run_once()
        assert receiver.statuses() == ["firing", "resolved"], f"round {round_}"


def test_webhook_retries_server_errors_and_speaks_slack() -> None:
    receiver = Receiver(fail_first=2)
    try:
        hook = WebhookNotifier(receiver.url, name="slack", style="slack", retries=3,
                               backoff=0.01)
        message = Notification(alert="backlog|mail", rule="backlog", kind="queue_depth",
                               subject="mail", status="firing", severity="warning",
                               message="mail: 9 jobs pending", value=9, since=0.0)
        hook.send(message)
        assert receiver.calls == 3
        assert receiver.bodies == [{"text": message.text()}]
        assert receiver.bodies[0]["text"].startswith("[taskqueue] FIRING: backlog (mail)")
    finally:
        receiver.close()


def test_unreachable_webhook_is_reported_in_the_history(manager: QueueManager,
                                                        ledger: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"   # bound, never listening
        service = depth_service(manager, WebhookNotifier(dead, retries=1, backoff=0.01))
        for _ in range(3):
            tasks.mark.push((ledger,), manager=manager, queue="mail")
        assert service.run_once() == []
    (entry,) = service.history()
    assert entry["channels"]["webhook"].startswith("error")
    assert service.active()[0]["notified"] is False


# -- e-mail ------------------------------------------------------------------------------------

@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[email.message.Message]]]:
    controller_module = pytest.importorskip("aiosmtpd.controller")
    inbox: list[email.message.Message] = []
    got = threading.Event()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            inbox.append(email.message_from_bytes(envelope.original_content))
            got.set()
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = controller_module.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def test_email_is_delivered_over_smtp(manager: QueueManager, ledger: str,
                                      smtp_server: tuple[int, list[email.message.Message]]
                                      ) -> None:
    port, inbox = smtp_server
    mailer = EmailNotifier(host="127.0.0.1", port=port, sender="jobs@example.com",
                           recipients=["ops@example.com"])
    service = depth_service(manager, mailer, cooldown=0)
    for _ in range(3):
        tasks.mark.push((ledger,), manager=manager, queue="mail")
    service.run_once()
    drain(manager, queues=["mail"])
    service.run_once()
    assert [m["Subject"] for m in inbox] == [
        "[taskqueue] FIRING: queue_depth:mail (mail)",
        "[taskqueue] RESOLVED: queue_depth:mail (mail)"]
    assert inbox[0]["To"] == "ops@example.com"
    assert "3 jobs pending/retrying" in inbox[0].get_payload()


# -- dead letter queue, through the CLI ---------------------------------------------------------

def test_jobs_failing_into_the_dlq_trip_the_rule(manager: QueueManager, ledger: str,
                                                 receiver: Receiver) -> None:
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    job_id = tasks.permanent.push((ledger,), manager=manager, queue="billing")
    drain(manager, queues=["billing"])
    recorder.flush()
    config = AlertConfig([DeadLetter(queue="billing")],
                         {"hook": WebhookNotifier(receiver.url, name="hook")})
    (note,) = AlertService(manager.driver, config).run_once()
    assert note.subject == "billing" and job_id in note.message
    assert receiver.bodies[0]["message"] == note.message


def cli_for(url: str) -> click.Group:
    @click.group()
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.obj = {"url": url}

    group.add_command(alerts_check)
    return group


def test_alerts_check_command(manager: QueueManager, sqlite_url: str, tmp_path: Path,
                              receiver: Receiver, ledger: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text("""
[[channels]]
name = "hook"
type = "webhook"
url_env = "HOOK_URL"

[[rules]]
kind = "queue_depth"
queue = "mail"
threshold = 1
""")
    monkeypatch.setenv("HOOK_URL", receiver.url)
    group = cli_for(sqlite_url)
    runner = CliRunner()
    quiet = runner.invoke(group, ["alerts:check", "--config", str(rules), "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.output)["firing"] == []
    for _ in range(2):
        tasks.mark.push((ledger,), manager=manager, queue="mail")
    loud = runner.invoke(group, ["alerts:check", "--config", str(rules), "--json"])
    assert loud.exit_code == 1, loud.output
    data = json.loads(loud.output)
    assert [f["subject"] for f in data["firing"]] == ["mail"] and data["leader"] is True
    assert [n["status"] for n in data["notified"]] == ["firing"]
    again = runner.invoke(group, ["alerts:check", "--config", str(rules)])
    assert again.exit_code == 1 and "1 alert(s) firing" in again.output
    assert receiver.statuses() == ["firing"]        # the second check did not repeat it
    missing = runner.invoke(group, ["alerts:check", "--config", str(tmp_path / "none.toml")])
    assert isinstance(missing.exception, ConfigError)   # exit code 2 under the real group


def test_config_loaded_from_json(tmp_path: Path) -> None:
    config = config_from_dict(json.loads('{"alerts": {"rules": [{"kind": "no_worker"}]}}'))
    assert [r.kind for r in config.rules] == ["no_worker"]
