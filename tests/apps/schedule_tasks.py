"""Tasks for the scheduler and limit tests. Runs append ``job_id start end`` (wall-clock
seconds) to a ledger file, so tests can measure rates and overlaps from outside the store.

``python -m tests.apps.schedule_tasks --url URL schedule:run ...`` runs the schedule commands
in a subprocess (a scheduler process for the failover test) without the main CLI.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import click

from taskqueue import current_job, task
from taskqueue.cli.schedule import COMMANDS
from taskqueue.scheduling import condition


def _record(ledger: str, started: float, tag: str = "") -> None:
    with open(ledger, "a") as fh:
        fh.write(f"{current_job().job_id} {started:.6f} {time.time():.6f} {tag}\n")


@task(name="sched.tick", queue="sched")
def tick() -> None:
    """Enqueued by the failover test's schedule; never needs to run."""


@task(name="limits.rated", rate="20/s")
def rated(ledger: str) -> None:
    _record(ledger, time.time())


@task(name="limits.concurrent", concurrency=2)
def concurrent(ledger: str, sleep: float) -> None:
    started = time.time()
    time.sleep(sleep)
    _record(ledger, started)


@task(name="limits.per_customer", rate="1/h", rate_key="customer_id")  # (1/m: a slot edge
# between the two A jobs, one run in 60 s, let the second one through)
def per_customer(ledger: str, customer_id: str) -> None:
    _record(ledger, time.time(), customer_id)


def _bump(counter: str, step: int) -> None:
    """Add ``step`` to the running count in ``counter`` ("running peak" under an exclusive
    lock, so every process and thread on this machine shares one exact count)."""
    with open(counter, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        running, peak = (int(n) for n in (fh.read().split() or ["0", "0"]))
        running += step
        fh.seek(0)
        fh.truncate()
        fh.write(f"{running} {max(peak, running)}")


@task(name="limits.counted")
def counted(counter: str, sleep: float) -> None:
    """Counts itself as running for ``sleep`` seconds (for the queue-limit maximum test)."""
    _bump(counter, 1)
    try:
        time.sleep(sleep)
    finally:
        _bump(counter, -1)


@task(name="limits.plain")
def plain(ledger: str, sleep: float = 0.0) -> None:
    started = time.time()
    time.sleep(sleep)
    _record(ledger, started)


@condition("tq_test_flag")
def flag_present() -> bool:
    """True once the file named by $TQ_TEST_FLAG exists."""
    return Path(os.environ.get("TQ_TEST_FLAG", "/nonexistent")).exists()


@task(name="limits.conditional", conditions=["tq_test_flag"])
def conditional(ledger: str) -> None:
    _record(ledger, time.time())


@click.group()
@click.option("--url", required=True)
@click.pass_context
def cli(ctx: click.Context, url: str) -> None:
    ctx.obj = {"url": url}


for command in COMMANDS:
    cli.add_command(command)


if __name__ == "__main__":
    cli()
