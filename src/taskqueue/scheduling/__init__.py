"""Scheduling: recurring jobs (cron or English, in a time zone), rate and concurrency limits,
and conditions on system state.

Importing this package installs the limit and condition middleware in every worker started
afterwards in the process (conditions first, then concurrency slots, then rate).

    from taskqueue.scheduling import Schedule, ScheduleStore
    ScheduleStore(manager.driver).add(
        Schedule.create("nightly-report", "app.report", every="every day at 2:30",
                        timezone="Europe/Paris", missed="once"))
"""

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
from taskqueue.scheduling.natural import Compiled, compile_phrase
from taskqueue.scheduling.ratelimit import (
    ConcurrencyMiddleware,
    Rate,
    RateLimitMiddleware,
    parse_rate,
    queue_limits,
    set_queue_limit,
)
from taskqueue.scheduling.scheduler import Scheduler, Tick, start_scheduler_thread
from taskqueue.scheduling.schedules import (
    MAX_CATCH_UP,
    MISSED_POLICIES,
    Schedule,
    ScheduleNotFound,
    ScheduleStore,
    parse_schedule_text,
)

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
