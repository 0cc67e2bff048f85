"""``python -m benchmarks dashboard`` works end to end on a small store: it loads varied jobs,
times every list, count and graph request and the bulk actions, and writes its table. The
figures are checked for shape only, never for speed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.test_smoke import REPO, clean_env


def _initdb() -> bool:
    found = shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) \
        if Path("/usr/lib/postgresql").exists() else shutil.which("initdb")
    return bool(found)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(not _initdb(),
                                                     reason="no PostgreSQL server binaries"))])
def test_dashboard_benchmark(tmp_path: Path, backend: str) -> None:
    """The run also checks, before timing anything, that the dashboard counts what the
    loader put in (restored records plus the store's copies of them): it exits non-zero
    otherwise."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "dashboard", "--jobs", "3000", "--backend",
         backend, "--repeat", "1", "--results-dir", str(tmp_path)],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "dashboard.json").read_text())
    (run,) = data["rows"]
    assert run["load"]["jobs"] >= 3000 and run["load"]["copied"] > 0
    kinds = {row["kind"] for row in run["endpoints"]}
    assert kinds == {"list", "count", "graph"}
    assert all(row["median_ms"] > 0 for row in run["endpoints"])
    assert {what: figures["changed"] for what, figures in run["bulk"].items()} == {
        "bulk priority, 300 pending": 300, "bulk retry, 300 failed": 300,
        "retry job by job, 300 failed (before)": 300}
    table = (tmp_path / "dashboard.md").read_text()
    assert "| list | tag (rare: 20 jobs) |" in table and "| graph | batch (2,000 jobs) |" in table
