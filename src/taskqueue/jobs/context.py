"""What a running job can see and do: its attempt, progress, cancellation and snooze."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from taskqueue.errors import JobCancelled, TaskQueueError


class Snooze(Exception):  # noqa: N818 - control flow, raised by ctx.snooze()
    """Raised by :meth:`JobContext.snooze`; the worker hands the job back without an attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"snoozed for {seconds}s")
        self.seconds = seconds


@dataclass
class JobContext:
    """Handed to running jobs (``current_job()`` inside a task, ``self.context`` in a Job)."""

    job_id: str
    name: str
    queue: str
    attempt: int
    max_attempts: int
    timeout: float
    idempotency_key: str | None = None
    batch_id: str | None = None
    worker_id: str | None = None
    _progress: Callable[[float], object] | None = None
    #: Set by the executor while the job runs: raises an exception inside the job.
    _interrupt: Callable[[BaseException], object] | None = None
    #: Created on first use: most jobs never look, and an Event costs a lock and a condition.
    _cancelled: threading.Event | None = field(default=None, repr=False)

    @property
    def cancelled(self) -> threading.Event:
        """Set when somebody cancels the job while it runs (``ctx.cancelled.wait(5)`` is an
        interruptible sleep)."""
        event = self._cancelled
        if event is None:
            with _EVENT_LOCK:
                if self._cancelled is None:
                    self._cancelled = threading.Event()
                event = self._cancelled
        return event

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if somebody cancelled this job; call it between steps of work."""
        if self.is_cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def set_progress(self, percent: float) -> None:
        """Record progress (0..100); visible in ``taskqueue jobs show`` and the dashboard."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be within 0..100, got {percent}")
        if self._progress is not None:
            self._progress(float(percent))

    def snooze(self, seconds: float) -> None:
        """Stop now and run again in ``seconds``, without using an attempt."""
        if seconds < 0:
            raise ValueError("snooze seconds must be >= 0")
        raise Snooze(seconds)


_EVENT_LOCK = threading.Lock()
_current: ContextVar[JobContext | None] = ContextVar("taskqueue_current_job", default=None)


def current_job() -> JobContext:
    """The context of the job running in this thread or task."""
    ctx = _current.get()
    if ctx is None:
        raise TaskQueueError("current_job() called outside a running job")
    return ctx


def bind_context(ctx: JobContext | None) -> object:
    """Make ``ctx`` current; returns a token for :func:`unbind_context`."""
    return _current.set(ctx)


def unbind_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
