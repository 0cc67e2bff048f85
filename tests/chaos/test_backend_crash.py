"""Reliability 3 (issue #11): the store crashes under load.

Private servers only (started and killed by pid here): SIGKILL of ``redis-server`` with AOF on,
``pg_ctl stop -m immediate`` of PostgreSQL, SIGKILL of ``mariadbd``; for SQLite (no server) the
writers die instead: a producer killed -9 mid-push, and a process killed while it holds the
database write lock. Workers keep running through it; a producer keeps pushing. Checked: every
acknowledged push is completed, nothing stuck or accepted twice, re-runs only for jobs whose
run overlapped the outage, and the workers start jobs again within 10 s of the store's return.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskqueue import QueueManager
from tests.chaos import producer as producer_proc
from tests.chaos.harness import (
    ROOT,
    Fault,
    Producer,
    ProducerLedger,
    check,
    finished_count,
    own_mariadb,
    prepare,
    push_recorded,
    resume_times,
    start_workers,
    started,
    stop,
    wait_for,
)
from tests.integration.test_postgres_specific import OwnPostgres, own_postgres  # noqa: F401
from tests.integration.test_redis_specific import REDIS_SERVER, own_redis

LEASE = 3.0
PRELOAD = 400
PRODUCED = 400
DOWN = 2.0
RECONNECT_BOUND = 10.0


def crash_under_load(name: str, backend: str, url: str, effects: str, tmp_path: Path,
                     crash: Callable[[], None], restore: Callable[[], None]) -> None:
    with QueueManager.from_url(url) as manager:
        book = ProducerLedger()
        push_recorded(manager, prepare(manager, effects, PRELOAD, sleep=0.005), book)
    began = time.time()
    pool = start_workers(url, effects, "--workers=2", "--prefetch=10", lease=LEASE,
                         log=tmp_path / "workers.log")
    producer = Producer(url, effects, PRODUCED, batch=25, pause=0.1, sleep=0.005)
    try:
        wait_for(lambda: started(effects) >= 100, timeout=90, what="100 jobs started")
        producer.start()
        time.sleep(0.5)
        down_at = time.time()
        crash()
        time.sleep(DOWN)
        restore()
        up_at = time.time()
        producer.join(120)
        assert producer.error is None, producer.error
        book.ok += producer.book.ok
        book.unknown += producer.book.unknown
        wait_for(lambda: finished_count(url, book.ok) == len(book.ok), timeout=150,
                 interval=0.5, what="every acknowledged job finished")
    finally:
        producer.join(5)
        stop(pool)
    faults = [Fault(name, down_at, until=up_at)]
    with QueueManager.from_url(url) as manager:
        report = check(name, backend, manager, book, effects, faults, slack=LEASE + 2,
                       started_at=began)
    report.recovery = resume_times(effects, faults)
    report.extra["push_errors"] = dict(producer.book.errors)
    report.publish()
    report.assert_safe()
    assert report.completed >= len(book.ok)
    assert report.recovery and report.recovery[0] <= RECONNECT_BOUND, report.summary()
    seen = (tmp_path / "workers.log").read_text()
    assert any(w in seen for w in ("unavailable", "unreachable", "cannot connect")), \
        "the workers saw it"


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_redis_sigkill_with_aof(tmp_path: Path, effects: str) -> None:
    with own_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                   "--save", "") as server:
        crash_under_load("SIGKILL redis-server (AOF always)", "redis", server.url, effects,
                         tmp_path, server.kill, server.start)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_redis_without_persistence_loses_everything(tmp_path: Path) -> None:
    """What the docs warn about: without AOF or RDB a restart empties the store."""
    with own_redis(tmp_path, "--save", "", "--appendonly", "no") as server:
        with QueueManager.from_url(server.url) as manager:
            book = ProducerLedger()
            push_recorded(manager, prepare(manager, str(tmp_path / "e"), 50), book)
        server.kill()
        server.start()
        with QueueManager.from_url(server.url) as manager:
            from tests.chaos.harness import records

            assert records(manager, book.ok) == {}, "every acknowledged job is gone"


def test_postgres_immediate_shutdown(own_postgres: OwnPostgres, tmp_path: Path,  # noqa: F811
                                     effects: str) -> None:
    crash_under_load("pg_ctl stop -m immediate", "postgres", own_postgres.url, effects,
                     tmp_path, own_postgres.stop, own_postgres.start)


def test_mariadb_sigkill(tmp_path: Path, effects: str) -> None:
    import shutil

    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        pytest.skip("mariadbd is not installed")
    with own_mariadb(tmp_path) as server:
        crash_under_load("SIGKILL mariadbd", "mysql", server.url, effects, tmp_path,
                         server.kill, server.start)


def test_sqlite_writers_killed_mid_write(tmp_path: Path, effects: str) -> None:
    """A producer process is killed -9 three times mid-push, and a process holding the write
    lock (an open BEGIN IMMEDIATE transaction) is killed -9; the workers carry on."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    ledger = str(tmp_path / "producer.log")
    with QueueManager.from_url(url) as manager:
        book = ProducerLedger()
        push_recorded(manager, prepare(manager, effects, PRELOAD, sleep=0.005), book)
    began = time.time()
    pool = start_workers(url, effects, "--workers=2", "--prefetch=10", lease=LEASE,
                         log=tmp_path / "workers.log")
    faults: list[Fault] = []
    try:
        wait_for(lambda: started(effects) >= 50, timeout=90, what="50 jobs started")
        for _ in range(3):
            proc = subprocess.Popen([sys.executable, "-m", "tests.chaos.producer", url,
                                     effects, ledger, "100000", "20", "0.005"], cwd=ROOT)
            before = len(producer_proc.read(ledger).ok)
            wait_for(lambda: len(producer_proc.read(ledger).ok) >= before + 40,  # noqa: B023
                     timeout=60, what="the producer pushing")
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            faults.append(Fault("SIGKILL producer", time.time(), until=time.time()))
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "queue.db")],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.time()
        time.sleep(1.5)  # every worker now waits on the lock
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        faults.append(Fault("SIGKILL write-lock holder", locked_at, until=time.time()))
        produced = producer_proc.read(ledger)
        book.ok += produced.ok
        book.unknown += produced.unknown
        wait_for(lambda: finished_count(url, book.ok) == len(book.ok), timeout=150,
                 interval=0.5, what="every acknowledged job finished")
    finally:
        stop(pool)
    with QueueManager.from_url(url) as manager:
        report = check("SIGKILL of SQLite writers", "sqlite", manager, book, effects, faults,
                       slack=LEASE + 2, started_at=began)
        # the holder's uncommitted change never became visible
        assert sqlite3.connect(tmp_path / "queue.db").execute(
            "SELECT count(*) FROM job_queue WHERE name = 'chaos.uncommitted'").fetchone() == (0,)
    report.recovery = resume_times(effects, faults[-1:])
    report.publish()
    report.assert_safe()
    assert report.unknown_pushes <= 3 * 20, "at most the batch in flight at each kill"
    assert report.recovery and report.recovery[0] <= RECONNECT_BOUND, report.summary()


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE job_queue SET name = 'chaos.uncommitted' WHERE rowid IN "
             "(SELECT rowid FROM job_queue WHERE state = 'pending' LIMIT 5)")
print("locked", flush=True)
time.sleep(3600)
"""
