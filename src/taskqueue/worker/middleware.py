"""Middleware: cross-cutting behaviour around a job's execution, outside the worker loop.

A middleware may hold a job back before it runs (return a :class:`Postpone`: the job goes back
to ``pending`` without using an attempt, with the reason recorded on it), and observe the end of
every run. Rate limits, concurrency limits, conditions and tracing are middleware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord
    from taskqueue.manager import QueueManager
    from taskqueue.worker.executor import Outcome


@dataclass(frozen=True, slots=True)
class Postpone:
    """Hand the job back to run again in ``seconds``, recording ``reason`` on it."""

    seconds: float
    reason: str


class Middleware:
    """Base class; override what you need. Hooks run on the worker thread running the job."""

    def setup(self, manager: QueueManager, worker_id: str) -> None:
        """Called once when the worker is created (before any job, even via ``run_once``)."""

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        """Return a Postpone to hold the job back; ``options`` are the task's options."""
        return None

    def after_run(self, job: JobRecord, ctx: JobContext, outcome: Outcome) -> None:
        """Called after every run that ``before_run`` let through (also on errors)."""

    def teardown(self) -> None:
        """Called once when the worker stops."""


_DEFAULT_FACTORIES: list[type[Middleware]] = []


def register_default(cls: type[Middleware]) -> type[Middleware]:
    """Class decorator: every worker installs one instance of this middleware."""
    if cls not in _DEFAULT_FACTORIES:
        _DEFAULT_FACTORIES.append(cls)
    return cls


def default_middleware() -> list[Middleware]:
    return [cls() for cls in _DEFAULT_FACTORIES]
