"""A job's options checked and normalized by the rules every push applies (``settle``), and
the conversions of its time options. ``Client`` settles each call's options with it (once per
option set: ``client.prepare.settle_key``), and a schedule checks with it the options its runs
will be pushed with, when it is added."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskqueue.jobs.body import RUN_OPTION_NAMES
from taskqueue.jobs.definition import Call, check_options
from taskqueue.jobs.model import DEFAULT_TIMEOUT
from taskqueue.jobs.names import check_queue, check_routed_queue, check_tags, check_task_name
from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.routing import routing_queue


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


def settle(call: Call, overrides: dict[str, Any]) -> Settled:
    """Check and normalize the options of ``call`` (with ``overrides`` on top), as every push
    does; a schedule checks the options of its future runs with it. What a push adds (the
    results a ``pass_result`` job receives, the trace context) is the client's."""
    opts = {**call.options, **{k: v for k, v in overrides.items() if v is not None}}
    if opts:
        check_options(opts, f"job {call.name}")
    check_task_name(call.name)
    queue = "default" if opts.get("queue") is None else check_queue(str(opts["queue"]))
    if wanted := opts.get("requires"):
        wanted = [wanted] if isinstance(wanted, str) else wanted  # one tag, not its letters
        requires = check_tags((str(t) for t in wanted), "required tag")
        queue = check_routed_queue(routing_queue(queue, requires))
    run_options = {} if opts.keys().isdisjoint(RUN_OPTION_NAMES) else {
        k: plain(opts[k]) for k in RUN_OPTION_NAMES if opts.get(k) not in (None, (), False)}
    max_attempts = int(opts.get("max_attempts") or 3)
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    return Settled(
        opts=opts, queue=queue, run_options=run_options,
        timeout_set=opts.get("timeout") is not None,
        tags=check_tags(str(t) for t in raw) if (raw := opts.get("tags")) else (),
        every=opts.get("every") is not None,
        priority=validate_priority(opts.get("priority", 5)),
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds(opts.get("timeout")),
        delay_seconds=delay_seconds(opts.get("delay"), opts.get("eta")),
        dependencies=tuple(str(d) for d in deps) if (deps := opts.get("depends_on")) else (),
        batch_id=opts.get("batch_id"))
