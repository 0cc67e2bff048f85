"""Pieces of ``Client.prepare``: the options of a job once checked and normalized (shared by
the consecutive jobs of one task in ``push_many``), and the conversions of time options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskqueue.jobs.model import DEFAULT_TIMEOUT
from taskqueue.jobs.priority import Priority


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


#: Option values a settled-options key may hold: immutable, and equal only to values of their
#: own type that settle the same way (the key holds each value's type: ``True == 1``, but
#: ``priority=True`` is refused where 1 is not).
_KEYABLE = frozenset({str, int, float, bool, type(None), timedelta, Priority})


def settle_key(name: str, options: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """A key for the settled options of a call of task ``name`` (its ``options`` with
    ``overrides`` on top), or None when they must be settled afresh: ``eta`` (it counts from
    now) or a value other than a plain scalar, a timedelta, a Priority or a tuple or list of
    strings (a list is keyed by what it holds now)."""
    if "eta" in options or "eta" in overrides:
        return None
    items: list[Any] = [name]
    for source in (options, overrides):
        for option, value in source.items():
            kind = type(value)
            if kind is tuple or kind is list:
                if not all(type(v) is str for v in value):
                    return None
                value = tuple(value)
            elif kind not in _KEYABLE:
                return None
            items += (option, kind, value)
        items.append(None)
    return tuple(items)


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
