"""``schedule:*`` refuse what can never run, in one line with exit 2, and list whatever is stored.

Issue 19 items 4 and 7: ``0 0 31 2 *`` used to print a croniter traceback, be stored anyway and
then break ``schedule:list``; ``*/61 * * * *`` silently meant "hourly at :00"; a misspelt task
name was stored and failed at every run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskqueue import QueueManager
from taskqueue.scheduling.schedules import DEFINITIONS, DURABLE_TTL

ROOT = Path(__file__).resolve().parents[2]


def taskqueue(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskqueue", "--url", url, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("cron", "reason"), [
    ("0 0 31 2 *", "never fires: no date matches its day-of-month and month fields"),
    ("0 12 30 2 *", "never fires"),
    ("*/61 * * * *", "step /61 in the minute field is out of range (1-59)"),
    ("0 */24 * * *", "step /24 in the hour field is out of range (1-23)"),
    ("*/90 * * * * *", "step /90 in the second field is out of range (1-59)"),
])
def test_impossible_crons_are_refused_in_one_line(sqlite_url: str, cron: str,
                                                  reason: str) -> None:
    for args in (["schedule:parse", cron], ["schedule:add", "nightly", "--task", "tests.add",
                                            "--cron", cron]):
        done = taskqueue(sqlite_url, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if not line.startswith("note:")]
        assert errors == [f"error: cron expression {cron!r}" + errors[0].split(repr(cron), 1)[1]]
        assert reason in errors[0] and "Traceback" not in done.stderr
    listed = taskqueue(sqlite_url, "schedule:list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], "nothing was stored"


def test_schedule_list_survives_any_stored_schedule(sqlite_url: str) -> None:
    """A schedule stored by an older version (or written by hand) that can never fire is listed
    with the reason; the others still show their next run."""
    with QueueManager.from_url(sqlite_url) as manager:
        good = taskqueue(sqlite_url, "schedule:add", "good", "--task", "tests.add", "--cron",
                         "*/5 * * * *")
        assert good.returncode == 0, good.stderr
        since = datetime.now(UTC).isoformat()
        for name, cron in (("feb31", "0 0 31 2 *"), ("garbage", "not a cron")):
            manager.driver.registry_put(DEFINITIONS, name, {
                "name": name, "task": "tests.add", "cron": cron, "since": since}, DURABLE_TTL)
    rows = {r["name"]: r for r in json.loads(taskqueue(sqlite_url, "schedule:list",
                                                       "--json").stdout)}
    assert rows["good"]["next_run"] and rows["good"]["problem"] is None
    assert rows["feb31"]["next_run"] is None and "never fires" in rows["feb31"]["problem"]
    assert rows["garbage"]["next_run"] is None and "has 3 fields" in rows["garbage"]["problem"]
    table = taskqueue(sqlite_url, "schedule:list")
    assert table.returncode == 0 and "feb31" in table.stdout and "never" in table.stdout


def test_schedule_add_checks_the_task_name_against_the_app(sqlite_url: str) -> None:
    typo = taskqueue(sqlite_url, "schedule:add", "s1", "--task", "tests.ad", "--cron",
                     "@daily", "--app", "tests.apps.sample_tasks")
    assert typo.returncode == 2
    assert typo.stderr.strip() == ("error: no task named 'tests.ad' is defined by "
                                   "tests.apps.sample_tasks (did you mean 'tests.add'?)")
    ok = taskqueue(sqlite_url, "schedule:add", "s1", "--task", "tests.add", "--cron", "@daily",
                   "--app", "tests.apps.sample_tasks")
    assert ok.returncode == 0 and "schedule s1" in ok.stdout, ok.stderr
    unchecked = taskqueue(sqlite_url, "schedule:add", "s2", "--task", "tests.whatever",
                          "--cron", "@daily")
    assert unchecked.returncode == 0
    assert "not checked; give --app MODULE" in unchecked.stderr


def test_intervals_cron_cannot_express_are_added_listed_and_parsed(sqlite_url: str) -> None:
    parsed = taskqueue(sqlite_url, "schedule:parse", "every 7 minutes", "--json")
    assert parsed.returncode == 0, parsed.stderr
    data = json.loads(parsed.stdout)
    assert data["period"] == {"count": 7, "unit": "minute"}
    runs = [datetime.fromisoformat(r) for r in data["next"]]
    assert {(b - a).total_seconds() for a, b in zip(runs, runs[1:], strict=False)} == {420.0}
    text = taskqueue(sqlite_url, "schedule:parse", "every other day at 9am").stdout
    assert "only every 2 days of those times" in text, text
    added = taskqueue(sqlite_url, "schedule:add", "poll", "--task", "tests.add",
                      "--every", "7 minutes")
    assert added.returncode == 0, added.stderr
    row = json.loads(taskqueue(sqlite_url, "schedule:list", "--json").stdout)[0]
    assert row["period"]["count"] == 7 and row["text"] == "every 7 minutes"
    zero = taskqueue(sqlite_url, "schedule:parse", "every 0 minutes")
    assert zero.returncode == 2 and "every 0 minutes never repeats" in zero.stderr


@pytest.mark.parametrize(("option", "reason"), [
    (["--queue", ""], "queue name must not be empty"),
    (["--queue", "q" * 201], "queue name is 201 characters long"),
    (["--priority", "5000"], "priority 5000 is outside 0..1000"),
])
def test_job_options_no_run_could_be_pushed_with_are_refused(sqlite_url: str,
                                                              option: list[str],
                                                              reason: str) -> None:
    """The options a schedule stores are checked as each run's push checks them: they used to
    be stored, and every run then failed with a traceback in the scheduler's log only."""
    added = taskqueue(sqlite_url, "schedule:add", "every-second", "--task", "tests.add",
                      "--every", "every second", *option)
    assert added.returncode == 2, (added.stdout, added.stderr)
    errors = [line for line in added.stderr.splitlines() if not line.startswith("note:")]
    assert errors == [f"error: schedule every-second: {errors[0].split(': ', 2)[2]}"]
    assert reason in errors[0] and "Traceback" not in added.stderr
    listed = taskqueue(sqlite_url, "schedule:list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], "nothing was stored"
