"""Tasks for the chaos and soak tests: every execution writes to an effect ledger kept OUTSIDE
the store under test, so a checker can count what really ran.

Ledger lines (one ``os.write`` of an O_APPEND descriptor each, so concurrent writers never
interleave a line)::

    S job_id attempt epoch pid worker_id wall_time      execution started
    E job_id attempt epoch pid worker_id wall_time      execution ended (the task returned)
    F job_id attempt epoch pid worker_id wall_time      the task is about to raise
    A job_id attempt epoch pid worker_id wall_time      the store ACCEPTED this completion
    R job_id attempt epoch pid worker_id wall_time      the store REJECTED a settle call

``S``/``E`` are written by the task itself. ``A``/``R`` come from the worker's lifecycle events
(``job.completed`` is emitted only when ``complete`` was accepted, ``job.lease_lost`` when a settle
call was refused); a registered middleware subscribes to them when the worker process has
``TQ_CHAOS_ACKS`` set to a ledger path. The lease epoch is not on the JobContext, so the
middleware notes it from the reserved record before the job runs.

Poison tasks (``os._exit``, a segfault, a hang, runaway memory) live here too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from typing import Any

from taskqueue import current_job, task
from taskqueue.worker.middleware import Middleware, register_default

ACKS_ENV = "TQ_CHAOS_ACKS"
_EPOCHS: dict[str, int] = {}
_wall = time.time  # captured before any test could shift the clock


def _append(path: str, kind: str, job_id: str, attempt: object, epoch: object,
            worker: object) -> None:
    line = f"{kind} {job_id} {attempt} {epoch} {os.getpid()} {worker or '-'} {_wall():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _effect(ledger: str, kind: str) -> None:
    ctx = current_job()
    _append(ledger, kind, ctx.job_id, ctx.attempt, _EPOCHS.get(ctx.job_id, "?"), ctx.worker_id)


@task(name="chaos.work", max_attempts=20)
def work(ledger: str, sleep: float = 0.0) -> str:
    """The chaos workload: record the start, optionally sleep, record the end."""
    _effect(ledger, "S")
    if sleep:
        time.sleep(sleep)
    _effect(ledger, "E")
    ctx = current_job()
    return f"{os.getpid()}:{ctx.attempt}"


@task(name="chaos.flaky", max_attempts=3, retry_backoff=1.5, retry_jitter=False)
def flaky(ledger: str) -> str:
    """Fails its first attempt (an ``F`` line just before raising), then succeeds."""
    _effect(ledger, "S")
    if current_job().attempt == 1:
        _effect(ledger, "F")
        raise RuntimeError("first attempt fails on purpose")
    _effect(ledger, "E")
    return "second time lucky"


@task(name="chaos.exit", max_attempts=2, retry_backoff=0.1)
def hard_exit(ledger: str) -> None:
    """Poison: the process vanishes mid-job without unwinding."""
    _effect(ledger, "S")
    os._exit(1)


@task(name="chaos.segfault", max_attempts=2, retry_backoff=0.1)
def segfault(ledger: str) -> None:
    """Poison: SIGSEGV inside the interpreter."""
    _effect(ledger, "S")
    ctypes.string_at(0)


@task(name="chaos.hang", max_attempts=2, timeout=1, retry_backoff=0.1)
def hang(ledger: str) -> None:
    """Poison: ignores its soft timeout; only the supervisor's hard timeout stops it."""
    _effect(ledger, "S")
    while True:
        with contextlib.suppress(BaseException):  # swallows the soft timeout on purpose
            time.sleep(3600)


@task(name="chaos.balloon", max_attempts=2, retry_backoff=0.1)
def balloon(ledger: str, megabytes: int = 4096) -> None:
    """Poison: allocates until the worker's address-space limit (set by the test) stops it."""
    _effect(ledger, "S")
    hoard = []
    for _ in range(megabytes):
        hoard.append(bytearray(1024 * 1024))
    _effect(ledger, "E")


@register_default
class AckLedger(Middleware):
    """Records accepted completions and rejected settle calls (see the module docstring)."""

    path: str | None = None

    def setup(self, manager: Any, worker_id: str) -> None:
        path = os.environ.get(ACKS_ENV)
        if not path or getattr(manager, "_chaos_acks", False):
            return
        manager._chaos_acks = True

        def on_event(event: Any) -> None:
            kind = {"job.completed": "A", "job.lease_lost": "R"}.get(event.kind)
            if kind and event.job_id:
                _append(path, kind, event.job_id, event.attempt,
                        _EPOCHS.get(event.job_id, "?"), event.worker_id)

        manager.events.subscribe(on_event)

    def before_run(self, job: Any, ctx: Any, runnable: Any, options: Any) -> None:
        _EPOCHS[job.id] = job.lease_epoch
        if len(_EPOCHS) > 10_000:
            _EPOCHS.clear()
            _EPOCHS[job.id] = job.lease_epoch
        return None
