"""Structured logging through the standard ``logging`` module.

``configure(fmt="json")`` is for the CLI; libraries embedding taskqueue keep their own logging
setup. ``log_events(bus)`` turns lifecycle events into records on ``taskqueue.jobs``.

Every job event record carries the same fields (``None`` when not known yet, e.g. the attempt
of a job just enqueued): ``event``, ``job_id``, ``job_name``, ``queue``, ``attempt``,
``duration`` (seconds of the run), ``worker_id``, plus ``error`` for failures and the event's
own small fields. (``job_name``, because ``name`` is the logger's name on a LogRecord.)

What is never logged: payloads and results (events do not carry them, and extra fields named
like ``payload``, ``kwargs``, ``result``, ``data`` or ``body`` are masked), secrets (fields
whose name contains ``password``, ``secret``, ``token``, ``key`` or ``authorization`` are
masked), and credentials inside text (``scheme://user:password@host`` and ``base64:`` key
material are masked in messages and string fields).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from taskqueue.observability.events import (
    ALL_KINDS,
    JOB_FAILED,
    JOB_LEASE_LOST,
    JOB_RAN,
    JOB_RETRIED,
    WORKER_HEARTBEAT,
    Event,
    EventBus,
)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "authorization", "credential")
_PAYLOAD_WORDS = ("payload", "kwargs", "result", "data", "body")
_URL_AUTH = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*):[^@/\s]+@")
_KEY_MATERIAL = re.compile(r"base64:[A-Za-z0-9+/=_-]{16,}")
JOB_FIELDS = ("job_id", "job_name", "queue", "attempt", "duration", "worker_id")
MASK = "***"


def scrub(text: str) -> str:
    """Mask passwords in URLs and key material in free text."""
    return _KEY_MATERIAL.sub("base64:" + MASK, _URL_AUTH.sub(r"\1:" + MASK + "@", text))


def sensitive(field_name: str) -> bool:
    lowered = field_name.lower()
    return any(w in lowered for w in _SECRET_WORDS + _PAYLOAD_WORDS)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's extra fields, masked where needed."""
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if sensitive(key):
            out[key] = MASK
        else:
            out[key] = scrub(value) if isinstance(value, str) else value
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        out.update(extra_fields(record))
        if record.exc_info:
            out["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        base = scrub(super().format(record))
        extras = [f"{k}={v}" for k, v in extra_fields(record).items() if v is not None]
        return base + (" " + " ".join(extras) if extras else "")


def configure(fmt: str = "text", level: str | int = "INFO") -> None:
    """Install one stderr handler on the ``taskqueue`` logger (idempotent)."""
    logger = logging.getLogger("taskqueue")
    for handler in list(logger.handlers):
        if getattr(handler, "_taskqueue", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._taskqueue = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    logger.propagate = False


def event_level(kind: str) -> int:
    if kind == JOB_FAILED:
        return logging.ERROR
    if kind in (JOB_RETRIED, JOB_LEASE_LOST):
        return logging.WARNING
    if kind in (WORKER_HEARTBEAT, JOB_RAN) or kind.startswith("worker."):
        return logging.DEBUG  # the worker logs its own start and stop
    return logging.INFO


def event_fields(event: Event) -> dict[str, Any]:
    """The ``extra`` of an event's record: the job fields always, then the event's own."""
    out: dict[str, Any] = {"event": event.kind}
    if event.kind.startswith("job."):
        out.update(job_id=event.job_id, job_name=event.name, queue=event.queue,
                   attempt=event.attempt, duration=event.duration, worker_id=event.worker_id)
    elif event.worker_id is not None:
        out["worker_id"] = event.worker_id
    if event.error is not None:
        out["error"] = event.error
    for key, value in event.fields.items():
        out[key if key not in _STANDARD and key not in out else f"field_{key}"] = value
    return out


def event_message(event: Event) -> str:
    parts = [event.kind, event.name or "", event.job_id or ""]
    text = " ".join(p for p in parts if p)
    if event.duration is not None:
        text += f" in {event.duration:.3f}s"
    if event.error:
        text += f": {event.error}"
    return text


def log_events(bus: EventBus, logger: logging.Logger | None = None) -> None:
    """Log every lifecycle event (failures at ERROR, retries and lost leases at WARNING).

    Only the kinds the logger's level lets through when this is called are subscribed (so
    set the level first): at the default WARNING a worker builds no event for a job that
    started or completed, which is most of what observability cost per job."""
    target = logger or logging.getLogger("taskqueue.jobs")

    def on_event(event: Event) -> None:
        level = event_level(event.kind)
        if target.isEnabledFor(level):
            target.log(level, "%s", event_message(event), extra=event_fields(event))

    for kind in ALL_KINDS:
        if target.isEnabledFor(event_level(kind)):
            bus.subscribe(on_event, kind)
