"""The middleware seam: what wraps a job's run, between the worker and the parts plugged into it.

A middleware may hold a job back before it runs (return a :class:`Postpone`: the job goes back
to ``pending`` without using an attempt, with the reason recorded on it), and observe the end of
every run (its :class:`Outcome`). Rate limits, concurrency limits, conditions and tracing are
middleware. The seam sits below every runtime part, so the worker (which runs middleware) and
scheduling and observability (which implement it) meet here without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taskqueue.config import Settings
    from taskqueue.drivers.base import Driver
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord


class Kind(Enum):
    """How a run ended."""

    OK = "ok"
    ERROR = "error"
    SNOOZE = "snooze"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Outcome:
    """What a run produced: its kind, how long it took, its result or error."""

    kind: Kind
    duration: float
    result: Any = None
    error: BaseException | None = None
    traceback: str | None = None
    snooze: float = 0.0


class WorkerHost(Protocol):
    """What a middleware may use of the client its worker hands to ``setup``."""

    driver: Driver
    settings: Settings

    def decode(self, record: JobRecord) -> Any: ...


@dataclass(frozen=True, slots=True)
class Postpone:
    """Hand the job back to run again in ``seconds``, recording ``reason`` on it."""

    seconds: float
    reason: str


class Middleware:
    """Base class; override what you need. Hooks run on the worker thread running the job."""

    def setup(self, manager: Any, worker_id: str) -> None:
        """Called once when the worker is created (before any job, even via ``run_once``).
        ``manager`` is the worker's client (a :class:`~taskqueue.client.Client`; the
        ``QueueManager`` itself under ``start_worker``); see :class:`WorkerHost`."""

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        """Return a Postpone to hold the job back; ``options`` are the task's options."""
        return None

    def after_run(self, job: JobRecord, ctx: JobContext, outcome: Outcome) -> None:
        """Called after every run that ``before_run`` let through (also on errors)."""

    def teardown(self) -> None:
        """Called once when the worker stops."""

    def warm_up(self) -> None:
        """Optional: read ahead what the first job would read (a worker waiting to start, a
        standby, calls it while it waits). Store errors are the caller's to ignore."""


_DEFAULT_FACTORIES: list[type[Middleware]] = []


def register_default(cls: type[Middleware]) -> type[Middleware]:
    """Class decorator: every worker installs one instance of this middleware."""
    if cls not in _DEFAULT_FACTORIES:
        _DEFAULT_FACTORIES.append(cls)
    return cls


def default_middleware() -> list[Middleware]:
    return [cls() for cls in _DEFAULT_FACTORIES]
