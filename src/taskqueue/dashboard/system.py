"""Queues, workers, schedules and alerts as the dashboard shows and changes them.

Each function takes the manager (or its driver) and returns plain JSON-ready data; the API
module turns requests into calls of these and records the changes in the audit log.

Pausing and resuming a worker are idempotent verbs on the store (``worker/presence.py``): they
work for a worker on any host, the worker follows within a second, and pausing a paused worker
changes nothing and says so. Recycling is the signal a worker already obeys (``SIGUSR1``; its
supervisor replaces the process). A signal can only reach a process on this machine, so a
recycle is refused, with the command to run instead, for a worker on another host; the
process is checked to be the registered worker (same pid, started no later than the worker
says) before anything is sent.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from typing import Any

import psutil

from taskqueue.errors import TaskQueueError
from taskqueue.manager import QueueManager
from taskqueue.observability import health
from taskqueue.observability.alerts import RULES, AlertConfig, AlertService
from taskqueue.scheduling.cron import describe_zone_offset
from taskqueue.scheduling.ratelimit import parse_rate, queue_limits, set_queue_limit
from taskqueue.scheduling.scheduler import schedule_call
from taskqueue.scheduling.schedules import Schedule, ScheduleStore
from taskqueue.worker.presence import pause_or_resume


class ActionRefused(TaskQueueError):
    """The action cannot be done as asked (HTTP 409 with this message)."""


# -- queues -------------------------------------------------------------------------------------

def set_limits(manager: QueueManager, queue: str, rate: str | None,
               concurrency: int | None) -> dict[str, Any]:
    if rate:
        parse_rate(rate)  # ConfigError on nonsense, before anything is stored
    set_queue_limit(manager.driver, queue, rate=rate or None, concurrency=concurrency)
    return queue_limits(manager.driver).get(queue) or {"queue": queue, "rate": None,
                                                       "concurrency": None}


def limits(manager: QueueManager) -> dict[str, dict[str, Any]]:
    return queue_limits(manager.driver)


# -- workers ------------------------------------------------------------------------------------

WORKER_ACTIONS = ("pause", "resume", "recycle")


def workers(manager: QueueManager) -> list[dict[str, Any]]:
    now = time.time()
    host = socket.gethostname()
    out = []
    for entry in sorted(manager.driver.registry_list("worker"), key=lambda e: str(e.get("id"))):
        beat = float(entry.get("last_heartbeat") or 0)
        out.append({**entry, "heartbeat_age": round(now - beat, 1),
                    "local": entry.get("host") == host,
                    "uptime": round(now - float(entry.get("started") or now), 1)})
    return out


def control_worker(manager: QueueManager, worker_id: str, action: str, by: str = "") -> str:
    """Pause, resume or recycle one live worker; return what was done."""
    if action not in WORKER_ACTIONS:
        raise ActionRefused(f"unknown worker action {action!r}; use pause, resume or recycle")
    entry = next((w for w in manager.driver.registry_list("worker")
                  if w.get("id") == worker_id), None)
    if entry is None:
        raise ActionRefused(f"no live worker {worker_id!r} (it may have stopped)")
    if action != "recycle":
        return pause_or_resume(manager.driver, worker_id, action, by)
    pid = int(entry.get("pid") or 0)
    if entry.get("host") != socket.gethostname():
        raise ActionRefused(f"worker {worker_id} runs on {entry.get('host')}; run "
                            f"`kill -USR1 {pid}` there")
    _check_process(pid, float(entry.get("started") or 0))
    os.kill(pid, signal.SIGUSR1)
    return f"sent SIGUSR1 to worker {worker_id} (pid {pid})"



def _check_process(pid: int, started: float) -> None:
    try:
        process = psutil.Process(pid)
        created = process.create_time()
    except (psutil.Error, ValueError) as exc:
        raise ActionRefused(f"process {pid} is gone: {exc}") from None
    if started and created > started + 5:
        raise ActionRefused(f"process {pid} is not the registered worker (pid reused)")


# -- schedules ----------------------------------------------------------------------------------

def schedules(manager: QueueManager) -> list[dict[str, Any]]:
    out = []
    for schedule in ScheduleStore(manager.driver).list():
        data = schedule.to_dict()
        runs, data["problem"] = schedule.upcoming(3)
        data["next_runs"] = [{"utc": r.isoformat(),
                              "local": describe_zone_offset(r, schedule.timezone)} for r in runs]
        data["last_fire_local"] = (describe_zone_offset(schedule.last_fire, schedule.timezone)
                                   if schedule.last_fire else None)
        out.append(data)
    return out


def schedule_action(manager: QueueManager, name: str, action: str) -> dict[str, Any]:
    store = ScheduleStore(manager.driver)
    if action == "pause":
        return store.pause(name).to_dict()
    if action == "resume":
        return store.resume(name).to_dict()
    if action == "run":
        schedule: Schedule = store.require(name)
        handle = manager.push(schedule_call(schedule))
        return {**schedule.to_dict(), "job_id": str(handle)}
    raise ActionRefused(f"unknown schedule action {action!r}; use pause, resume or run")


# -- alerts -------------------------------------------------------------------------------------

def alerts(manager: QueueManager, config: AlertConfig | None, source: str | None,
           error: str | None) -> dict[str, Any]:
    """Rules and channels (read from the alerts file at start), alerts firing now, history."""
    service = AlertService(manager.driver, config or AlertConfig([]))
    rules = [_rule(r) for r in (config.rules if config else [])]
    channels = [{"name": n, "type": type(c).__name__} for n, c in
                (config.channels if config else {}).items()]
    history = service.history()
    return {"config": source, "config_error": error, "rules": rules,
            "channels": channels, "kinds": sorted(RULES), "active": service.active(),
            "history": list(reversed(history))[:200],
            "timing": ({"interval": config.interval, "cooldown": config.cooldown,
                        "repeat_after": config.repeat_after} if config else None)}


def _rule(rule: Any) -> dict[str, Any]:
    params = {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)
              if f.name not in ("name", "queue", "severity", "channels")}
    return {"name": rule.name, "kind": rule.kind, "queue": rule.queue,
            "severity": rule.severity, "channels": list(rule.channels), "params": params}


def health_report(manager: QueueManager) -> dict[str, Any]:
    policy = health.HealthPolicy.for_lease(manager.settings.lease_seconds)
    return health.full_check(manager.driver, policy).to_dict()
