#!/usr/bin/env python3
"""The soak test of issue #11: steady load with a worker killed every few seconds, pruning on.

    python scripts/soak.py --minutes 30 --url postgresql://postgres@127.0.0.1/test
    python scripts/soak.py --minutes 30 --url sqlite:///storage/soak.db --rate 100
    python scripts/soak.py --minutes 30 --url redis://127.0.0.1:6379/0?prefix=soak

Run from the repository root (it uses ``tests/apps/chaos_tasks.py`` and the chaos harness). It
is not collected by pytest; ``tests/chaos/test_soak_smoke.py`` runs it for ~20 s on SQLite.

What it does: a producer pushes ``--rate`` jobs per second; ``taskqueue work`` runs
``--workers`` processes with a ``--lease`` second lease and completed jobs pruned after
``--retention`` seconds; one random worker is killed -9 every ``--kill-every`` seconds. Every
10 s it samples the workers' RSS, the store (PostgreSQL dead tuples and table size, SQLite WAL
size, Redis used memory), the backlog and the completions. A verifier checks every pushed job
before pruning can remove it (its accepted completion in the effect ledger, or its final state).

At the end it drains, then judges (exit 1 if any fails):
* lost = 0, stuck = 0, double-accepted = 0 (always);
* worker RSS growth < 10 %, last 5 minutes' throughput >= 80 % of the first 5, and the store
  levelling off (dead tuples and table size / WAL / Redis memory: the last third's peak at most
  1.25x the middle third's, plus a small allowance) -- judged on runs of 10 minutes or more.
The figures are printed as JSON (and written to ``--report``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from tests.chaos.harness import (  # noqa: E402
    QUEUE,
    ProducerLedger,
    prepare,
    push_recorded,
    records,
    start_workers,
    stop,
    worker_pids,
)

from taskqueue import QueueManager, State  # noqa: E402
from taskqueue.config import redact_url  # noqa: E402
from taskqueue.drivers import JobFilter  # noqa: E402

SAMPLE_EVERY = 10.0


class Ledger:
    """Reads the effect ledger incrementally: accepted completions (A) and their times."""

    def __init__(self, path: str) -> None:
        self.path, self.offset = path, 0
        self.acked: dict[str, int] = {}
        self.ack_times: list[float] = []
        self.starts = 0

    def read(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode().splitlines():
            parts = line.split()
            if len(parts) != 7:
                continue
            if parts[0] == "A":
                self.acked[parts[1]] = self.acked.get(parts[1], 0) + 1
                self.ack_times.append(float(parts[6]))
            elif parts[0] == "S":
                self.starts += 1


class Verifier:
    """Confirms each pushed job before the pruner may delete it."""

    def __init__(self, manager: QueueManager, ledger: Ledger, book: ProducerLedger) -> None:
        self.manager, self.ledger, self.book = manager, ledger, book
        self.verified: set[str] = set()
        self.failed_with_reason: set[str] = set()
        self.vanished: set[str] = set()

    def sweep(self, older_than: float) -> None:
        self.ledger.read()
        now = time.time()
        due = [j for j in self.book.ok + self.book.unknown if j not in self.verified
               and j not in self.vanished and now - self.book.pushed_at.get(j, now) > older_than]
        for job_id in due:
            if job_id in self.ledger.acked:
                self.verified.add(job_id)
        rest = [j for j in due if j not in self.verified]
        if not rest:
            return
        found = records(self.manager, rest)
        for job_id in rest:
            record = found.get(job_id)
            if record is None:
                if job_id in self.book.unknown:
                    self.vanished.add(job_id)  # an unknown push that never happened
                continue
            if record.state == State.COMPLETED:
                self.verified.add(job_id)
            elif record.state == State.FAILED and record.exception:
                self.verified.add(job_id)
                self.failed_with_reason.add(job_id)


def store_sample(url: str, manager: QueueManager) -> dict[str, float]:
    scheme = urlsplit(url).scheme
    out: dict[str, float] = {}
    try:
        if scheme.startswith("postgres"):
            import psycopg

            schema = parse_qs(urlsplit(url).query).get("schema", ["public"])[0]
            conninfo = url.split("?", 1)[0]
            with psycopg.connect(conninfo, autocommit=True) as conn:
                autovacuum = conn.execute("SHOW autovacuum").fetchone()
                out["autovacuum_on"] = float(bool(autovacuum and autovacuum[0] == "on"))
                row = conn.execute(
                    "SELECT n_dead_tup, n_live_tup, pg_total_relation_size(relid) "
                    "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'job_queue'",
                    (schema,)).fetchone()
            if row:
                out.update(dead_tuples=row[0], live_tuples=row[1], table_bytes=row[2])
        elif scheme == "sqlite":
            path = urlsplit(url).netloc + urlsplit(url).path
            path = path[1:] if path.startswith("/") else path
            wal = Path(path + "-wal")
            out["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
            out["db_bytes"] = Path(path).stat().st_size
        elif scheme.startswith("redis"):
            import redis

            client = redis.Redis.from_url(url.split("?", 1)[0])
            out["redis_used_memory"] = client.info("memory")["used_memory"]
            client.close()
        out["backlog"] = manager.driver.count(JobFilter(queues=(QUEUE,), states=(
            State.PENDING, State.RETRYING)))
    except Exception as exc:  # noqa: BLE001 - a sample may fail while the store is busy
        out["sample_error"] = 1.0
        print(f"sample failed: {exc}", file=sys.stderr)
    return out


def worker_rss(pool_pid: int) -> list[float]:
    out = []
    for pid in worker_pids(pool_pid):
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(pid).memory_info().rss / 2**20)
    return out


def levels_off(series: list[float], allowance: float) -> bool:
    """The last third's peak is at most 1.25x the middle third's (plus an allowance)."""
    if len(series) < 6:
        return True
    third = len(series) // 3
    middle, last = series[third:2 * third], series[2 * third:]
    return max(last) <= 1.25 * max(middle) + allowance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--url", required=True, help="store URL (a fresh schema/prefix is best)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs pushed per second")
    parser.add_argument("--job-seconds", type=float, default=0.002)
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--retention", type=float, default=60.0,
                        help="seconds before completed jobs are pruned")
    parser.add_argument("--report", help="write the JSON report here too")
    parser.add_argument("--workdir", help="where the ledgers and worker log go (default: temp)")
    args = parser.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="taskqueue-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    effects = str(work / "effects.log")
    manager = QueueManager.from_url(args.url)
    book = ProducerLedger()
    ledger = Ledger(effects)
    verifier = Verifier(manager, ledger, book)
    env = {"TASKQUEUE_COMPLETED_RETENTION": str(args.retention),
           "TASKQUEUE_FAILED_RETENTION": str(max(args.retention, 3600))}
    pool = start_workers(args.url, effects, f"--workers={args.workers}", "--prefetch=10",
                         lease=args.lease, log=work / "workers.log", env=env)
    rng = random.Random(30)
    stop_producing = threading.Event()
    kills: list[float] = []
    samples: list[dict[str, Any]] = []
    began = time.time()
    duration = args.minutes * 60

    def produce() -> None:
        producer_manager = QueueManager.from_url(args.url)
        batch = max(1, int(args.rate / 10))
        next_at = time.monotonic()
        while not stop_producing.is_set():
            try:
                jobs = prepare(producer_manager, effects, batch, args.job_seconds)
                push_recorded(producer_manager, jobs, book)
            except Exception as exc:  # noqa: BLE001 - recorded as unknown by push_recorded
                book.errors[type(exc).__name__] += 1
            next_at += batch / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        producer_manager.close()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    next_kill = time.monotonic() + args.kill_every
    next_sample = time.monotonic() + SAMPLE_EVERY
    try:
        while time.time() - began < duration:
            time.sleep(0.2)
            now = time.monotonic()
            if now >= next_kill:
                next_kill = now + args.kill_every
                pids = worker_pids(pool.pid)
                if pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        kills.append(time.time())
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY
                verifier.sweep(older_than=5.0)
                rss = worker_rss(pool.pid)
                sample = {"t": round(time.time() - began, 1),
                          "rss_mb": round(statistics.mean(rss), 1) if rss else None,
                          "pushed": len(book.ok), "acked": len(ledger.acked),
                          **store_sample(args.url, manager)}
                samples.append(sample)
                print(json.dumps(sample), flush=True)
        stop_producing.set()
        producer.join(30)
        deadline = time.monotonic() + max(120.0, 10 * args.lease)
        while time.monotonic() < deadline:
            verifier.sweep(older_than=0.0)
            if len(verifier.verified | verifier.vanished) >= len(book.ok) + len(book.unknown):
                break
            time.sleep(1.0)
    finally:
        stop_producing.set()
        stop(pool)
    ledger.read()
    verifier.sweep(older_than=0.0)

    unverified = [j for j in book.ok if j not in verifier.verified]
    left = records(manager, unverified)
    stuck = [j for j, r in left.items() if r.state not in (State.COMPLETED, State.FAILED)]
    lost = [j for j in unverified if j not in left]
    double = [j for j, n in ledger.acked.items() if n > 1]
    elapsed = time.time() - began
    window = min(300.0, duration / 6)
    first = sum(1 for t in ledger.ack_times if began + 30 <= t < began + 30 + window)
    last = sum(1 for t in ledger.ack_times if began + duration - window <= t < began + duration)
    rss = [s["rss_mb"] for s in samples if s.get("rss_mb")]
    span = max(1, len(rss) // 6)
    rss_growth = (statistics.mean(rss[-span:]) / statistics.mean(rss[:span]) - 1) if len(rss) \
        >= 2 else 0.0
    judged = args.minutes >= 10
    checks: dict[str, bool | str] = {
        "lost == 0": not lost, "stuck == 0": not stuck, "double-accepted == 0": not double}
    series = {k: [float(s[k]) for s in samples if k in s] for k in
              ("dead_tuples", "table_bytes", "wal_bytes", "redis_used_memory")}
    allowance = {"dead_tuples": 5000, "table_bytes": 8 * 2**20, "wal_bytes": 8 * 2**20,
                 "redis_used_memory": 8 * 2**20}
    if judged:
        checks["worker RSS growth < 10%"] = rss_growth < 0.10
        checks["last 5 min throughput >= 80% of first 5"] = last >= 0.8 * first
        vacuum_off = any(s.get("autovacuum_on") == 0.0 for s in samples)
        for key, values in series.items():
            if not values:
                continue
            if vacuum_off and key in ("dead_tuples", "table_bytes"):
                checks[f"{key} levels off"] = "not judged: autovacuum is off on this server"
                continue
            checks[f"{key} levels off"] = levels_off(values, allowance[key])
    else:
        checks["growth and levelling"] = "not judged: run shorter than 10 minutes"
    report = {
        "url": redact_url(args.url),
        "minutes": round(elapsed / 60, 2), "workers": args.workers, "rate": args.rate,
        "lease": args.lease, "kills": len(kills), "pushed_ok": len(book.ok),
        "pushed_unknown": len(book.unknown), "push_errors": dict(book.errors),
        "verified": len(verifier.verified), "failed_with_reason":
            len(verifier.failed_with_reason), "lost": len(lost), "stuck": len(stuck),
        "double_accepted": len(double), "executions": ledger.starts,
        "extra_executions": max(0, ledger.starts - len(ledger.acked)),
        "throughput_first_window": round(first / window, 1),
        "throughput_last_window": round(last / window, 1), "window_s": window,
        "rss_first_mb": rss[0] if rss else None, "rss_last_mb": rss[-1] if rss else None,
        "rss_growth": round(rss_growth, 3),
        **{f"{k}_max": max(v) for k, v in series.items() if v},
        "checks": checks, "passed": all(v is True or isinstance(v, str)
                                        for v in checks.values()),
        "workdir": str(work), "examples": {"lost": lost[:5], "stuck": stuck[:5],
                                           "double": double[:5]},
    }
    manager.close()
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
