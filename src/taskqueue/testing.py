"""Helpers for your own test suites: an isolated store, running jobs on demand or inline, and
assertions about what was enqueued. Everything runs on a real store (an SQLite file of its
own per test) and through the real worker code, so a test exercises what production runs.

```python
from taskqueue.testing import drain, inline, isolated_manager, recorder

with isolated_manager(tmp_path / "queue.db") as manager:     # also made the default manager
    with recorder(manager) as enqueued:
        signup("ada@example.com")                              # calls send_welcome.delay(...)
    enqueued.assert_enqueued(send_welcome, args=["ada@example.com"], queue="emails")
    drain(manager)                                             # run every ready job now

    with inline(manager):                                      # jobs run as they are pushed
        signup("bob@example.com")                              # a job's exception surfaces here
```

With pytest, the plugin (``taskqueue.pytest_plugin``, loaded automatically) gives the same as
fixtures: ``taskqueue_manager``, ``taskqueue_drain``, ``taskqueue_enqueued``, ``taskqueue_inline``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskqueue import manager as _managers
from taskqueue.drivers import JobFilter
from taskqueue.jobs.definition import Job, Task
from taskqueue.jobs.model import JobRecord, NewJob
from taskqueue.jobs.states import State
from taskqueue.manager import JobHandle, QueueManager, set_default_manager
from taskqueue.middleware import Kind, Middleware, Outcome
from taskqueue.observability.events import JOB_ENQUEUED, Event
from taskqueue.worker.runner import Worker, WorkerOptions, WorkerSummary

__all__ = ["EnqueueRecorder", "EnqueuedJob", "drain", "inline", "isolated_manager",
           "recorder", "use_default"]

#: What identifies a job kind in assertions: a task, a Job subclass, or a registered name.
Target = Task[Any, Any] | type[Job] | str
_BODY_KEYS = ("args", "kwargs", "data")
_MANY = 1_000_000


# -- an isolated store ------------------------------------------------------------------------

@contextlib.contextmanager
def use_default(manager: QueueManager) -> Iterator[QueueManager]:
    """Make ``manager`` the one ``task.delay()`` uses, and put the previous one back after."""
    previous = _managers._default
    set_default_manager(manager)
    try:
        yield manager
    finally:
        set_default_manager(previous)


@contextlib.contextmanager
def isolated_manager(path: str | Path, **settings: Any) -> Iterator[QueueManager]:
    """A manager on a fresh SQLite file at ``path`` (``settings``: other ``Settings`` fields),
    made the default manager while the block runs, and closed after it."""
    manager = QueueManager.from_url(f"sqlite:///{Path(path)}", **settings)
    try:
        with use_default(manager):
            yield manager
    finally:
        manager.close()


# -- running jobs -----------------------------------------------------------------------------

class _Errors(Middleware):
    """Keeps the exceptions jobs raised, to re-raise them in the test."""

    def __init__(self) -> None:
        self.raised: list[BaseException] = []

    def after_run(self, job: JobRecord, ctx: Any, outcome: Outcome) -> None:
        if outcome.kind is Kind.ERROR and outcome.error is not None:
            self.raised.append(outcome.error)


def drain(
    manager: QueueManager | None = None,
    *,
    queues: Sequence[str] | None = None,
    timeout: float = 30.0,
    include_delayed: bool = False,
    wait_retries: bool = True,
    raise_errors: bool = False,
) -> WorkerSummary:
    """Run every ready job of ``queues`` (default: all) in this process until none is left,
    then return the worker's summary (``processed``, ``completed``, ``failed``, ...).

    Jobs they enqueue run too. Retries are waited for (their backoff, in the store's clock)
    unless ``wait_retries`` is false; jobs running in other workers are waited for as well.
    Jobs scheduled for later stay pending unless ``include_delayed``: then those already
    waiting when the drain starts are made due now. ``raise_errors``: re-raise the first
    exception a job raises, at once. A drain still busy after ``timeout`` s raises
    ``TimeoutError``.
    """
    manager = manager or _managers.default_manager()
    if _in_event_loop():  # async jobs need an event loop of their own: run beside this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(drain, manager, queues=queues, timeout=timeout,
                               include_delayed=include_delayed, wait_retries=wait_retries,
                               raise_errors=raise_errors).result()
    if include_delayed:
        make_due(manager, [r.id for r in _jobs(manager, queues, (State.PENDING,))])
    total = WorkerSummary("drain")
    started = time.monotonic()
    errors = _Errors()
    worker: Worker | None = None
    try:
        while True:
            names = sorted(queues or manager.driver.stats()) or ["default"]
            if worker is None or list(worker.options.queues) != names:  # a new queue appeared
                _finish(worker, total)
                worker = _start(manager, names, errors)
            taken = worker.run_once()
            if raise_errors and errors.raised:
                raise errors.raised[0]
            if not taken and not _wait(manager, names, started + timeout, wait_retries):
                break
    finally:
        _finish(worker, total)
        total.elapsed = time.monotonic() - started
    return total


def _start(manager: QueueManager, queues: list[str], errors: _Errors) -> Worker:
    return Worker(manager, WorkerOptions(queues=queues, prefetch=1, maintenance_interval=0.5,
                                         middleware=[errors]))  # sets its middleware up


def _finish(worker: Worker | None, total: WorkerSummary) -> None:
    if worker is None:
        return
    for mw in worker.middleware:
        mw.teardown()
    worker.executor.close()
    for name in ("processed", "completed", "retried", "failed", "snoozed", "postponed",
                 "cancelled", "lost"):
        setattr(total, name, getattr(total, name) + getattr(worker.summary, name))


def _wait(manager: QueueManager, queues: list[str], deadline: float,
          wait_retries: bool) -> bool:
    """Nothing was ready: wait for retries and jobs running elsewhere; False when done."""
    waiting = _jobs(manager, queues, (State.RETRYING, State.PROCESSING))
    if not waiting or not wait_retries:
        return False
    if time.monotonic() >= deadline:
        raise TimeoutError(f"drain: {len(waiting)} jobs still retrying or running "
                           f"(first: {waiting[0].id} {waiting[0].state})")
    pause = (min(r.available_at for r in waiting) - manager.driver.now()).total_seconds()
    time.sleep(min(max(pause, 0.01), 0.25))
    return True


def _jobs(manager: QueueManager, queues: Sequence[str] | None,
          states: tuple[State, ...]) -> list[JobRecord]:
    return manager.search(JobFilter(queues=tuple(queues or ()), states=states, limit=_MANY))


def make_due(manager: QueueManager, job_ids: Sequence[str]) -> int:
    """Make pending jobs that are scheduled for later due now; return how many moved."""
    now = manager.driver.now()
    moved = 0
    for job_id in job_ids:
        record = manager.get(job_id)
        if record is not None and record.state == State.PENDING and record.available_at > now:
            moved += manager.driver.replace_payload(job_id, record.payload, 0.0)
    return moved


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def inline(
    manager: QueueManager | None = None,
    *,
    raise_errors: bool = True,
    include_delayed: bool = True,
    timeout: float = 30.0,
) -> Iterator[QueueManager]:
    """Run jobs as soon as they are pushed, in the pushing thread, until the block ends.

    Each push (``.delay()``, ``.push()``, ``manager.push()``, batches, chains) stores the jobs
    as usual, then :func:`drain`\\ s the store before returning, so the caller sees their
    effects at once. ``raise_errors``: a job's exception propagates out of the push (the job
    is recorded as a worker would record it); otherwise retries run, waiting out their
    backoff. ``include_delayed``: jobs pushed with a delay or eta run at once too. Jobs pushed
    on your own transaction (``connection=``) run at the next push or drain.
    """
    manager = manager or _managers.default_manager()
    original = manager.push_prepared
    busy = threading.local()

    def push_and_run(new_jobs: list[NewJob], *, connection: Any = None) -> list[JobHandle]:
        handles = original(new_jobs, connection=connection)
        if connection is not None or getattr(busy, "draining", False):
            return handles  # a job pushing more: the running drain takes them
        busy.draining = True
        try:
            if include_delayed:
                make_due(manager, handles)
            drain(manager, timeout=timeout, raise_errors=raise_errors,
                  wait_retries=not raise_errors)
        finally:
            busy.draining = False
        return handles

    setattr(manager, "push_prepared", push_and_run)  # noqa: B010 - an instance override
    try:
        yield manager
    finally:
        delattr(manager, "push_prepared")


# -- what was enqueued ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """One enqueued job as a test sees it: decoded arguments and the options that matter."""

    id: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: The data of a class-based job (``Job(data)``); None for tasks.
    data: Any
    queue: str
    priority: int
    #: Seconds between enqueue and due time (``delay=`` or ``eta=``).
    delay: float
    tags: tuple[str, ...] = ()
    max_attempts: int = 3
    idempotency_key: str | None = None
    depends_on: tuple[str, ...] = ()
    batch_id: str | None = None

    @classmethod
    def from_record(cls, record: JobRecord, body: dict[str, Any]) -> EnqueuedJob:
        return cls(id=record.id, name=record.name, args=tuple(body.get("args", ())),
                   kwargs=dict(body.get("kwargs", {})), data=body.get("data"),
                   queue=record.queue_name, priority=record.priority,
                   delay=record.delay_seconds, tags=record.tags,
                   max_attempts=record.max_attempts, idempotency_key=record.idempotency_key,
                   depends_on=record.dependencies, batch_id=record.batch_id)

    def describe(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        if self.data is not None:
            shown.append(f"data={self.data!r}")
        extra = f", delay={self.delay:g}s" if self.delay else ""
        return f"{self.name}({', '.join(shown)}) on {self.queue!r}, priority {self.priority}" \
               f"{extra}"


def job_name(target: Target) -> str:
    """The registered name of a task, a Job subclass, or a name."""
    if isinstance(target, str):
        return target
    if isinstance(target, Task):
        return target.name
    return target.job_name()


@dataclass
class EnqueueRecorder:
    """The jobs enqueued on a manager while recording, oldest first (duplicates that an
    idempotency key turned away are not counted; jobs pushed in a transaction that was rolled
    back disappear)."""

    manager: QueueManager
    _ids: list[str] = field(default_factory=list)
    _seen: dict[str, EnqueuedJob] = field(default_factory=dict)

    def _on_enqueued(self, event: Event) -> None:
        if event.job_id is None:
            return
        self._ids.append(event.job_id)
        self._snapshot(event.job_id)  # now, before a drain or inline run changes the record

    def _snapshot(self, job_id: str) -> EnqueuedJob | None:
        if job_id not in self._seen:
            record = self.manager.get(job_id)
            if record is None:  # pushed in a transaction that has not committed (yet)
                return None
            body = self.manager.decode(record)
            self._seen[job_id] = EnqueuedJob.from_record(
                record, {k: body[k] for k in _BODY_KEYS if k in body})
        return self._seen[job_id]

    @property
    def jobs(self) -> list[EnqueuedJob]:
        return [job for job_id in self._ids if (job := self._snapshot(job_id)) is not None]

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[EnqueuedJob]:
        return iter(self.jobs)

    def names(self) -> list[str]:
        return [job.name for job in self.jobs]

    def clear(self) -> None:
        self._ids.clear()
        self._seen.clear()

    def find(self, target: Target | None = None, **expected: Any) -> list[EnqueuedJob]:
        """The recorded jobs of ``target`` (any when None) whose fields match ``expected``
        (``args``, ``kwargs``, ``data``, ``queue``, ``priority``, ``delay`` in seconds or a
        timedelta, within a second, ``tags``, ``max_attempts``, ``idempotency_key``, ...)."""
        name = None if target is None else job_name(target)
        return [job for job in self.jobs
                if (name is None or job.name == name) and _matches(job, expected)]

    def assert_enqueued(self, target: Target | None = None, *, count: int | None = None,
                        **expected: Any) -> EnqueuedJob:
        """Fail unless a job of ``target`` matching ``expected`` was enqueued (exactly
        ``count`` of them when given); return the first one."""
        found = self.find(target, **expected)
        if not found or (count is not None and len(found) != count):
            wanted = "a job" if count is None else f"{count} job(s)"
            raise AssertionError(
                f"expected {wanted} {_wanted(target, expected)}, found {len(found)}; "
                f"enqueued: {self._listing()}")
        return found[0]

    def assert_not_enqueued(self, target: Target | None = None, **expected: Any) -> None:
        """Fail if a job of ``target`` (any job when None) matching ``expected`` was enqueued."""
        found = self.find(target, **expected)
        if found:
            raise AssertionError(f"expected no job {_wanted(target, expected)}; enqueued: "
                                 f"{self._listing()}")

    def _listing(self) -> str:
        jobs = self.jobs
        return "\n  " + "\n  ".join(j.describe() for j in jobs) if jobs else "nothing"


def _wanted(target: Target | None, expected: dict[str, Any]) -> str:
    what = f"of {job_name(target)!r}" if target is not None else ""
    extra = ", ".join(f"{k}={v!r}" for k, v in expected.items())
    return f"{what} with {extra}".strip() if extra else what


def _matches(job: EnqueuedJob, expected: dict[str, Any]) -> bool:
    for key, want in expected.items():
        if not hasattr(job, key):
            raise TypeError(f"EnqueuedJob has no field {key!r}")
        have = getattr(job, key)
        if key == "delay":
            seconds = want.total_seconds() if isinstance(want, timedelta) else float(want)
            if not math.isclose(have, seconds, abs_tol=1.0):
                return False
        elif isinstance(have, tuple):
            if list(have) != list(want):
                return False
        elif have != want:
            return False
    return True


@contextlib.contextmanager
def recorder(manager: QueueManager | None = None) -> Iterator[EnqueueRecorder]:
    """Record the jobs enqueued on ``manager`` (default: the default manager) in the block;
    the recorder stays readable afterwards."""
    manager = manager or _managers.default_manager()
    recording = EnqueueRecorder(manager)
    stop: Callable[[], None] = manager.events.subscribe(recording._on_enqueued, JOB_ENQUEUED)
    try:
        yield recording
    finally:
        stop()
