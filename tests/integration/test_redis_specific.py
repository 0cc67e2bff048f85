"""Redis-only behaviour: durability check, wake-up latency, key layout, outages and restarts.

Tests that kill, restart or reconfigure a server start their OWN ``redis-server`` on a spare
port in a temporary directory and stop it (by pid) at the end; the shared server on 6379 is
only used through ``tests.backends.redis_url``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.drivers import _redis_keys as rk
from taskqueue.drivers.redis import RedisDriver
from taskqueue.errors import ConfigError, Conflict, DriverUnavailable
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from tests.backends import redis_url

redis = pytest.importorskip("redis")
REDIS_SERVER = shutil.which("redis-server")
needs_server = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
LOGGER = "taskqueue.drivers.redis"


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A private redis-server process (same port and directory across restarts)."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = spare_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--daemonize", "no", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    admin.ping()
                    return
                except redis.RedisError:  # refused, or still loading the AOF
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            admin.close()

    def kill(self) -> None:
        """SIGKILL, by pid: no shutdown save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def own_redis(tmp_path: Path, *args: str) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / f"redis-{uuid7()[:8]}", *args)
    try:
        server.start()
        yield server
    finally:
        server.kill()


NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


# -- start-up durability check ---------------------------------------------------------------

@needs_server
def test_eviction_policy_warns_and_strict_refuses(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    args = ("--save", "", "--appendonly", "yes", "--maxmemory-policy", "allkeys-lru")
    with own_redis(tmp_path, *args) as server:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        driver = open_driver(server.url)
        driver.close()
        warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert any("allkeys-lru" in m and "noeviction" in m for m in warnings), warnings
        assert not any("persistence" in m for m in warnings), "AOF is on"
        with pytest.raises(ConfigError, match="maxmemory-policy"):
            open_driver(server.url + "?strict=true")
        with pytest.raises(ConfigError, match="strict"):
            open_driver(server.url, strict=True)


@needs_server
def test_persistence_off_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with own_redis(tmp_path, *NO_PERSISTENCE) as server:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        open_driver(server.url).close()
        assert any("persistence is off" in r.getMessage() for r in caplog.records)
        with pytest.raises(ConfigError, match="persistence"):
            open_driver(server.url + "?strict=1")


@needs_server
def test_durable_server_passes_strict_and_disabled_config_is_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with own_redis(tmp_path, "--appendonly", "yes", "--save", "") as server:
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        open_driver(server.url + "?strict=true").close()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with own_redis(tmp_path, *NO_PERSISTENCE, "--rename-command", "CONFIG", "") as server:
        open_driver(server.url + "?strict=true").close()   # managed Redis: cannot tell
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("CONFIG GET is not available" in r.getMessage() for r in caplog.records)


# -- waking and layout -------------------------------------------------------------------------

def test_wake_up_latency(tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:
        waiter, producer = open_driver(url), open_driver(url)
        try:
            for queues, target in ((["default"], "default"), (["a", "b", "c"], "c")):
                pushed_at: list[float] = []

                def produce(queue: str = target, log: list[float] = pushed_at) -> None:
                    log.append(time.monotonic())
                    producer.push([new(queue_name=queue)])

                timer = threading.Timer(0.4, produce)
                timer.start()
                waiter.wait_for_work(queues, 10)
                woke_at = time.monotonic()
                timer.join()
                assert pushed_at and woke_at - pushed_at[0] < 0.5, woke_at - pushed_at[0]
                assert len(waiter.reserve("w", queues, 10, 30)) == 1
        finally:
            waiter.close()
            producer.close()


def test_wake_tokens_do_not_cause_idle_spins(tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            for _ in range(5):
                driver.push([new()])
            while driver.reserve("w", ["default"], 2, 30):
                pass
            started = time.monotonic()
            driver.wait_for_work(["default"], 0.5)
            assert time.monotonic() - started >= 0.4, "a drained queue leaves no stale wake-ups"
        finally:
            driver.close()


@needs_server
def test_every_key_has_the_prefix_and_queue_keys_a_hash_tag(tmp_path: Path) -> None:
    with own_redis(tmp_path, *NO_PERSISTENCE) as server:
        driver = open_driver(server.url + "?prefix=tq_layout")
        try:
            parent = new(queue_name="emails", idempotency_key="k")
            child = new(queue_name="reports", dependencies=(parent.id,), delay_seconds=30)
            driver.push([parent, child, new(queue_name="emails", delay_seconds=60)])
            job = driver.reserve("w", ["emails"], 1, 30)[0]
            driver.heartbeat("w", [job.token], 30)
            driver.lock_acquire("leader", "n1", 30)
            driver.counter_incr("rate", 1, 30)
            driver.registry_put("worker", "w", {"id": "w"}, 30)
            driver.wait_for_work(["emails"], 0.05)
            keys = {k.decode() for k in redis.Redis(port=server.port).keys("*")}
        finally:
            driver.close()
    assert keys and all(k.startswith("tq_layout:") for k in keys), keys
    global_keys = {"tq_layout:queues", "tq_layout:schema", "tq_layout:lock:leader",
                   "tq_layout:counter:rate"}
    assert global_keys <= keys
    assert "tq_layout:{emails}:idem" in keys, "idempotency claims live in their queue's slot"
    for queue in ("emails", "reports"):
        queue_keys = [k for k in keys if k.startswith(f"tq_layout:{{{queue}}}:")]
        assert queue_keys, queue
        slots = {redis.crc.key_slot(k.encode()) for k in queue_keys}
        assert slots == {redis.crc.key_slot(queue.encode())}, "one slot per queue"
    untagged = keys - global_keys
    assert all("{" in k and "}" in k for k in untagged), untagged


# -- semantics only Redis needs to prove --------------------------------------------------------

def test_cross_queue_dependencies_and_priority(tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            parent = new(queue_name="a")
            child = new(queue_name="b", dependencies=(parent.id,))
            driver.push([parent, child])
            assert [j.id for j in driver.reserve("w", ["a", "b"], 10, 30)] == [parent.id]
            assert driver.complete(driver.get(parent.id).token)  # type: ignore[union-attr]
            late = new(queue_name="c", dependencies=(parent.id,))
            driver.push([late])
            got = {j.id for j in driver.reserve("w", ["b", "c"], 10, 30)}
            assert got == {child.id, late.id}
            low, high = new(queue_name="a", priority=1), new(queue_name="b", priority=20)
            driver.push([low, high])
            assert [j.id for j in driver.reserve("w", ["a", "b"], 1, 30)] == [high.id]
        finally:
            driver.close()


def test_reserve_still_checks_the_waits_of_a_job_with_dependencies(tmp_path: Path) -> None:
    """Reserve looks at waits:<id> only for jobs stored with dependencies (others cannot have
    any): a job with an unmet parent found in the ready set is still not reserved, and a job
    without dependencies is."""
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, RedisDriver)
        try:
            parent, plain = new(), new()
            child = new(dependencies=(parent.id,))
            driver.push([parent, child, plain])
            raw = redis.Redis.from_url(url.split("?")[0])
            ready = driver.keys.sub("default", "ready")
            raw.zadd(ready, {child.id: 0})  # as if an index had gone wrong
            raw.close()
            got = {j.id for j in driver.reserve("w", ["default"], 10, 30)}
            assert got == {parent.id, plain.id}
            assert driver.get(child.id).state == State.PENDING  # type: ignore[union-attr]
        finally:
            driver.close()


def test_parked_child_is_repaired_after_a_lost_unblock(tmp_path: Path) -> None:
    """A crash between a parent's completion and the unblocking of a child in another queue
    leaves the child parked; recover_expired releases it."""
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, RedisDriver)
        try:
            parent = new(queue_name="a")
            child = new(queue_name="b", dependencies=(parent.id,))
            driver.push([parent, child])
            job = driver.reserve("w", ["a"], 1, 30)[0]
            answer = driver._run("complete", "a", [job.id, job.lease_epoch, ""])  # no unblock
            assert answer[0] == 1
            assert driver.reserve("w", ["b"], 10, 30) == []
            driver.recover_expired()
            assert [j.id for j in driver.reserve("w", ["b"], 10, 30)] == [child.id]
        finally:
            driver.close()


def test_retried_push_is_idempotent_but_a_different_job_conflicts(tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            job = new()
            assert driver.push([job]) == [job.id]
            assert driver.push([job]) == [job.id], "a push retried after a lost reply"
            with pytest.raises(Conflict):
                driver.push([new(id=job.id, payload=b"other")])
            assert driver.count(JobFilter()) == 1
        finally:
            driver.close()


def test_failed_parent_settles_dependents_in_other_queues(tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            parent, sibling = new(queue_name="a"), new(queue_name="a")
            doomed = new(queue_name="b", dependencies=(parent.id,))
            both = new(queue_name="c", dependencies=(parent.id, sibling.id))
            local = new(queue_name="a", dependencies=(parent.id,))
            driver.push([parent, sibling, doomed, both, local])
            jobs = {j.id: j for j in driver.reserve("w", ["a"], 2, 30)}
            assert driver.fail(jobs[parent.id].token, "boom", None)
            released = driver.dependency_failed(parent.id, cancel=False, reason="run anyway")
            assert set(released) == {local.id, doomed.id}
            assert driver.dependency_failed(parent.id, False, "again") == [], "once per edge"
            assert [j.id for j in driver.reserve("w", ["b", "c"], 10, 30)] == [doomed.id]
            assert driver.reserve("w", ["c"], 10, 30) == [], "still waits for the sibling"
            assert driver.retry(parent.id)
            again = driver.reserve_job("w", parent.id, 30)
            assert again is not None and driver.complete(again.token)
            assert driver.reserve("w", ["c"], 10, 30) == [], "an edge is satisfied only once"
            assert driver.complete(jobs[sibling.id].token)
            assert [j.id for j in driver.reserve("w", ["c"], 10, 30)] == [both.id]

            root = new(queue_name="a")
            child, mine = new(queue_name="b", dependencies=(root.id,)), new(
                queue_name="a", dependencies=(root.id,))
            driver.push([root, child, mine])
            driver.cancel(root.id, "stop")
            assert set(driver.dependency_failed(root.id, True, "upstream")) == {child.id, mine.id}
            rec = driver.get(child.id)
            assert rec is not None and rec.state == State.CANCELLED
            assert rec.exception == "upstream"
        finally:
            driver.close()


def _claims(driver: RedisDriver, queue: str = "default") -> dict[str, str]:
    raw = driver._r.hgetall(driver.keys.sub(queue, "idem"))
    return {rk.text(k): rk.text(v) for k, v in raw.items()}


def test_freed_idempotency_keys_leave_no_claims_behind(tmp_path: Path) -> None:
    """Scripts that free a key touch the job's hash only; the queue's claim goes at the next
    push of that key, or when the job is deleted or pruned."""
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, RedisDriver)
        try:
            started = new(idempotency_key="s", idempotency_mode="started")
            window = new(queue_name="w", idempotency_key="win", idempotency_mode="window",
                         idempotency_window=0.2)
            driver.push([started, window])
            rec = driver.reserve_job("w", started.id, 30)
            assert rec is not None and rec.idempotency_key is None, "as the SQL drivers NULL it"
            assert driver.complete(rec.token)
            assert driver.delete(started.id)
            assert "s" not in _claims(driver)

            job = driver.reserve("w", ["w"], 1, 30)[0]
            assert driver.complete(job.token)
            held = driver.get(window.id)
            assert held is not None and held.idempotency_key == "win", "kept during the window"
            time.sleep(0.3)
            fresh = new(queue_name="w", idempotency_key="win", idempotency_mode="window")
            assert driver.push([fresh]) == [fresh.id]
            assert _claims(driver, "w")["win"] == fresh.id
            old = driver.get(window.id)
            assert old is not None and old.idempotency_key is None
            with redis_url(tmp_path) as other_url:    # a transfer keeps both records
                other = open_driver(other_url)
                try:
                    records = [r for r in (driver.get(fresh.id), old) if r is not None]
                    assert other.restore(records) == 2
                finally:
                    other.close()
            assert driver.prune(0, 0) == 1 and _claims(driver, "w") == {"win": fresh.id}
        finally:
            driver.close()


def test_jobs_stored_before_idempotency_modes_keep_their_keys(tmp_path: Path) -> None:
    """A job hash without ``idempotency_mode`` (written before the modes existed) is "exists"."""
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, RedisDriver)
        try:
            legacy = new(idempotency_key="k", idempotency_mode="finished")
            plain = new(idempotency_key="p")
            driver.push([legacy, plain])
            job_key = driver.keys.job("default", legacy.id)
            driver._r.hdel(job_key, "idempotency_mode")
            assert driver._r.hget(driver.keys.job("default", plain.id),
                                  "idempotency_mode") is None, "exists is the default"
            for rec in driver.reserve("w", ["default"], 2, 30):
                assert driver.complete(rec.token)
            assert driver.push([new(idempotency_key="k")]) == [legacy.id]
            assert driver.push([new(idempotency_key="p")]) == [plain.id]
        finally:
            driver.close()


# -- outages -----------------------------------------------------------------------------------

def test_unreachable_server_is_driver_unavailable() -> None:
    port = spare_port()
    started = time.monotonic()
    with pytest.raises(DriverUnavailable) as info:
        open_driver(f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "unavailable" in message, message
    assert "s3cret" not in message
    assert time.monotonic() - started < 10


@needs_server
def test_restart_with_aof_keeps_every_job_and_completion(tmp_path: Path) -> None:
    with own_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                   "--save", "") as server:
        driver = open_driver(server.url + "?strict=true")
        try:
            jobs = [new(priority=i % 3) for i in range(30)]
            assert driver.push(jobs) == [j.id for j in jobs]
            done = set()
            for rec in driver.reserve("w", ["default"], 10, 30):
                assert driver.complete(rec.token, f'"{rec.id}"')
                done.add(rec.id)
            running = driver.reserve("w", ["default"], 5, 30)

            server.kill()
            for call in (lambda: driver.push([new()]), lambda: driver.get(jobs[0].id),
                         lambda: driver.reserve("w", ["default"], 1, 30)):
                with pytest.raises(DriverUnavailable, match="unavailable"):
                    call()

            server.start()
            for job in jobs:
                found = driver.get(job.id)
                assert found is not None, job.id
                if job.id in done:
                    assert found.state == State.COMPLETED and found.result == f'"{job.id}"'
            assert driver.count(JobFilter(states=(State.COMPLETED,))) == len(done)
            assert driver.count(JobFilter(states=(State.PROCESSING,))) == len(running)
            for rec in running:      # the leases survived, so their holders can still finish
                assert driver.complete(rec.token)
            while batch := driver.reserve("w", ["default"], 10, 30):
                for rec in batch:
                    assert driver.complete(rec.token)
            assert driver.count(JobFilter(states=(State.COMPLETED,))) == len(jobs)
        finally:
            driver.close()


@needs_server
def test_restart_without_persistence_loses_everything(tmp_path: Path) -> None:
    """A documented limitation, not a bug: the start-up check warns about it (and refuses it
    with strict=true)."""
    with own_redis(tmp_path, *NO_PERSISTENCE) as server:
        driver = open_driver(server.url)
        try:
            jobs = [new() for _ in range(5)]
            driver.push(jobs)
            server.kill()
            server.start()
            assert driver.count(JobFilter()) == 0
            assert all(driver.get(j.id) is None for j in jobs)
            assert driver.stats() == {}
            assert driver.reserve("w", ["default"], 10, 30) == []
            after = new()
            driver.push([after])   # the driver named "default" in the queue set before: again
            assert driver.get(after.id) is not None and driver.count(JobFilter()) == 1
            server.kill()
            server.start()
            first = new()
            driver.push([first])   # the push itself meets the forgotten scripts
            assert driver.get(first.id) is not None and driver.stats()["default"].counts[
                State.PENDING] == 1
        finally:
            driver.close()


# -- key layout versions ---------------------------------------------------------------------

def test_a_layout_1_store_is_upgraded_and_keeps_its_idempotency_claims(tmp_path: Path) -> None:
    """Layout 1 kept an id index and the idempotency claims in two global hashes (a push
    spanned slots); opening such a store moves each claim into its job's queue."""
    with redis_url(tmp_path) as url:
        driver = open_driver(url)
        assert isinstance(driver, RedisDriver)
        prefix = driver.keys.prefix
        try:
            held = new(queue_name="mail", idempotency_key="order-7")
            plain = new()
            driver.push([held, plain])
            r = driver._r   # rewrite the store as layout 1 wrote it
            r.delete(driver.keys.sub("mail", "idem"))
            r.hset(f"{prefix}:idem", "order-7", held.id)
            r.hset(f"{prefix}:jobs", mapping={held.id: "mail", plain.id: "default"})
            r.set(driver.keys.schema, 1)
        finally:
            driver.close()
        again = open_driver(url)
        try:
            assert isinstance(again, RedisDriver)
            r = again._r
            assert r.get(again.keys.schema) == b"3"
            assert not r.exists(f"{prefix}:idem") and not r.exists(f"{prefix}:jobs")
            assert again.push([new(queue_name="mail", idempotency_key="order-7")]) == [held.id]
            assert again.get(plain.id) is not None and again.get(held.id) is not None
            assert again.migrate() == [], "nothing left to do"
            r.set(again.keys.schema, 4)
            with pytest.raises(ConfigError, match="layout 4, newer"):
                open_driver(url)
        finally:
            again.close()


def test_a_key_prefix_may_carry_one_hash_tag_and_nothing_else_with_braces() -> None:
    assert rk.Keys("{shop}").tagged and rk.Keys("app:{shop}:jobs").queue("q").startswith("app:")
    for bad in ("", "a{b", "{}", "{a}{b}", "a}"):
        with pytest.raises(ConfigError, match="invalid redis key prefix"):
            rk.Keys(bad)


@needs_server
def test_durability_warning_once_per_taskqueue_work_and_never_when_reading(
        tmp_path: Path) -> None:
    """Issue 19 item 13: the supervisor warns once (its workers open the store without
    migrating, so without the check); read-only commands never warn."""
    import sys

    with own_redis(tmp_path, *NO_PERSISTENCE) as server:
        env = {**os.environ, "TASKQUEUE_URL": server.url + "?prefix=tq_warn"}
        root = Path(__file__).resolve().parents[2]

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "taskqueue", *args], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=120)

        pushed = cli("test", "--jobs=3")
        assert pushed.returncode == 0 and pushed.stderr.count("persistence is off") == 1
        work = cli("work", "--workers=2", "--stop-when-empty")
        assert work.returncode == 0, work.stderr[-2000:]
        assert work.stderr.count("persistence is off") == 1, work.stderr
        for reader in (("stats", "--json"), ("jobs", "list"), ("workers",)):
            done = cli(*reader)
            assert done.returncode == 0, done.stderr
            assert "persistence is off" not in done.stderr, reader


