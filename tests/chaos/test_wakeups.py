"""Reliability 10 (issue #11): lost wake-ups.

While jobs are pushed one at a time, the worker's wake-up channel is killed over and over: the
PostgreSQL LISTEN connection (``pg_terminate_backend``, on the shared server but only the
connection listening for this test's schema) and the Redis blocking client (``CLIENT KILL`` on
a private server). A wake-up is only a hint, polling stays behind it: each job is still picked
up within one poll interval (plus the reconnect back-off and a scheduling allowance).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager
from tests.apps.chaos_tasks import work
from tests.chaos.harness import QUEUE, read_effects, start_workers, stop, wait_for
from tests.integration.test_redis_specific import REDIS_SERVER, own_redis

POLL = 1.0
JOBS = 12
BOUND = POLL + 1.0  # one poll interval, plus reconnect back-off and a busy machine


def run_with_killer(url: str, effects: str, tmp_path: Path, kill: Callable[[], int],
                    name: str, every: float = 0.3) -> None:
    pool = start_workers(url, effects, f"--sleep={POLL}", lease=5.0,
                         log=tmp_path / "workers.log")
    killed = [0]
    halt = threading.Event()

    def killer() -> None:
        while not halt.wait(every):
            with contextlib.suppress(Exception):  # the server may be busy; try again
                killed[0] += kill()

    pushed: dict[str, float] = {}
    thread = threading.Thread(target=killer, daemon=True)
    try:
        with QueueManager.from_url(url) as manager:
            warm = manager.push(work.call([effects], {}), queue=QUEUE)
            wait_for(lambda: any(e.job == warm for e in read_effects(effects)), timeout=60,
                     what="the worker running")
            thread.start()
            for i in range(JOBS):
                time.sleep(0.4 + (i % 3) * 0.3)
                job_id = manager.push(work.call([effects], {}), queue=QUEUE)
                pushed[str(job_id)] = time.time()
        wait_for(lambda: {e.job for e in read_effects(effects) if e.kind == "S"} >= set(pushed),
                 timeout=60, what="every job picked up")
    finally:
        halt.set()
        thread.join(5)
        stop(pool)
    first = {}
    for e in read_effects(effects):
        if e.kind == "S":
            first.setdefault(e.job, e.at)
    delays = [first[j] - t for j, t in pushed.items()]
    print(f"CHAOS lost wake-ups [{name}]: {killed[0]} wake-up connections killed; pick-up "
          f"p50 {statistics.median(delays):.2f}s max {max(delays):.2f}s (poll {POLL:.0f}s)")
    text = (tmp_path / "workers.log").read_text()
    # a death, or a kill by the supervisor (logged when sent; the death then at INFO)
    deaths = text.count("died (exit code") + text.count("killing worker process")
    assert deaths == 0, f"the worker process died {deaths} times (a broken wake-up channel " \
        "must only cost a reconnect)"
    assert killed[0] >= 5, "the killer hit the wake-up channel repeatedly"
    assert max(delays) <= BOUND, delays


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    from tests.chaos.conftest import backend_url

    yield from backend_url("postgres", tmp_path)


# regression: a failed wait_for_work used to kill the worker process
def test_killing_the_listen_connection_delays_at_most_a_poll(pg_url: str, tmp_path: Path,
                                                             effects: str) -> None:
    import psycopg

    from tests.backends import PG_ADMIN

    schema = pg_url.rsplit("schema=", 1)[1]
    admin = psycopg.connect(PG_ADMIN, autocommit=True)

    def kill() -> int:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'taskqueue' AND pid <> pg_backend_pid() AND "
            "(query ILIKE %s OR (query ILIKE '%%clock_timestamp()%%' AND query ILIKE %s "
            "AND query NOT ILIKE '%%INSERT INTO%%'))",  # the waits, never the producer's push
            (f'%LISTEN "taskqueue_{schema}"%', f"%{schema}%")).fetchall()
        return sum(1 for (ok,) in rows if ok)

    try:
        run_with_killer(pg_url, effects, tmp_path, kill, "postgres LISTEN")
    finally:
        admin.close()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
# regression: same on Redis
def test_killing_the_blocking_client_delays_at_most_a_poll(tmp_path: Path,
                                                           effects: str) -> None:
    import redis

    with own_redis(tmp_path, "--save", "", "--appendonly", "yes") as server:
        admin = redis.Redis(port=server.port)

        def kill() -> int:
            return sum(int(admin.execute_command("CLIENT", "KILL", "ID", c["id"]))
                       for c in admin.client_list() if c.get("cmd") in ("blpop", "brpop"))

        try:
            run_with_killer(server.url, effects, tmp_path, kill, "redis BLPOP", every=0.15)
        finally:
            admin.close()
