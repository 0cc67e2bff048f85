"""The ``work`` summary and progress bar count the whole run (issue #20 item 6, issue #19
item 14): every worker life, recycled ones included, over the run's wall-clock time; the bar's
final figures are the summary's."""

from __future__ import annotations

import json
import re
import time

from taskqueue import QueueManager
from tests.apps import sample_tasks as t
from tests.integration.test_worker_processes import cli

APP = ("--app", "tests.apps.sample_tasks")


def test_json_totals_count_every_worker_life_over_the_wall_clock(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    manager.push_many([t.mark.call([ledger], {"sleep": 0.01}) for _ in range(50)])
    began = time.monotonic()
    proc = cli("--url", sqlite_url, "work", "--max-jobs=10", "--stop-when-empty",
               "--prefetch=1", "--json", *APP)
    out, err = proc.communicate(timeout=120)
    wall = time.monotonic() - began
    assert proc.returncode == 0, err
    data = json.loads(out)
    totals, lives = data["totals"], data["workers"]
    assert totals["processed"] == 50 == sum(w["processed"] for w in lives)
    assert len([w for w in lives if w["processed"]]) == 5, "recycled every 10 jobs"
    # the run's wall clock, not one worker life's (that was a fifth of it)
    assert totals["elapsed"] <= wall
    assert totals["elapsed"] >= 0.5 * sum(w["elapsed"] for w in lives)
    assert totals["rate"] == totals["processed"] / totals["elapsed"]
    assert data["exit_code"] == 0


def test_the_progress_bar_ends_on_the_summarys_figures(
        manager: QueueManager, sqlite_url: str, ledger: str) -> None:
    manager.push_many([t.mark.call([ledger], {}) for _ in range(40)])
    proc = cli("--url", sqlite_url, "work", "--max-jobs=10", "--stop-when-empty",
               "--prefetch=1", *APP, env={"COLUMNS": "160"})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    bar = re.findall(r"processing.*?(\d+)/(\d+)\s+(\d+) jobs/s", out)
    assert bar, out
    done, total, bar_rate = (int(x) for x in bar[-1])
    assert done == total == 40
    summary = re.search(r"│ all .*?│\s*([\d.]+)s\s*│\s*(\d+)/s", out)
    assert summary, out
    assert bar_rate == int(summary.group(2)), (bar[-1], summary.group(0))
