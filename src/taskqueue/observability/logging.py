"""Structured logging through the standard ``logging`` module.

``configure(fmt="json")`` is for the CLI; libraries embedding taskqueue keep their own logging
setup. ``log_events(bus)`` turns lifecycle events into log records with ``extra`` fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from taskqueue.observability.events import (
    JOB_FAILED,
    JOB_LEASE_LOST,
    JOB_RETRIED,
    Event,
    EventBus,
)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET_WORDS = ("password", "secret", "key", "token", "payload")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = "***" if any(w in key.lower() for w in _SECRET_WORDS) else value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [f"{k}={v}" for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")
                  and not any(w in k.lower() for w in _SECRET_WORDS)]
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


def log_events(bus: EventBus, logger: logging.Logger | None = None) -> None:
    """Log every lifecycle event: problems at WARNING, the rest at INFO."""
    target = logger or logging.getLogger("taskqueue.jobs")

    def on_event(event: Event) -> None:
        level = logging.WARNING if event.kind in (JOB_FAILED, JOB_RETRIED,
                                                  JOB_LEASE_LOST) else logging.INFO
        target.log(level, event.kind, extra={"event": event.kind, **event.as_log_fields()})

    bus.subscribe(on_event)
