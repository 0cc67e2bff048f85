"""PostgreSQL behind PgBouncer in transaction pooling mode (issue #20): `taskqueue work`
drains through it, and idle workers are woken without LISTEN through the pooler."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from taskqueue.drivers import open_driver
from taskqueue.errors import ConfigError
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from tests.backends import pgbouncer_url, postgres_url
from tests.integration.test_backends_end_to_end import run_main_job


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[str]:
    with pgbouncer_url(tmp_path) as url:
        yield url


def _direct(pooled_url: str) -> str:
    """The same schema on the server itself (what ``notify_url`` names)."""
    from tests.backends import PG_ADMIN

    return PG_ADMIN + "?" + pooled_url.split("?", 1)[1].replace("&pooler=transaction", "")


def test_work_drains_through_pgbouncer_with_two_workers(pooled: str) -> None:
    run_main_job(pooled, 600, workers=2)


def _wake_after_push(waiter_url: str, producer_url: str) -> float:
    """Seconds from a push to the return of an idle wait_for_work (its timeout is 60 s)."""
    waiter, producer = open_driver(waiter_url), open_driver(producer_url)
    pushed: list[float] = []
    woke: list[float] = []
    try:
        thread = threading.Thread(target=lambda: (waiter.wait_for_work(["q"], 60.0),
                                                  woke.append(time.monotonic())))
        thread.start()
        time.sleep(0.5)  # let it settle into its wait
        producer.push([NewJob(id=uuid7(), name="n", payload=b"{}", queue_name="q")])
        pushed.append(time.monotonic())
        thread.join(65)
    finally:
        waiter.close()
        producer.close()
    assert woke, "wait_for_work did not return"
    return woke[0] - pushed[0]


def test_notify_url_wakes_a_pooled_worker_without_polling(pooled: str) -> None:
    direct = _direct(pooled)
    waiter_url = f"{pooled}&poll_interval=60&notify_url={quote(direct, safe='')}"
    assert _wake_after_push(waiter_url, pooled) < 10  # a poll would take 60 s


def test_a_pooled_worker_without_notify_url_polls(pooled: str) -> None:
    assert _wake_after_push(f"{pooled}&poll_interval=0.2", pooled) < 10


def test_a_pooled_worker_does_not_listen_through_the_pooler(pooled: str) -> None:
    """LISTEN through a transaction pooler is lost with the server session it ran on; a
    waiter that polls opens no connection of its own to LISTEN on."""
    driver = open_driver(f"{pooled}&poll_interval=0.05")
    try:
        driver.wait_for_work(["q"], 0.2)
        assert driver._waiter._listener is None  # type: ignore[attr-defined]
    finally:
        driver.close()


@pytest.mark.parametrize("query, problem", [
    ("pooler=statement", "pooler='statement'"),
    ("prepare=maybe", "prepare='maybe'"),
    ("pooler=transaction&poll_interval=soon", "poll_interval='soon'"),
    ("pooler=transaction&poll_interval=0", "poll_interval must be > 0"),
])
def test_bad_pooler_parameters_are_named(tmp_path: Path, query: str, problem: str) -> None:
    with postgres_url(tmp_path) as url, pytest.raises(ConfigError, match=problem):
        open_driver(f"{url}&{query}")
