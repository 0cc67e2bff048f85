"""Pieces of ``Client.prepare``: the options of a job once checked and normalized (shared by
the consecutive jobs of one task in ``push_many``), and the conversions of time options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskqueue.jobs.model import DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Settled:
    """A job's options, checked and normalized: the part of ``prepare`` that jobs of one task
    with the same options share."""

    opts: dict[str, Any]
    queue: str
    run_options: dict[str, Any]
    timeout_set: bool
    tags: tuple[str, ...]
    every: bool
    priority: int
    max_attempts: int
    timeout_seconds: int
    delay_seconds: float
    dependencies: tuple[str, ...]
    batch_id: str | None


def plain(value: Any) -> Any:
    """Options that travel in the payload must be JSON: timedeltas become seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else value


def delay_seconds(delay: float | timedelta | None, eta: datetime | None) -> float:
    """Normalize ``delay=`` (seconds or timedelta) or ``eta=`` (aware datetime) to seconds."""
    if delay is not None and eta is not None:
        raise ValueError("give either delay= or eta=, not both")
    if eta is not None:
        if eta.tzinfo is None:
            raise ValueError("eta must be timezone-aware (e.g. datetime.now(UTC) + ...)")
        return max(0.0, (eta - datetime.now(UTC)).total_seconds())
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    seconds = float(delay or 0)
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"delay must be >= 0 seconds, got {delay}")
    return seconds


def timeout_seconds(timeout: float | None) -> int:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return max(1, math.ceil(timeout))
