"""The benchmark command works end to end on a tiny N on SQLite: taskqueue's CLI row (`taskqueue
work` as a subprocess), its `Worker` API row, the ceiling, and the mixed-duration benchmark. It
checks what was recorded and the report's shape, never the figures: benchmarks are not part of
the suite's pass/fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """No taskqueue setting of the developer's shell leaks into the measured worker."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TASKQUEUE_", "WORKER_", "ENCRYPTION_", "DB_"))}


@pytest.mark.slow
def test_benchmark_command_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    results = tmp_path / "results.json"
    # a figure stored by an earlier run of another library: a partial re-run keeps it
    results.write_text(json.dumps({"runs": {}, "entries": {"huey|sqlite|standard": {
        "lib": "huey", "backend": "sqlite", "mode": "standard", "run_id": "earlier",
        "median": {"drain_rate": 123.0}, "samples": [], "errors": [], "notes": []}}}))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--only",
         "taskqueue,taskqueue-api,ceiling", "--backend", "sqlite", "--jobs", "1200",
         "--repeat", "1", "--out", str(out), "--results", str(results), "--no-plots",
         "--no-mixed"],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(results.read_text())
    cli = data["entries"]["taskqueue|sqlite|standard"]
    assert not cli["errors"], cli["errors"]
    for metric in ("drain_rate", "single_rate", "bulk_rate", "single_p50_ms", "single_p99_ms",
                   "bulk_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "rss_mb", "pss_mb",
                   "worker_rss_mb", "peak_rss_mb", "start_s", "processes"):
        assert cli["median"].get(metric, 0) > 0, (metric, cli)
    assert cli["median"]["jobs"] == 1200  # taskqueue's rows drain the N asked for
    # 1,200 jobs with WORKER_MAX_JOBS=1000: the CLI recycled its worker once, and the gap
    # between the two processes was measured
    assert cli["median"]["worker_processes_used"] == 2, cli
    assert cli["median"]["recycles"] == 1, cli
    assert "recycle_gap_ms" in cli["median"], cli
    # the tree really is `taskqueue work` (the process the harness started) with the worker
    # under it
    assert cli["median"]["processes"] >= 2
    assert " work " in f"{cli['tree'][0]['cmd']} ", cli["tree"]

    api = data["entries"]["taskqueue-api|sqlite|standard"]
    assert not api["errors"], api["errors"]
    assert api["median"]["processes"] == 1 and api["median"]["drain_rate"] > 0
    assert "recycles" not in api["median"]
    ceiling = data["entries"]["ceiling|sqlite|standard"]
    assert ceiling["median"].get("drain_rate", 0) > 0, ceiling
    assert data["entries"]["taskqueue-api|sqlite|payload:1000000"]["median"]["drain_rate"] > 0
    assert data["entries"]["huey|sqlite|standard"]["median"]["drain_rate"] == 123.0

    text = out.read_text()
    for heading in ("## Issue 17 goals (the CLI row)", "## The path users run",
                    "## Issue #10 targets", "## Results by backend", "### SQLite",
                    "## Distance to the ceiling", "## Payload sizes",
                    "## Libraries, versions and configurations", "## Method"):
        assert heading in text, heading
    assert "| **taskqueue work** (CLI, defaults) |" in text
    assert "| taskqueue `Worker` API (in-process) |" in text
    assert "| ceiling (hand-written loop) |" in text
    assert "| huey | 123 (" in text  # the stored figure, with its ratio to taskqueue's CLI
    assert "1. CLI drain ≥ 85 % of the `Worker` API on SQLite" in text


