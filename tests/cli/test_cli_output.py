"""What the read commands print for people: truncation said out loud, errors shown, refusals
explained, durations and loads readable (issue 19, item 14)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from taskqueue import QueueManager
from taskqueue.cli import cli
from taskqueue.cli.output import duration
from taskqueue.jobs.builtin import TestJob


def invoke(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--url", url, *args], catch_exceptions=False)


def push(url: str, count: int) -> list[str]:
    manager = QueueManager.from_url(url)
    try:
        return manager.push_many([TestJob({"n": i}) for i in range(count)])
    finally:
        manager.close()


def test_jobs_list_says_when_it_shows_only_part(sqlite_url: str) -> None:
    push(sqlite_url, 7)
    out = invoke(sqlite_url, "jobs", "list", "--limit", "5").output
    assert "5 of 7 jobs shown" in out and "--limit" in out
    out = invoke(sqlite_url, "jobs", "list", "--limit", "7").output
    assert "7 jobs" in out and " of " not in out.splitlines()[0]


def test_failed_shows_each_jobs_error(sqlite_url: str) -> None:
    (job_id,) = push(sqlite_url, 1)
    manager = QueueManager.from_url(sqlite_url)
    try:
        (record,) = manager.driver.reserve("w1", ["default"], 1, 30.0)
        manager.driver.fail(record.token, "Traceback (most recent call last):\n  ...\n"
                            "ValueError: negative", retry_in=None)
    finally:
        manager.close()
    out = invoke(sqlite_url, "failed").output
    header = next(line for line in out.splitlines() if "state" in line)
    assert "error" in header
    assert "ValueError:" in out and "negative" in out  # the cell may wrap


def test_retry_and_cancel_say_why_a_job_was_not_changed(sqlite_url: str) -> None:
    (job_id,) = push(sqlite_url, 1)
    result = invoke(sqlite_url, "retry", "no-such-id")
    assert result.exit_code == 1
    assert "no-such-id: no such job" in result.output and "retried 0 of 1" in result.output
    result = invoke(sqlite_url, "retry", job_id)
    assert f"{job_id}: not retried: it is pending; only failed, cancelled" in result.output
    assert invoke(sqlite_url, "cancel", job_id).exit_code == 0
    result = invoke(sqlite_url, "cancel", job_id)
    assert result.exit_code == 1
    assert f"{job_id}: not cancelled: it is cancelled; only pending, retrying, processing" \
        in result.output


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.0042, "4.20ms"), (0.85, "850ms"), (4.25, "4.2s"), (725, "12m 05s"), (72700, "20h 11m"),
    (3 * 86400 + 4 * 3600 + 5, "3d 4h"), (None, "-"),
])
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown
