"""Many nodes on one store (issue #7): separate supervisor process trees with their own node ids
and tags, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, State
from taskqueue.cluster.nodes import list_nodes
from taskqueue.drivers import JobFilter
from tests.apps import sample_tasks as t
from tests.backends import URLS, implemented_backends
from tests.integration.conftest import default_manager, ledger_lines
from tests.integration.test_supervisor import states, worker_pids
from tests.integration.test_worker_processes import cli, wait_for

APP = ("--app", "tests.apps.sample_tasks")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param not in implemented_backends():
        pytest.skip(f"{request.param} driver not available")
    with URLS[request.param](tmp_path) as store_url:
        yield store_url


@pytest.fixture
def mgr(url: str) -> Iterator[QueueManager]:
    yield from default_manager(url)


def node(url: str, name: str, *args: str, lease: str = "3"):  # type: ignore[no-untyped-def]
    return cli("--url", url, "work", *APP, "--sleep=0.1", *args,
               env={"TEST_NODE": name, "TASKQUEUE_LEASE_SECONDS": lease})


def stop(*procs) -> list[str]:  # type: ignore[no-untyped-def]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    return [proc.communicate(timeout=60)[1] for proc in procs]


def test_nodes_register_and_tag_routing_is_respected(mgr: QueueManager, url: str,
                                                     ledger: str) -> None:
    gpu = node(url, "gpu", "--tags", "gpu,eu", "--workers=2")
    plain = node(url, "plain", "--workers=2")
    try:
        wait_for(lambda: len(list_nodes(mgr.driver)) == 2, timeout=30)
        entries = {tuple(n["tags"]): n for n in list_nodes(mgr.driver)}
        assert set(entries) == {("gpu", "eu"), ()} and entries[()]["workers"] == 2
        needs_gpu = [t.where.push([ledger], requires=["gpu"]) for _ in range(40)]
        needs_both = [t.where.push([ledger], requires=["eu", "gpu"]) for _ in range(20)]
        anyone = [t.where.push([ledger]) for _ in range(60)]
        never = t.where.push([ledger], requires=["tpu"])
        everything = needs_gpu + needs_both + anyone
        wait_for(lambda: states(mgr, everything) == {State.COMPLETED: 120}, timeout=60)
    finally:
        stop(gpu, plain)
    ran = {line[0]: line[3] for line in ledger_lines(ledger)}
    assert {ran[j] for j in needs_gpu + needs_both} == {"gpu"}
    assert set(ran[j] for j in anyone) <= {"gpu", "plain"}
    assert mgr.get(never).state == State.PENDING, "no node has the tag"  # type: ignore
    assert mgr.get(never).queue_name == "default@tpu"  # type: ignore[union-attr]
    wait_for(lambda: list_nodes(mgr.driver) == [], timeout=30)


def test_partitioned_node_late_acks_are_rejected(mgr: QueueManager, url: str,
                                                 ledger: str) -> None:
    """A node frozen (SIGSTOP) longer than the lease loses its jobs to another node; when it
    wakes its acknowledgements are refused by the epoch. Nothing lost or doubled."""
    ids = [t.where.push([ledger, 0.3]) for _ in range(30)]
    frozen = node(url, "frozen", "--prefetch=5", lease="2")
    try:
        wait_for(lambda: len(ledger_lines(ledger)) >= 1, timeout=30)
        tree = [frozen.pid, *worker_pids(frozen.pid)]
        for pid in tree:
            os.kill(pid, signal.SIGSTOP)
        healthy = node(url, "healthy", "--workers=2", lease="2")
        wait_for(lambda: states(mgr, ids)[State.COMPLETED] == 30, timeout=90)
        for pid in tree:
            os.kill(pid, signal.SIGCONT)
        time.sleep(2)
    finally:
        errs = stop(frozen, healthy)
    assert states(mgr, ids) == {State.COMPLETED: 30}
    results = {j: mgr.result(j) for j in ids}
    assert errs[0] is not None
    runs = Counter(line[0] for line in ledger_lines(ledger))
    doubled = [j for j, n in runs.items() if n > 1]
    assert doubled, "the frozen node's jobs ran again elsewhere"
    for job_id in doubled:
        assert results[job_id] == "healthy", "the accepted completion is the new owner's"


def test_autoscaling_grows_on_a_burst_and_shrinks_after(mgr: QueueManager, url: str,
                                                        ledger: str) -> None:
    pool = node(url, "auto", "--autoscale=1,4", "--workers=1")
    try:
        wait_for(lambda: len(worker_pids(pool.pid)) == 1, timeout=30)
        ids = mgr.push_many([t.where.call([ledger, 0.05], {}) for _ in range(400)])
        peak = 1
        deadline = time.monotonic() + 120
        while states(mgr, ids)[State.COMPLETED] < 400 and time.monotonic() < deadline:
            peak = max(peak, len(worker_pids(pool.pid)))
            time.sleep(0.2)
        assert states(mgr, ids) == {State.COMPLETED: 400}
        wait_for(lambda: len(worker_pids(pool.pid)) == 1, timeout=60)
    finally:
        (err,) = stop(pool)
    assert peak >= 3, f"grew only to {peak} workers"
    # scaling is routine: logged at INFO, so the default (warning) level shows none of it
    assert "autoscale" not in err


def test_a_job_no_worker_could_hold_the_tags_of_is_refused_at_enqueue(mgr: QueueManager,
                                                                     ledger: str) -> None:
    from taskqueue.errors import ConfigError

    seven = [f"t{i}" for i in range(7)]
    with pytest.raises(ConfigError, match="7 capability tags, but a worker holds at most 6"):
        t.where.push([ledger], requires=seven)
    for bad in ("eu+gpu", "gpu,eu", "two words", "a@b"):  # (an empty one: jobs.names)
        with pytest.raises(ConfigError, match="can never be held by a worker"):
            t.where.push([ledger], requires=[bad])
    assert mgr.driver.count(JobFilter()) == 0, "nothing refused was stored"
    six = mgr.require(t.where.push([ledger], requires=seven[:6]))
    assert six.queue_name == "default@" + "+".join(seven[:6])
    assert mgr.require(t.where.push([ledger], requires="gpu")).queue_name == "default@gpu"


def test_priority_aging_lifts_starving_jobs(mgr: QueueManager) -> None:
    from taskqueue.cluster.aging import age_priorities

    old = t.add.push([1, 1], priority=1)
    time.sleep(1.2)
    fresh = t.add.push([2, 2], priority=1)
    assert age_priorities(mgr.driver, after=1.0) == 1
    assert mgr.get(old).priority == 2 and mgr.get(fresh).priority == 1  # type: ignore
    for _ in range(30):
        age_priorities(mgr.driver, after=1.0, cap=20)
    assert mgr.get(old).priority == 20, "capped"  # type: ignore[union-attr]


def test_priority_aging_runs_at_its_interval_through_the_cli(mgr: QueueManager, url: str,
                                                            ledger: str) -> None:
    """`--priority-aging 1` raises a starved job by one a second: from 15 it reaches URGENT
    (20) after about 5 s and runs before the URGENT jobs still queued (a 5-s pass would take
    25 s, after the 15 s of URGENT work had drained)."""
    starved = t.mark.push([ledger], priority=15)
    urgent = mgr.push_many([t.mark.call([ledger], {"sleep": 0.5}, priority=20)
                            for _ in range(30)])
    worker = cli("--url", url, "work", *APP, "--sleep=0.1", "--prefetch=1",
                 "--priority-aging=1")
    try:
        wait_for(lambda: starved in [line[0] for line in ledger_lines(ledger)], timeout=60)
        order = [line[0] for line in ledger_lines(ledger)]
    finally:
        stop(worker)
    after = len(urgent) - order.index(starved)  # URGENT jobs not yet started when it ran
    assert after >= 5, f"the starved job ran with only {after} of 30 URGENT jobs left"
    assert mgr.require(starved).priority == 20


def test_weighted_and_strict_queue_order(mgr: QueueManager, url: str, ledger: str) -> None:
    from taskqueue import Worker, WorkerOptions

    low = [t.where.push([ledger], queue="low") for _ in range(3)]
    high = [t.where.push([ledger], queue="high") for _ in range(3)]
    worker = Worker(mgr, WorkerOptions(queues=["high", "low"], strict=True, prefetch=1))
    for _ in range(6):
        worker.run_once()
    order = [line[0] for line in ledger_lines(ledger)]
    assert order == high + low
    assert worker.plan.weighted is False
    weighted = Worker(mgr, WorkerOptions(queues=["a:5", "b:1"]))
    assert weighted.plan.weighted and weighted.queues == ["a", "b"]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_per_tenant_quota_holds_across_nodes(mgr: QueueManager, url: str, ledger: str) -> None:
    """Two nodes of 2 workers x 2 threads; tenant "big" is limited to 2 jobs at once across
    all of them, tenant "small" to 3; a quota holds jobs back, it never fails them."""
    nodes = [node(url, name, "--workers=2", "--concurrency=2") for name in ("n1", "n2")]
    try:
        # Both nodes' workers run before any job exists: on a loaded machine the first node
        # up could otherwise finish all 21 before the second one starts.
        wait_for(lambda: len(mgr.driver.registry_list("worker")) == 4, timeout=60)
        big = [t.span.push([ledger, "big", 0.2], concurrency=2, rate_key="tenant")
               for _ in range(12)]
        small = [t.span.push([ledger, "small", 0.2], concurrency=3, rate_key="tenant")
                 for _ in range(9)]
        wait_for(lambda: states(mgr, big + small) == {State.COMPLETED: 21}, timeout=120)
    finally:
        stop(*nodes)
    rows = [line.split() for line in Path(ledger).read_text().splitlines()]
    by_tenant: dict[str, list[tuple[float, float]]] = {}
    for _job, tenant, start, end, _node in rows:
        by_tenant.setdefault(tenant, []).append((float(start), float(end)))
    assert max_overlap(by_tenant["big"]) <= 2
    assert max_overlap(by_tenant["small"]) <= 3
    assert {r[4] for r in rows} == {"n1", "n2"}, "both nodes worked"
    assert all(r.attempts == 1 for r in mgr.search(JobFilter(ids=tuple(big + small),
                                                             limit=100)))
