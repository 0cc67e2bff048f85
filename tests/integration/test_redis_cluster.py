"""The Redis driver on a real three-master Redis Cluster (``tests.redis_cluster``, started by
the first test that needs it; the whole conformance suite also runs there): queues spread over
the primaries, `taskqueue work` drains them, a `{tag}` prefix pins a store to one slot, and a
wrong client or URL is refused with the fix in the message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, Worker, WorkerOptions
from taskqueue.drivers import open_driver
from taskqueue.drivers.redis import RedisDriver
from taskqueue.errors import ConfigError, DriverError, DriverUnavailable
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from tests.apps import sample_tasks as t
from tests.backends import redis_cluster_url
from tests.redis_cluster import RedisCluster
from tests.threads import in_thread

redis = pytest.importorskip("redis")
ROOT = Path(__file__).resolve().parents[2]


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with redis_cluster_url(tmp_path) as fresh:
        yield fresh


@pytest.fixture
def redis_cluster(url: str) -> str:
    """The cluster's URL without a prefix."""
    return url.split("?")[0]


def owners(url: str, names: list[str]) -> dict[str, str]:
    """The primary (host:port) that owns each queue's slot."""
    admin = redis.RedisCluster.from_url(url.split("?")[0].replace("redis+cluster", "redis", 1))
    try:
        return {n: admin.get_node_from_key(f"x:{{{n}}}").name for n in names}
    finally:
        admin.close()


def queues_on_every_primary(url: str) -> list[str]:
    """One queue name per primary."""
    by_node: dict[str, str] = {}
    for i in range(200):
        name = f"q{i}"
        by_node.setdefault(owners(url, [name])[name], name)
        if len(by_node) == 3:
            break
    assert len(by_node) == 3
    return sorted(by_node.values())