# -- reads that stay cheap on big stores ---------------------------------------------------------

def _calls(admin: object) -> Counter[str]:
    stats = admin.info("commandstats")  # type: ignore[attr-defined]
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


@needs_server
def test_stats_and_error_search_do_not_read_every_job(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 item 5: stats reads the state sets' sizes and a bounded sample of waiting jobs;
    an error search reads each candidate's few filter fields and only the matches whole."""
    with own_redis(tmp_path, *NO_PERSISTENCE) as server:
        driver = open_driver(server.url + "?prefix=tq_big")
        admin = redis.Redis(port=server.port)
        try:
            jobs = [new(priority=p) for p in (1, 5, 10, 20) * 150]
            driver.push(jobs)
            exact = driver.stats()["default"]
            assert exact.avg_priority == 9.0 and exact.counts[State.PENDING] == 600
            monkeypatch.setattr(rk, "PRIORITY_SAMPLE", 100)
            admin.config_resetstat()
            sampled = driver.stats()["default"]
            calls = _calls(admin)
            assert sampled.counts[State.PENDING] == 600 and sampled.avg_priority is not None
            assert calls["hget"] == 100, "only the sample's priorities are read"
            assert sampled.oldest_ready_at == exact.oldest_ready_at

            needles = set()
            for i, job in enumerate(driver.reserve("w", ["default"], 40, 30)):
                if i % 4 == 0:
                    needles.add(job.id)
                assert driver.fail(job.token, "needle in a haystack" if i % 4 == 0
                                   else "something else", None)
            admin.config_resetstat()
            found = driver.search(JobFilter(exception_contains="NEEDLE", limit=100))
            calls = _calls(admin)
            assert {j.id for j in found} == needles and len(needles) == 10
            assert calls["hgetall"] == 10, "only the matches are read whole"
            assert driver.count(JobFilter(exception_contains="needle")) == 10
        finally:
            admin.close()
            driver.close()


@pytest.mark.parametrize("query,complaint", [
    ("prefx=shop", "prefx"),              # a misspelt option goes to redis-py, which refuses it
    ("strict=ture", "strict"),            # a misspelt boolean must not mean "not strict"
])
def test_a_bad_url_option_is_a_clear_error_with_exit_2(tmp_path: Path, query: str,
                                                       complaint: str) -> None:
    import sys

    with redis_url(tmp_path) as url:
        for args in (("stats",), ("work", "--stop-when-empty")):
            proc = subprocess.run([sys.executable, "-m", "taskqueue", "--url", f"{url}&{query}",
                                   *args], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2, proc.stderr[-2000:]
            assert "Traceback" not in proc.stderr and complaint in proc.stderr, proc.stderr
        with pytest.raises(ConfigError, match=complaint):
            open_driver(f"{url}&{query}")