def test_mixed_duration_benchmark_reports_waits_and_the_drain(tmp_path: Path) -> None:
    """The harness's mixed mode on a short stream and backlog, with a long job in every 50."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import stores
    finally:
        sys.path.remove(str(REPO))
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"),
                                         env.get("PYTHONPATH", "")])
    with stores.fresh_store("sqlite") as store:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness", "--lib", "taskqueue", "--backend",
             "sqlite", "--store", json.dumps(store), "--mode", "mixed", "--mixed-rate", "100",
             "--mixed-seconds", "1", "--mixed-every", "50", "--mixed-backlog", "100",
             "--mixed-settle", "10", "--start-cap", "60", "--drain-cap", "30"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")]
    assert line, proc.stdout + proc.stderr
    result = json.loads(line[-1].removeprefix("BENCH-RESULT "))
    assert "error" not in result, result
    assert result["mixed_sent"] == 100 and result["mixed_long_jobs"] == 2
    assert 0 < result["mixed_wait_p50_ms"] <= result["mixed_wait_p99_ms"]
    assert result["mixed_short_jobs"] == 98  # every short job of the backlog was seen starting
    assert 0 <= result["mixed_held"] <= 98
    assert result["mixed_drain_rate"] > 0 and result["mixed_drain_ideal"] > 0


def test_before_rows_follow_their_counterparts_and_fill_the_before_after_table() -> None:
    """`--before-src`: each of taskqueue's drains on the current code is followed by the same
    drain on the old code, and the report shows both in one table (no measurement here)."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import orchestrate, report
    finally:
        sys.path.remove(str(REPO))
    settings = orchestrate.Settings.quick()
    settings.no_recycle_backends = ("sqlite",)
    tasks = orchestrate.plan(["taskqueue", "taskqueue-api", "huey"], ["sqlite"], settings, {},
                             before=True)
    keys = [t.key for t in tasks]
    for key in ("taskqueue|sqlite|standard", "taskqueue|sqlite|max-jobs:1000000",
                "taskqueue-api|sqlite|standard"):
        lib, backend, mode = key.split("|")
        assert keys[keys.index(key) + 1] == f"{lib}-before|{backend}|{mode}"
    assert not any(k.startswith(("huey-before", "taskqueue-before|sqlite|mixed")) for k in keys)
    assert "taskqueue|sqlite|mixed" in keys
    assert orchestrate.plan(["taskqueue"], ["sqlite"], settings, {}) == [
        t for t in tasks if t.lib == "taskqueue"]

    def entry(rate: float) -> dict[str, object]:
        return {"median": {"drain_rate": rate}, "run_id": "r"}

    data = {"runs": {"r": {"taskqueue_before_source": {"head": "abc1234", "src_sha1": "x"}}},
            "entries": {"taskqueue-before|sqlite|standard": entry(3_832),
                        "taskqueue-before|sqlite|max-jobs:1000000": entry(6_654),
                        "taskqueue-api-before|sqlite|standard": entry(14_800),
                        "taskqueue|sqlite|standard": entry(13_000),
                        "taskqueue|sqlite|max-jobs:1000000": entry(13_500),
                        "taskqueue-api|sqlite|standard": entry(14_900),
                        "huey|sqlite|standard": entry(1_720)}}
    text = "\n".join(report.before_after(data))
    assert "| SQLite | 3,832 | 6,654 | 14,800 | 13,000 | 13,500 | 14,900 | huey 1,720 |" in text
    assert "abc1234" in text
    # the old code's rows are not competitors: never "best other library", never a table row
    assert report.best_other(data, "huey", "sqlite", "drain_rate") == ("taskqueue", 13_000)
    assert report.libs_on(data, "sqlite") == ["taskqueue", "taskqueue-api", "huey"]


def test_the_postgres_commit_probe_times_durable_commits() -> None:
    """The report puts a PostgreSQL commit's cost next to the enqueue and enqueue→start goals."""
    from benchmarks import stores
    from tests.backends import unavailable

    if reason := stores.check("postgres"):
        unavailable("postgres", reason)
    with stores.fresh_store("postgres") as store:
        commit_ms = stores.pg_commit_ms(store["pg_dsn"], commits=5)
    assert commit_ms > 0


def test_a_redis_measurement_has_a_server_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared Redis serves other people's tests: a measurement never empties a database
    of it. Each gets a redis-server of its own, gone after the measurement."""
    redis = pytest.importorskip("redis")
    from urllib.parse import urlsplit

    from benchmarks import stores
    from tests.backends import REDIS_URL

    if reason := stores.check("redis"):
        pytest.skip(reason)
    emptied: list[object] = []
    for verb in ("flushdb", "flushall"):
        monkeypatch.setattr(redis.Redis, verb, lambda self, *a, _v=verb, **k: emptied.append(
            (_v, self.connection_pool.connection_kwargs.get("port"))))
    with stores.fresh_store("redis") as store:
        port = urlsplit(store["redis_url"]).port
        assert port != urlsplit(REDIS_URL).port
        own = redis.Redis.from_url(store["redis_url"])
        own.set("k", "v")
        assert own.dbsize() == 1  # nobody else's keys
        own.close()
    assert emptied == []
    gone = redis.Redis.from_url(store["redis_url"], socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        gone.ping()
