"""Store outages are waited out, not fatal (issue #16, item 18).

Each backend on its OWN server (started and stopped by pid here, in a temp dir, on a spare
port): 1,500 jobs are pushed, ``taskqueue work --workers 2`` starts draining them, the server is
stopped for 60 s mid-drain and started again. Meanwhile one worker process is killed, so its
replacement starts while the store is down (a start-up failure that must be waited out, not
counted as a crash). Checked: the supervisor never kills a worker that is only waiting for its
store, never gives a slot up, the replacement waits for the store instead of failing, and once
the server is back the pool drains the whole backlog by itself: nothing lost, stuck or accepted
twice.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from taskqueue import QueueManager
from tests.chaos.harness import (
    Fault,
    ProducerLedger,
    check,
    finished_count,
    free_port,
    own_mariadb,
    prepare,
    push_recorded,
    start_workers,
    started,
    stop,
    wait_for,
    worker_pids,
)
from tests.integration.test_postgres_specific import OwnPostgres, own_postgres  # noqa: F401
from tests.integration.test_redis_specific import REDIS_SERVER, own_redis

pytestmark = pytest.mark.slow

JOBS = 1500
OUTAGE = 60.0
#: A short lease: the old supervisor killed workers after max(10 s, two leases) of silence.
LEASE = 3.0


def drain_through_outage(backend: str, url: str, effects: str, tmp_path: Path,
                         stop_server: Callable[[], None],
                         start_server: Callable[[], None]) -> None:
    with QueueManager.from_url(url) as manager:
        book = ProducerLedger()
        push_recorded(manager, prepare(manager, effects, JOBS, sleep=0.01), book)
    log = tmp_path / "workers.log"
    began = time.time()
    port = free_port()
    pool = start_workers(url, effects, "--workers=2", f"--metrics-port={port}", lease=LEASE,
                         log=log)
    faults: list[Fault] = []
    try:
        wait_for(lambda: started(effects) >= 150, timeout=90, what="150 jobs started")
        down_at = time.time()
        stop_server()
        time.sleep(5)
        victim = worker_pids(pool.pid)[0]
        os.kill(victim, signal.SIGKILL)  # its replacement starts while the store is down
        faults.append(Fault("SIGKILL worker during the outage", time.time(), pid=victim))
        assert _scrape(port, "/ready")[0] == 503, "unhealthy while the store is away"
        assert "taskqueue_up 0.0" in _scrape(port, "/metrics")[1]
        time.sleep(max(0.0, down_at + OUTAGE - time.time()))
        assert pool.poll() is None, "the supervisor waited the outage out"
        start_server()
        up_at = time.time()
        faults.append(Fault(f"{backend} down {OUTAGE:.0f}s", down_at, until=up_at))
        wait_for(lambda: finished_count(url, book.ok) == JOBS, timeout=150, interval=1.0,
                 what="the whole backlog drained after the outage")
        assert pool.poll() is None, "the supervisor is still running"
        assert _scrape(port, "/ready")[0] == 200 or "taskqueue_up 1.0" in _scrape(
            port, "/metrics")[1], "healthy again"
    finally:
        stop(pool)
    text = log.read_text()
    with QueueManager.from_url(url) as manager:
        report = check(f"{backend} down {OUTAGE:.0f}s mid-drain", backend, manager, book, effects,
                       faults, slack=LEASE + 2, started_at=began)
    report.publish()
    report.assert_safe()
    assert report.completed == JOBS
    assert "giving up on it" not in text, "no worker slot was given up"
    assert "no heartbeat" not in text, "no worker was killed for waiting on its store"
    assert text.count("died (exit code") == 1, "only the killed worker died: its replacement " \
        "waited for the store instead of failing at start"
    assert re.search(r"store (unavailable|is unreachable)", text), "the workers saw the outage"


def _scrape(port: int, path: str) -> tuple[int, str]:
    """Status and body of the supervisor's ``--metrics-port`` endpoint ``path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_redis_down_for_a_minute(tmp_path: Path, effects: str) -> None:
    with own_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                   "--save", "") as server:
        drain_through_outage("redis", server.url, effects, tmp_path, server.kill, server.start)


def test_postgres_down_for_a_minute(own_postgres: OwnPostgres, tmp_path: Path,  # noqa: F811
                                    effects: str) -> None:
    drain_through_outage("postgres", own_postgres.url, effects, tmp_path, own_postgres.stop,
                         own_postgres.start)


def test_mariadb_down_for_a_minute(tmp_path: Path, effects: str) -> None:
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        pytest.skip("mariadbd is not installed")
    with own_mariadb(tmp_path) as server:
        drain_through_outage("mysql", server.url, effects, tmp_path, server.kill, server.start)
