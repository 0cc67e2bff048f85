"""``python -m benchmarks dashboard`` works end to end on a small store: it loads varied jobs,
times every list, count and graph request and the bulk actions, and writes its table. The
figures are checked for shape only, never for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.test_smoke import REPO, clean_env


@pytest.mark.slow
def test_dashboard_benchmark_on_sqlite(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "dashboard", "--jobs", "3000", "--backend",
         "sqlite", "--repeat", "1", "--results-dir", str(tmp_path)],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "dashboard.json").read_text())
    (run,) = data["rows"]
    assert run["load"]["jobs"] >= 3000
    kinds = {row["kind"] for row in run["endpoints"]}
    assert kinds == {"list", "count", "graph"}
    assert all(row["median_ms"] > 0 for row in run["endpoints"])
    assert {what: figures["changed"] for what, figures in run["bulk"].items()} == {
        "bulk priority, 300 pending": 300, "bulk retry, 300 failed": 300,
        "retry job by job, 300 failed (before)": 300}
    table = (tmp_path / "dashboard.md").read_text()
    assert "| list | tag (rare: 20 jobs) |" in table and "| graph | batch (2,000 jobs) |" in table