def test_taskqueue_work_drains_queues_on_every_primary(url: str, tmp_path: Path) -> None:
    queues = queues_on_every_primary(url)
    ledger = str(tmp_path / "ledger")
    manager = QueueManager.from_url(url)
    try:
        ids = [t.mark.push([ledger], manager=manager, queue=q) for q in queues for _ in range(20)]
        first = t.mark.push([ledger], manager=manager, queue=queues[0], idempotency_key="once")
        assert t.mark.push([ledger], manager=manager, queue=queues[0],
                           idempotency_key="once") == first
        parent = t.mark.push([ledger], manager=manager, queue=queues[1])
        child = t.mark.push([ledger], manager=manager, queue=queues[2], depends_on=[parent])
        ids += [first, parent, child]
    finally:
        manager.close()
    env = {**os.environ, "TASKQUEUE_URL": url}
    work = subprocess.run(
        [sys.executable, "-m", "taskqueue", "work", "--workers=1", "--stop-when-empty",
         f"--queue={','.join(queues)}", "--app", "tests.apps.sample_tasks"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert work.returncode == 0, work.stderr[-3000:]
    runs = Counter(line.split()[0] for line in Path(ledger).read_text().splitlines())
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    stats = subprocess.run([sys.executable, "-m", "taskqueue", "stats", "--json"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(stats.stdout)["totals"]["completed"] == len(ids)


def test_a_tagged_prefix_keeps_the_store_in_one_slot_and_wakes_on_any_queue(
        url: str) -> None:
    tagged = url.replace("?prefix=", "?prefix={", 1) + "}"
    driver = open_driver(tagged)
    assert isinstance(driver, RedisDriver)
    try:
        queues = queues_on_every_primary(url)
        driver.push([new(queue_name=q) for q in queues])
        node = driver._r.get_node_from_key(driver.keys.queues)
        keys = [k.decode() for k in driver._r.scan_iter(match=driver.keys.prefix + "*",
                                                        target_nodes=driver._r.get_primaries())]
        assert len(keys) > 10
        assert {driver._r.get_node_from_key(k).name for k in keys} == {node.name}
        assert len(driver.reserve("w", queues, 10, 30)) == 3
        late = new(queue_name=queues[2])
        with in_thread(lambda: driver.push([late]), delay=0.3):
            started = time.monotonic()
            driver.wait_for_work(queues, 5.0)
            waited = time.monotonic() - started
        assert waited < 2.5, "one BLPOP names every queue: woken at once"
    finally:
        driver.close()


def test_queues_in_several_slots_are_each_waited_on(url: str) -> None:
    driver = open_driver(url)
    try:
        queues = queues_on_every_primary(url)
        with in_thread(lambda: driver.push([new(queue_name=queues[2])]), delay=0.3):
            started = time.monotonic()
            driver.wait_for_work(queues, 5.0)
            waited = time.monotonic() - started
        assert waited < 2.5, "woken well before the 5 s timeout"
    finally:
        driver.close()


def test_a_plain_url_on_a_cluster_node_is_refused_with_the_fix(redis_cluster: str) -> None:
    plain = redis_cluster.replace("redis+cluster://", "redis://", 1)
    with pytest.raises(ConfigError, match=r"Cluster node.*redis\+cluster://"):
        open_driver(plain + "?prefix=tq_plain")
    with pytest.raises(ConfigError, match="only database 0"):
        open_driver(redis_cluster.replace("/0", "/3") + "?prefix=tq_plain")


def test_a_redirection_met_later_names_the_fix(redis_cluster: str) -> None:
    """A single-node client built by hand (no start-up check) meets MOVED on the first queue
    of another node: the error says what to do, not just the slot number."""
    port = int(redis_cluster.rsplit(":", 1)[1].split("/")[0])
    driver = RedisDriver(redis.Redis(port=port), prefix="tq_moved")
    try:
        queues = queues_on_every_primary(redis_cluster + "?prefix=x")
        with pytest.raises(DriverError, match=r"redis\+cluster://"):
            for queue in queues:   # at least one lives on another node
                driver.push([new(queue_name=queue)])
    finally:
        driver.close()


def test_a_wake_up_reserves_in_the_same_round_trip_on_the_queues_node(url: str) -> None:
    """The idle single-queue wait pipelines its BLPOP with the reserve it repeats; on a Cluster
    both go to the node that owns the queue."""
    driver = open_driver(url)
    producer = open_driver(url)
    try:
        queue = queues_on_every_primary(url)[1]
        assert driver.reserve("w", [queue], 5, 30) == []    # primes the wait
        job = new(queue_name=queue)
        with in_thread(lambda: producer.push([job]), delay=0.3):
            driver.wait_for_work([queue], 5.0)
        assert isinstance(driver, RedisDriver) and len(driver._memory) == 1, "taken on wake-up"
        assert [j.id for j in driver.reserve("w", [queue], 5, 30)] == [job.id]
    finally:
        producer.close()
        driver.close()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _until(done: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_worker_waits_out_an_outage_of_the_whole_cluster(tmp_path: Path) -> None:
    """Every node stops, then starts again: the worker backs off and carries on, and a store
    opened meanwhile is waited for. The cluster client's 'Redis Cluster cannot be connected'
    is no RedisError: it went through the driver untranslated, the worker's loop (which waits
    out DriverUnavailable) died with it, and ``open_patiently`` gave up at once."""
    own = RedisCluster(tmp_path / "cluster")
    own.start()
    try:
        url, ledger = own.url + "?prefix=outage", tmp_path / "ledger"
        manager = QueueManager.from_url(url)
        worker = Worker(manager, WorkerOptions(queues=["q"], poll_interval=0.1,
                                               maintenance_interval=0.5))
        with in_thread(worker.run, timeout=60) as running:
            try:
                t.mark.push([str(ledger)], manager=manager, queue="q")
                _until(lambda: _lines(ledger) == 1, 30, "the first job ran")
                own.stop()
                with pytest.raises(DriverUnavailable):
                    open_driver(url)
                time.sleep(1.5)   # the worker meets the outage, more than once
                assert running.is_alive(), "the worker gave up"
                own.restart()   # the same cluster, empty (no persistence)
                _until(lambda: _pushed(manager, ledger), 30, "a push after the restart")
                _until(lambda: _lines(ledger) == 2, 60, "the worker took jobs again")
            finally:
                worker.request_stop()
        manager.close()
    finally:
        own.stop()


def _pushed(manager: QueueManager, ledger: Path) -> bool:
    try:
        t.mark.push([str(ledger)], manager=manager, queue="q")
    except DriverUnavailable:
        return False
    return True
