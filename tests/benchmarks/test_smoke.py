"""The benchmark command works end to end on a tiny N (taskqueue on SQLite and the SQLite
ceiling only). It checks the report's shape, never the figures: benchmarks are not part of the
suite's pass/fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_command_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    results = tmp_path / "results.json"
    # a figure stored by an earlier run of another library: a partial re-run keeps it
    results.write_text(json.dumps({"runs": {}, "entries": {"huey|sqlite|standard": {
        "lib": "huey", "backend": "sqlite", "mode": "standard", "run_id": "earlier",
        "median": {"drain_rate": 123.0}, "samples": [], "errors": [], "notes": []}}}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("TASKQUEUE_URL", "ENCRYPTION_KEY", "ENCRYPTION_PREVIOUS_KEYS")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--only", "taskqueue,ceiling",
         "--backend", "sqlite", "--jobs", "200", "--repeat", "1", "--out", str(out),
         "--results", str(results), "--no-plots"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(results.read_text())
    ours = data["entries"]["taskqueue|sqlite|standard"]
    assert not ours["errors"], ours["errors"]
    for metric in ("drain_rate", "single_rate", "bulk_rate", "single_p50_ms", "single_p99_ms",
                   "e2e_p50_ms", "rss_mb", "start_s"):
        assert ours["median"].get(metric, 0) > 0, (metric, ours)
    ceiling = data["entries"]["ceiling|sqlite|standard"]
    assert ceiling["median"].get("drain_rate", 0) > 0, ceiling
    assert data["entries"]["taskqueue|sqlite|payload:1000000"]["median"].get("drain_rate", 0) > 0
    assert data["entries"]["huey|sqlite|standard"]["median"]["drain_rate"] == 123.0

    text = out.read_text()
    for heading in ("## Issue #10 targets", "## Results by backend", "### SQLite",
                    "## Distance to the ceiling", "## Payload sizes",
                    "## Libraries, versions and configurations", "## Method"):
        assert heading in text, heading
    assert "| **taskqueue** |" in text
    assert "| ceiling (hand-written loop) |" in text
    assert "| huey | 123 (" in text  # the stored figure, with its ratio to taskqueue's
    assert "drain ≥ 40,000/s on SQLite" in text
