"""Scheduling: recurring jobs (cron or English, in a time zone), rate and concurrency limits,
and conditions on system state.

Importing this package installs the limit and condition middleware in every worker started
afterwards in the process (conditions first, then concurrency slots, then rate).

    from taskqueue.scheduling import Schedule, ScheduleStore
    ScheduleStore(manager.driver).add(
        Schedule.create("nightly-report", "app.report", every="every day at 2:30",
                        timezone="Europe/Paris", missed="once"))

Only the middleware modules load with the package (every worker imports it); the schedule
store, the scheduler and the English phrase compiler load on first use of one of their names,
and croniter and psutil on the first cron computation or system reading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Tracing's middleware registers before the limits, so a run's span wraps their checks.
import taskqueue.observability.tracing  # noqa: F401
from taskqueue.scheduling.conditions import (
    ConditionMiddleware,
    Probe,
    Verdict,
    condition,
    cpu_below,
    memory_above,
    parse_condition,
    queue_above,
    queue_below,
    time_window,
)
from taskqueue.scheduling.cron import ScheduleError, next_fire_times, normalize_cron
from taskqueue.scheduling.ratelimit import (
    ConcurrencyMiddleware,
    Rate,
    RateLimitMiddleware,
    parse_rate,
    queue_limits,
    set_queue_limit,
)

if TYPE_CHECKING:
    from taskqueue.scheduling.natural import Compiled, compile_phrase
    from taskqueue.scheduling.scheduler import Scheduler, Tick, start_scheduler_thread
    from taskqueue.scheduling.schedules import (
        MAX_CATCH_UP,
        MISSED_POLICIES,
        Schedule,
        ScheduleNotFound,
        ScheduleStore,
        parse_schedule_text,
    )

#: Names loaded on first use, and the submodule each comes from.
_LAZY = {
    "Compiled": "natural",
    "compile_phrase": "natural",
    "Scheduler": "scheduler",
    "Tick": "scheduler",
    "start_scheduler_thread": "scheduler",
    "MAX_CATCH_UP": "schedules",
    "MISSED_POLICIES": "schedules",
    "Schedule": "schedules",
    "ScheduleNotFound": "schedules",
    "ScheduleStore": "schedules",
    "parse_schedule_text": "schedules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "MAX_CATCH_UP",
    "MISSED_POLICIES",
    "Compiled",
    "ConcurrencyMiddleware",
    "ConditionMiddleware",
    "Probe",
    "Rate",
    "RateLimitMiddleware",
    "Schedule",
    "ScheduleError",
    "ScheduleNotFound",
    "ScheduleStore",
    "Scheduler",
    "Tick",
    "Verdict",
    "compile_phrase",
    "condition",
    "cpu_below",
    "memory_above",
    "next_fire_times",
    "normalize_cron",
    "parse_condition",
    "parse_rate",
    "parse_schedule_text",
    "queue_above",
    "queue_below",
    "queue_limits",
    "set_queue_limit",
    "start_scheduler_thread",
    "time_window",
]
