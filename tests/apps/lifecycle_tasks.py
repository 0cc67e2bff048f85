"""Tasks of the reservation and lifecycle tests (tests/integration/test_reservation.py)."""

from __future__ import annotations

import os
import time

from taskqueue import current_job, task
from tests.apps.sample_tasks import record


@task(name="lifecycle.rated", rate="4/s")
def rated(ledger: str) -> None:
    """At most 4 starts a second: a backlog is postponed, not failed."""
    record(ledger)


@task(name="lifecycle.hourly", rate="1/h")
def hourly(ledger: str) -> None:
    """One start an hour: the rest of a backlog is postponed far ahead."""
    record(ledger)


@task(name="lifecycle.returns_when_cancelled")
def returns_when_cancelled(ledger: str) -> None:
    """Runs (up to 60 s) until it sees ``is_cancelled``, then returns normally."""
    record(ledger, "start")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not current_job().is_cancelled:
        time.sleep(0.02)


@task(name="lifecycle.until_cancelled")
def until_cancelled(ledger: str) -> None:
    """Runs (up to 60 s) until it sees its cancellation, checking every 20 ms."""
    record(ledger, "start")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current_job().check_cancelled()
        time.sleep(0.02)


@task(name="lifecycle.until_file")
def until_file(ledger: str, path: str) -> None:
    """Runs until ``path`` exists (checking every millisecond, up to 10 s): a test does its
    step while this job runs, and the job ends as soon as the step is done."""
    record(ledger, "start")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(path):
        time.sleep(0.001)
