"""Tasks for the recovery and liveness tests. Each run appends ``job_id attempt pid`` to a
ledger file outside the store, so a test sees from outside which process runs what."""

from __future__ import annotations

import ctypes
import os
import time

from taskqueue import current_job, task


def _record(ledger: str) -> int:
    ctx = current_job()
    fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return ctx.attempt


@task(name="recovery.linger", max_attempts=3)
def linger(ledger: str) -> None:
    """The first attempt runs for ten minutes (a test kills it); later ones return at once."""
    if _record(ledger) == 1:
        time.sleep(600)


@task(name="recovery.die", max_attempts=2)
def die(ledger: str, how: str) -> None:
    """The process vanishes mid-job: ``exit`` calls ``os._exit(3)``; ``segfault`` dereferences
    a null pointer (SIGSEGV)."""
    _record(ledger)
    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)


@task(name="recovery.quick")
def quick(ledger: str, sleep: float = 0.0) -> None:
    _record(ledger)
    time.sleep(sleep)
