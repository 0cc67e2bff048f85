"""Where alert notifications go: a generic JSON webhook, a Slack-compatible webhook, e-mail
over SMTP, or the log. Each channel has one verb, ``send(notification)``, which raises
:class:`DeliveryError` when the message could not be delivered.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

from taskqueue.errors import ConfigError, TaskQueueError

log = logging.getLogger("taskqueue.alerts")


class DeliveryError(TaskQueueError):
    """A notification could not be delivered (after the channel's retries)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one alert: it started firing, is still firing, or resolved."""

    alert: str            # "<rule>|<subject>"
    rule: str
    kind: str
    subject: str
    status: str           # "firing" | "resolved"
    severity: str
    message: str
    value: float | None
    since: float
    at: float = field(default_factory=time.time)
    reminder: bool = False

    def title(self) -> str:
        return f"[taskqueue] {self.status.upper()}: {self.rule} ({self.subject})"

    def text(self) -> str:
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lead = "still firing" if self.reminder else self.status
        return f"{self.title()}\n{self.message}\n{lead} since {when}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": "taskqueue", **asdict(self)}


class Notifier(Protocol):
    name: str

    def send(self, notification: Notification) -> None: ...


@dataclass
class LogNotifier:
    """Writes the notification to the ``taskqueue.alerts`` logger."""

    name: str = "log"

    def send(self, notification: Notification) -> None:
        level = logging.WARNING if notification.status == "firing" else logging.INFO
        log.log(level, notification.text().replace("\n", " | "),
                extra={"alert": notification.alert, "alert_status": notification.status})


@dataclass
class WebhookNotifier:
    """POSTs JSON; ``style="slack"`` sends ``{"text": ...}`` (Slack, Mattermost, Rocket.Chat).

    Network errors and 5xx/429 answers are retried ``retries`` times with doubling delays;
    other 4xx answers are not (the request itself is wrong).
    """

    url: str
    name: str = "webhook"
    style: str = "json"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5

    def payload(self, notification: Notification) -> dict[str, Any]:
        if self.style == "slack":
            return {"text": notification.text()}
        return notification.to_dict()

    def send(self, notification: Notification) -> None:
        body = json.dumps(self.payload(notification)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "taskqueue-alerts",
                   **self.headers}
        delay, last = self.backoff, ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise DeliveryError(f"webhook {self.name}: {last}")


@dataclass
class EmailNotifier:
    """Sends a plain-text e-mail through an SMTP server (STARTTLS or TLS when asked)."""

    host: str
    sender: str
    recipients: Sequence[str]
    name: str = "email"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    tls: bool = False
    timeout: float = 10.0

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = notification.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(notification.text() + "\n")
        return msg

    def send(self, notification: Notification) -> None:
        smtp_cls = smtplib.SMTP_SSL if self.tls else smtplib.SMTP
        try:
            with smtp_cls(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(notification))
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email {self.name}: {exc}") from exc


_CHANNEL_TYPES = {"webhook", "slack", "email", "log"}


def build_channel(spec: Mapping[str, Any]) -> Notifier:
    """A notifier from a config table (``type`` = webhook | slack | email | log)."""
    options = {k: v for k, v in spec.items() if k != "type"}
    kind = str(spec.get("type", ""))
    try:
        if kind in ("webhook", "slack"):
            options.setdefault("name", kind)
            if kind == "slack":
                options["style"] = "slack"
            return WebhookNotifier(**options)
        if kind == "email":
            options.setdefault("name", "email")
            if "from" in options:
                options["sender"] = options.pop("from")
            if "to" in options:
                to = options.pop("to")
                options["recipients"] = [to] if isinstance(to, str) else list(to)
            return EmailNotifier(**options)
        if kind == "log":
            return LogNotifier(**options)
    except TypeError as exc:
        raise ConfigError(f"alert channel {spec.get('name', kind)!r}: {exc}") from None
    raise ConfigError(f"alert channel type {kind!r} is not one of {sorted(_CHANNEL_TYPES)}")
