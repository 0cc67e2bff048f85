"""Recurring jobs: ``every=timedelta(minutes=5)`` re-enqueues the job after each run.

The next occurrence keeps the cadence (due one interval after the previous one was due, or at
once if that has passed) and is pushed with an idempotency key naming the series and the
occurrence number, so it is enqueued exactly once even if two workers race. Every occurrence is
tagged ``series:<first job id>``; ``manager.cancel_series(id)`` stops the series (a
"stopped" entry in the store, checked before each push, closes the race with a run finishing
at that moment). The cron
scheduler builds on the same push-with-a-key mechanism.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskqueue.jobs.definition import Call

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.workflows.protocol import WorkflowClient


STOPPED = "series_stopped"
FOREVER = 100 * 365 * 24 * 3600.0


def stop_series(manager: WorkflowClient, series_id: str) -> None:
    """Record that a series is stopped: no occurrence after the current one is pushed."""
    manager.driver.registry_put(STOPPED, series_id, {"id": series_id}, FOREVER)


def is_stopped(manager: WorkflowClient, series_id: str) -> bool:
    return any(e.get("id") == series_id for e in manager.driver.registry_list(STOPPED))


def schedule_next(manager: WorkflowClient, job: JobRecord, body: dict[str, Any],
                  every: float) -> str | None:
    """Push the occurrence after ``job``; return its id (None if the series was stopped)."""
    from taskqueue.jobs.body import RUN_OPTIONS, TIMEOUT_SET, WORKFLOW

    wf = dict(body.get(WORKFLOW) or {})
    series, n = wf.get("series", job.id), int(wf.get("n", 0)) + 1
    if is_stopped(manager, series):
        return None
    elapsed = (manager.driver.now() - job.available_at).total_seconds()
    plain = {k: v for k, v in body.items() if k not in (WORKFLOW, RUN_OPTIONS, TIMEOUT_SET)}
    options: dict[str, Any] = {
        **(body.get(RUN_OPTIONS) or {}),
        "queue": job.queue_name, "priority": job.priority, "max_attempts": job.max_attempts,
        "tags": [t for t in job.tags if not t.startswith("series:")] + [f"series:{series}"],
        "delay": max(0.0, every - elapsed),
        "idempotency_key": f"every:{series}:{n}",
    }
    if body.get(TIMEOUT_SET):
        options["timeout"] = job.timeout_seconds
    new = manager.prepare(Call(job.name, plain, options),
                          workflow={**wf, "series": series, "n": n})
    return str(manager.push_prepared([new])[0])
