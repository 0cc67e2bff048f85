"""Tasks used by the integration and CLI tests. Each run appends a line to a ledger file, so
tests can count executions from outside the store: ``job_id attempt pid``."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from taskqueue import Job, JobTimeout, NonRetryable, current_job, task


def record(ledger: str, tag: str = "") -> None:
    ctx = current_job()
    with open(ledger, "a") as fh:
        fh.write(f"{ctx.job_id} {ctx.attempt} {os.getpid()} {tag}\n")


@task(name="tests.add")
def add(a: int, b: int) -> int:
    return a + b


@task(name="tests.mark")
def mark(ledger: str, sleep: float = 0.0) -> str:
    record(ledger)
    if sleep:
        time.sleep(sleep)
    return current_job().job_id


@task(name="tests.async_mark")
async def async_mark(ledger: str, sleep: float = 0.0) -> str:
    record(ledger, "async")
    await asyncio.sleep(sleep)
    return "async-ok"


@task(name="tests.flaky", max_attempts=3, retry_backoff=0.2, retry_jitter=False)
def flaky(ledger: str, succeed_on: int) -> str:
    record(ledger)
    if current_job().attempt < succeed_on:
        raise ValueError(f"attempt {current_job().attempt} fails on purpose")
    return "finally"


@task(name="tests.always_fails", max_attempts=2, retry_backoff=0.1, retry_jitter=False)
def always_fails(ledger: str) -> None:
    record(ledger)
    raise KeyError("missing-thing")


@task(name="tests.permanent")
def permanent(ledger: str) -> None:
    record(ledger)
    raise NonRetryable("this can never work")


@task(name="tests.slow", timeout=1, max_attempts=1)
def slow(ledger: str) -> None:
    try:
        time.sleep(30)
    except JobTimeout:
        record(ledger, "cleaned-up")
        raise


@task(name="tests.async_slow", timeout=1, max_attempts=1)
async def async_slow(ledger: str) -> None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record(ledger, "cleaned-up")
        raise


@task(name="tests.hang_until_file")
def hang_until_file(ledger: str, flag: str) -> None:
    """Record the start, then wait (up to 60 s) for a flag file: lets tests kill mid-job."""
    record(ledger, "start")
    deadline = time.time() + 60
    while not Path(flag).exists() and time.time() < deadline:
        time.sleep(0.05)
    record(ledger, "end")


@task(name="tests.progress")
def progress(steps: int) -> int:
    for i in range(steps):
        current_job().set_progress(100 * (i + 1) / steps)
    return steps


@task(name="tests.snooze_once")
def snooze_once(ledger: str) -> str:
    record(ledger)
    if not Path(ledger + ".snoozed").exists():
        Path(ledger + ".snoozed").touch()
        current_job().snooze(0.2)
    return "woke"


class SendReport(Job):
    """A class-based job, like the original's TestJob."""

    name = "tests.SendReport"
    queue = "reports"
    max_attempts = 2

    def handle(self) -> dict[str, object]:
        record(self.data["ledger"], "class")
        return {"sent_to": self.data["to"]}


class AsyncReport(Job):
    name = "tests.AsyncReport"

    async def handle(self) -> str:
        record(self.data["ledger"], "async-class")
        await asyncio.sleep(0)
        return "async-class-ok"


@task(name="tests.hang_forever", timeout=1, max_attempts=2)
def hang_forever(ledger: str) -> None:
    """Ignores its soft timeout: only the supervisor's hard timeout can stop it."""
    record(ledger, "start")
    while True:
        try:
            time.sleep(10**6)
        except JobTimeout:
            record(ledger, "ignored-timeout")


_hoard: list[bytes] = []


@task(name="tests.leak")
def leak(ledger: str, megabytes: int) -> None:
    """Keeps memory on purpose, to trigger memory recycling."""
    record(ledger)
    _hoard.append(b"x" * (megabytes * 1024 * 1024))


@task(name="tests.double")
def double(previous: int) -> int:
    return previous * 2


@task(name="tests.collect")
def collect(results: list[int]) -> int:
    return sum(results)


@task(name="tests.boom", max_attempts=1)
def boom() -> None:
    raise RuntimeError("boom")


@task(name="tests.note")
def note(ledger: str, label: str, batch: dict[str, object] | None = None) -> str:
    with open(ledger, "a") as fh:
        fh.write(f"{label} {batch['completed'] if batch else '-'}\n")
    return label


@task(name="tests.cooperative")
def cooperative(ledger: str) -> None:
    record(ledger, "start")
    for _ in range(600):
        current_job().check_cancelled()
        time.sleep(0.05)


@task(name="tests.stubborn")
def stubborn(ledger: str) -> None:
    """Ignores the cancellation flag; only the worker's interrupt stops it."""
    record(ledger, "start")
    try:
        for _ in range(600):
            time.sleep(0.1)
    finally:
        record(ledger, "stopped")


@task(name="tests.echo")
def echo(value: object) -> object:
    return value


@task(name="tests.where")
def where(ledger: str, sleep: float = 0.0) -> str:
    """Records which node (TASKQUEUE_NODE env of the worker) ran it."""
    record(ledger, os.environ.get("TEST_NODE", "?"))
    if sleep:
        time.sleep(sleep)
    return os.environ.get("TEST_NODE", "?")


@task(name="tests.span")
def span(ledger: str, tenant: str, sleep: float) -> None:
    """Records start and end times (for measuring overlap across nodes)."""
    started = time.time()
    time.sleep(sleep)
    with open(ledger, "a") as fh:
        fh.write(f"{current_job().job_id} {tenant} {started:.6f} {time.time():.6f} "
                 f"{os.environ.get('TEST_NODE', '?')}\n")


@task(name="tests.orphan")
def orphan(ledger: str) -> None:
    """Leaves a process behind: a shell starts it in the background and exits, so the kernel
    gives it to the nearest reaper (PID 1). The ledger gets its pid."""
    import subprocess

    started = subprocess.run(["sh", "-c", "sleep 0.3 & echo $!"], check=True,
                             capture_output=True, text=True)
    with Path(ledger).open("a") as f:
        f.write(f"orphan {started.stdout.strip()}\n")
