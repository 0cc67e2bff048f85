"""A worker survives its store restarting mid-run (issue #3): it backs off, reconnects and
carries on, and every pushed job ends completed (duplicates only for jobs whose acknowledgement
was cut off by the outage)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.integration.conftest import ledger_lines
from tests.integration.test_postgres_specific import OwnPostgres, own_postgres  # noqa: F401
from tests.integration.test_redis_specific import own_redis
from tests.integration.test_worker_processes import cli, wait_for

JOBS = 600


def completed(url: str) -> int:
    try:
        manager = QueueManager.from_url(url)
    except Exception:  # noqa: BLE001 - the server may still be starting
        return -1
    try:
        return manager.driver.count(JobFilter(states=(State.COMPLETED,)))
    except Exception:  # noqa: BLE001
        return -1
    finally:
        manager.close()


def run_through_restart(url: str, ledger: str, restart: Callable[[], None]) -> None:
    manager = QueueManager.from_url(url)
    ids = manager.push_many([t.mark.call([ledger], {"sleep": 0.005}) for _ in range(JOBS)])
    manager.close()
    proc = cli("--url", url, "work", "--app", "tests.apps.sample_tasks", "--prefetch=5",
               env={"TASKQUEUE_LEASE_SECONDS": "3"})
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 100, timeout=60)
        restart()
        wait_for(lambda: completed(url) == JOBS, timeout=120, interval=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # the outage shows as a failed reservation ("store unavailable"), or, when it began while
    # completions were on their way (PostgreSQL sends them with the next reservation), as
    # settling given up after one lease (those jobs run again) and a failed idle wait
    outage = ("unavailable", "after store errors", "waiting for work failed")
    assert any(sign in err for sign in outage), "the worker saw the outage and rode it out"
    runs = Counter(line[0] for line in ledger_lines(ledger))
    assert set(runs) == set(ids), "every job ran"
    assert sum(n - 1 for n in runs.values()) <= 10, "re-runs only around the outage"


def test_worker_survives_a_postgres_restart(own_postgres: OwnPostgres, ledger: str) -> None:  # noqa: F811
    def restart() -> None:
        own_postgres.stop()
        time.sleep(2)
        own_postgres.start()

    run_through_restart(own_postgres.url, ledger, restart)


def test_worker_survives_a_redis_restart(tmp_path: Path, ledger: str) -> None:
    with own_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                   "--save", "") as server:
        def restart() -> None:
            server.kill()
            time.sleep(2)
            server.start()

        run_through_restart(server.url, ledger, restart)


pytestmark = pytest.mark.slow
