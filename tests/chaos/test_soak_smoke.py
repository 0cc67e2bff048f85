"""The soak command works: ``scripts/soak.py`` for ~20 s on SQLite (the real soak is 30 minutes,
run on demand; see docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.chaos.harness import ROOT


def test_soak_script_runs_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.33",
         "--url", f"sqlite:///{tmp_path / 'soak.db'}", "--workers", "2", "--rate", "40",
         "--kill-every", "5", "--lease", "2", "--report", str(report),
         "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["lost"] == 0 and data["stuck"] == 0 and data["double_accepted"] == 0, data
    assert data["kills"] >= 2 and data["pushed_ok"] > 100, data
    assert data["verified"] == data["pushed_ok"], data
    assert "wal_bytes_max" in data and data["passed"] is True
