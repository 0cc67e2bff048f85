"""``python -m benchmarks scale`` works end to end on a tiny N: it starts its own store server,
fills it with finished jobs, measures their size and the server's CPU, prunes them while a
``taskqueue work`` subprocess drains a stream, and writes its table. The figures are checked
for shape and plausibility only, never for speed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.test_smoke import REPO, clean_env


def run_scale(tmp_path: Path, backend: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "scale", "--jobs", "600", "--backend", backend,
         "--baseline", "1", "--rate", "100", "--results-dir", str(tmp_path), "--no-docs"],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp_path / "scale.json").read_text())


@pytest.mark.slow
def test_scale_benchmark_on_sqlite(tmp_path: Path) -> None:
    data = run_scale(tmp_path, "sqlite")
    (row,) = data["rows"]
    assert row["n"] == 600 and row["processed"] == 600
    assert row["size"]["bytes"] > 600 * 100  # every finished job takes room in the file
    assert row["drain_cpu_us"] is None  # no server
    # the prune deleted the 600 finished jobs (plus stream jobs older than a second)
    assert row["pruned"] >= 600
    assert row["baseline_worst_gap_ms"] > 0 and row["prune_worst_gap_ms"] > 0
    md = (tmp_path / "scale.md").read_text()
    assert "| SQLite (file size) | 600 |" in md
    assert "N = 600" in md and "extrapolated" in md


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_scale_benchmark_on_redis_reads_its_own_server(tmp_path: Path) -> None:
    (row,) = run_scale(tmp_path, "redis")["rows"]
    assert row["processed"] == 600 and row["pruned"] >= 600
    assert row["size"]["bytes"] > 0  # used_memory grew by the finished jobs
    assert row["push_cpu_us"] is not None and row["drain_cpu_us"] is not None


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob(
    "*/bin/initdb")) if Path("/usr/lib/postgresql").exists() else shutil.which("initdb")),
                    reason="PostgreSQL server binaries (initdb) not installed")
def test_scale_benchmark_on_postgres_measures_the_job_table(tmp_path: Path) -> None:
    (row,) = run_scale(tmp_path, "postgres")["rows"]
    assert row["processed"] == 600 and row["pruned"] >= 600
    assert row["size"]["what"] == "pg_total_relation_size"
    assert row["size"]["bytes"] >= row["size"]["heap"] > 0
    assert row["drain_cpu_us"] is not None and row["drain_cpu_us"] >= 0
