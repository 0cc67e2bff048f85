"""What only the PostgreSQL driver promises: transactional enqueue, LISTEN/NOTIFY wake-ups,
schema isolation, safe concurrent migration and upgrading an existing store, the dependency
and idempotency races, and surviving a restart of the server (on a private instance this test
starts and stops itself)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from taskqueue.drivers import Driver, JobFilter, open_driver  # noqa: E402
from taskqueue.drivers.postgres import _MIGRATIONS, _queries  # noqa: E402
from taskqueue.errors import ConfigError, DriverUnavailable  # noqa: E402
from taskqueue.jobs.ids import uuid7  # noqa: E402
from taskqueue.jobs.model import JobRecord, NewJob  # noqa: E402
from taskqueue.jobs.states import State  # noqa: E402
from tests.backends import PG_ADMIN, postgres_url  # noqa: E402

Q = ["default"]


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def reserve_only(driver: Driver, job_id: str) -> JobRecord:
    """Reserve what is ready, which must be exactly ``job_id``."""
    jobs = driver.reserve("w", Q, 10, 30)
    assert [j.id for j in jobs] == [job_id]
    return jobs[0]


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with postgres_url(tmp_path) as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[Driver]:
    driver = open_driver(pg_url)
    try:
        yield driver
    finally:
        driver.close()


def waiter(
    driver: Driver, queues: list[str], timeout: float
) -> tuple[threading.Thread, list[float]]:
    """Run wait_for_work in a thread; the list receives the monotonic time it returned."""
    woke: list[float] = []

    def run() -> None:
        driver.wait_for_work(queues, timeout)
        woke.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread, woke


# -- transactional enqueue -------------------------------------------------------------------

def test_push_on_callers_connection_commits_with_it(pg: Driver) -> None:
    with psycopg.connect(PG_ADMIN) as conn:
        job = new()
        assert pg.push([job], connection=conn) == [job.id]  # type: ignore[call-arg]
        assert pg.get(job.id) is None, "invisible until the caller commits"
        conn.commit()
        rec = pg.get(job.id)
        assert rec is not None and rec.state == State.PENDING


def test_push_on_callers_connection_rolls_back_with_it(pg: Driver) -> None:
    with psycopg.connect(PG_ADMIN) as conn:
        parent = new()
        child = new(dependencies=(parent.id,), idempotency_key="k")
        with contextlib.suppress(RuntimeError), conn.transaction():
            conn.execute("CREATE TEMP TABLE orders (id int)")
            pg.push([parent, child], connection=conn)  # type: ignore[call-arg]
            raise RuntimeError("the caller's transaction fails")
        assert pg.get(parent.id) is None and pg.get(child.id) is None
        assert pg.count(JobFilter()) == 0
        again = new(idempotency_key="k")
        assert pg.push([again]) == [again.id], "the key was never taken"


def test_push_on_autocommit_connection_commits_at_once(pg: Driver) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        jobs = [new(), new()]
        pg.push(jobs, connection=conn)  # type: ignore[call-arg]
        assert pg.count(JobFilter()) == 2


def test_notify_is_delivered_only_on_commit(pg: Driver) -> None:
    with psycopg.connect(PG_ADMIN) as conn:
        thread, woke = waiter(pg, Q, 5)
        time.sleep(0.2)
        pg.push([new()], connection=conn)  # type: ignore[call-arg]
        time.sleep(0.4)
        assert not woke, "a NOTIFY inside an open transaction must not wake anyone"
        committed = time.monotonic()
        conn.commit()
        thread.join()
        assert woke and woke[0] - committed < 0.5


# -- LISTEN / NOTIFY -------------------------------------------------------------------------

def test_idle_worker_wakes_within_milliseconds(pg_url: str, pg: Driver) -> None:
    producer = open_driver(pg_url)
    try:
        thread, woke = waiter(pg, Q, 10)
        time.sleep(0.2)  # the first poll comes at 1 s: waking earlier proves the NOTIFY
        pushed = time.monotonic()
        producer.push([new()])
        thread.join()
        assert woke[0] - pushed < 0.5
    finally:
        producer.close()


def test_push_to_another_queue_does_not_wake(pg_url: str, pg: Driver) -> None:
    producer = open_driver(pg_url)
    try:
        thread, woke = waiter(pg, ["emails"], 1.5)
        started = time.monotonic()
        time.sleep(0.2)
        producer.push([new(queue_name="reports")])
        thread.join()
        assert woke[0] - started >= 1.4
    finally:
        producer.close()


# -- schemas, migrations, errors -------------------------------------------------------------

def test_schemas_are_isolated(pg_url: str, pg: Driver, tmp_path: Path) -> None:
    with postgres_url(tmp_path / "other") as other_url:
        other = open_driver(other_url)
        try:
            thread, woke = waiter(other, Q, 1.3)
            started = time.monotonic()
            pg.push([new(), new()])
            assert other.count(JobFilter()) == 0 and pg.count(JobFilter()) == 2
            thread.join()
            assert woke[0] - started >= 1.2, "a push in one schema must not wake another"
        finally:
            other.close()
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_ADMIN) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))}
        assert {"job_queue", "job_dependencies", "taskqueue_locks", "taskqueue_counters",
                "taskqueue_registry", "taskqueue_migrations"} <= tables


def test_invalid_schema_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="schema"):
        open_driver(f"{PG_ADMIN}?schema=x;drop")


def test_concurrent_first_use_migrates_once(pg_url: str) -> None:
    fresh_url = pg_url  # the schema exists but has no tables yet
    errors: list[BaseException] = []
    drivers: list[Driver] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            driver = open_driver(fresh_url)
            with lock:
                drivers.append(driver)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        assert all(d.migrate() == [] for d in drivers)
        schema = pg_url.rsplit("schema=", 1)[1]
        with psycopg.connect(PG_ADMIN) as conn:
            rows = conn.execute(f'SELECT version FROM "{schema}".taskqueue_migrations').fetchall()
        assert sorted(rows) == [(v,) for v in _MIGRATIONS]
    finally:
        for d in drivers:
            d.close()


def test_a_version_1_store_upgrades_in_place(pg_url: str) -> None:
    """A store made before migration 2: its jobs keep working, its key keeps blocking, and
    edges to dependencies already completed count as satisfied."""
    schema = pg_url.rsplit("schema=", 1)[1]
    q, table = _queries(schema), f'"{schema}".job_queue'
    done, running, child = uuid7(), uuid7(), uuid7()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(q["migration_1"])
        conn.execute(q["migrations_table"])
        conn.execute(q["record_migration"], (1,))
        for job_id, state, waiting, key in [(done, "completed", 0, None),
                                            (running, "pending", 0, "old-key"),
                                            (child, "pending", 1, None)]:
            conn.execute(f"INSERT INTO {table} (id, payload, state, name, created_at, "
                         "updated_at, available_at, waiting_on, idempotency_key) "
                         "VALUES (%s, '', %s, 'tests.noop', now(), now(), now(), %s, %s)",
                         (job_id, state, waiting, key))
        conn.execute(f'INSERT INTO "{schema}".job_dependencies (job_id, depends_on) '
                     "VALUES (%s, %s), (%s, %s)", (child, done, child, running))
    driver = open_driver(pg_url)
    try:
        assert driver.migrate() == []
        with psycopg.connect(PG_ADMIN) as conn:
            versions = conn.execute(f'SELECT version FROM "{schema}".taskqueue_migrations '
                                    "ORDER BY version").fetchall()
            edges = dict(conn.execute(f'SELECT depends_on, satisfied FROM "{schema}".'
                                      "job_dependencies WHERE job_id = %s", (child,)))
        assert versions == [(v,) for v in _MIGRATIONS]
        assert edges == {done: True, running: False}
        assert driver.push([new(idempotency_key="old-key")]) == [running], "mode 'exists'"
        job = reserve_only(driver, running)
        assert driver.push([new(idempotency_key="old-key")]) == [running]
        assert driver.complete(job.token)
        assert reserve_only(driver, child).id == child
    finally:
        driver.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_driver_unavailable_without_password() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(DriverUnavailable) as info:
        open_driver(f"postgresql://postgres:s3cret@127.0.0.1:{port}/test?connect_timeout=2")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "s3cret" not in message
    assert time.monotonic() - started < 5


# -- the dependency race ---------------------------------------------------------------------

def test_child_pushed_while_parent_completes_is_released(pg_url: str, pg: Driver) -> None:
    other = open_driver(pg_url)
    try:
        for _ in range(25):
            parent = new()
            pg.push([parent])
            (running,) = pg.reserve("w", Q, 1, 30)
            child = new(dependencies=(parent.id,))
            barrier, completed = threading.Barrier(2), []

            def finish(token=running.token, barrier=barrier, completed=completed) -> None:
                barrier.wait()
                completed.append(other.complete(token))

            thread = threading.Thread(target=finish)
            thread.start()
            barrier.wait()
            pg.push([child])
            thread.join()
            assert completed == [True]
            assert [j.id for j in pg.reserve("w", Q, 5, 30)] == [child.id]
    finally:
        other.close()


def test_concurrent_run_anyway_releases_an_edge_once(pg_url: str, pg: Driver) -> None:
    others = [open_driver(pg_url) for _ in range(4)]
    try:
        for _ in range(10):
            parent, sibling = new(), new()
            child = new(dependencies=(parent.id, sibling.id))
            pg.push([parent, sibling, child])
            jobs = {j.id: j for j in pg.reserve("w", Q, 2, 30)}
            assert pg.fail(jobs[parent.id].token, "boom", None)
            barrier = threading.Barrier(len(others))
            released: list[list[str]] = []

            def settle(driver: Driver, barrier: threading.Barrier = barrier,
                       released: list[list[str]] = released, parent_id: str = parent.id
                       ) -> None:
                barrier.wait()
                released.append(driver.dependency_failed(parent_id, False, "run anyway"))

            threads = [threading.Thread(target=settle, args=(d,)) for d in others]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert released == [[]] * len(others)
            assert pg.reserve("w", Q, 10, 30) == [], "still waits for the sibling"
            assert pg.complete(jobs[sibling.id].token)
            assert reserve_only(pg, child.id).id == child.id
    finally:
        for d in others:
            d.close()


# -- the idempotency race --------------------------------------------------------------------

def test_duplicate_whose_key_is_freed_during_the_push_is_inserted(pg: Driver) -> None:
    """The push skips the duplicate, then the key's holder is reserved (mode "started") before
    the push looks the key up: the push inserts the job after all, and never returns an id
    that does not exist."""
    first = new(idempotency_key="k", idempotency_mode="started")
    pg.push([first])
    slow = dict(pg._q)  # type: ignore[attr-defined]
    slow["notify"] = "SELECT pg_sleep(0.6), pg_notify(%s, q) FROM unnest(%s::text[]) AS q"
    pg._q = slow  # type: ignore[attr-defined]
    taken: list[str] = []

    def reserve_meanwhile() -> None:
        time.sleep(0.2)
        taken.extend(j.id for j in pg.reserve("w", Q, 10, 30))

    thread = threading.Thread(target=reserve_meanwhile)
    thread.start()
    dup = new(idempotency_key="k", idempotency_mode="started")
    ids = pg.push([dup])
    thread.join()
    assert taken == [first.id]
    assert ids == [dup.id]
    rec = pg.get(dup.id)
    assert rec is not None and rec.state == State.PENDING and rec.idempotency_key == "k"


def test_reserve_job_passes_over_a_locked_row(pg: Driver) -> None:
    job = new()
    pg.push([job])
    schema = pg.schema  # type: ignore[attr-defined]
    with psycopg.connect(PG_ADMIN) as conn:
        conn.execute(f'SELECT 1 FROM "{schema}".job_queue WHERE id = %s FOR UPDATE', (job.id,))
        started = time.monotonic()
        assert pg.reserve_job("w", job.id, 30) is None
        assert time.monotonic() - started < 1
    taken = pg.reserve_job("w", job.id, 30)
    assert taken is not None and taken.id == job.id


# -- a server restart ------------------------------------------------------------------------

class OwnPostgres:
    """A private PostgreSQL cluster in a temp dir, on a spare port."""

    def __init__(self, bindir: Path, base: Path, as_user: list[str]) -> None:
        self.bindir, self.base, self.as_user = bindir, base, as_user
        self.data, self.port = base / "data", free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-o", options,
                 "-w", "-t", "60", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the restart test must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        _unavailable("initdb not found: cannot start a private PostgreSQL")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="tq-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user for initdb")
        if not shutil.which("runuser"):
            _unavailable("running as root and runuser is missing")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = OwnPostgres(Path(initdb).parent, base, as_user)  # type: ignore[arg-type]
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_restart_loses_nothing_and_the_same_driver_reconnects(own_postgres: OwnPostgres) -> None:
    driver = open_driver(own_postgres.url)
    try:
        jobs = [new() for _ in range(40)]
        assert driver.push(jobs) == [j.id for j in jobs]
        running = driver.reserve("w", Q, 20, 300)
        done, held = running[:10], running[10:]
        for job in done:
            assert driver.complete(job.token, '"ok"')
        driver.wait_for_work(Q, 0.05)  # the LISTEN connection exists and will break too

        own_postgres.stop()
        calls = [lambda: driver.count(JobFilter()), lambda: driver.push([new()]),
                 lambda: driver.reserve("w", Q, 5, 30), lambda: driver.complete(held[0].token),
                 lambda: driver.wait_for_work(Q, 1), lambda: driver.now()]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(DriverUnavailable, match="127.0.0.1"):
                call()
            assert time.monotonic() - started < 5

        own_postgres.start()
        assert driver.count(JobFilter()) == 40, "every pushed job is still there"
        states = {j.id: j.state for j in driver.search(JobFilter(limit=100))}
        assert all(states[j.id] == State.COMPLETED for j in done)
        assert all(states[j.id] == State.PROCESSING for j in held)
        assert sum(s == State.PENDING for s in states.values()) == 20
        for job in held:  # leases survived the crash: their worker can still settle them
            assert driver.complete(job.token)

        producer = open_driver(own_postgres.url)
        try:
            thread, woke = waiter(driver, ["after"], 10)
            time.sleep(0.2)
            pushed = time.monotonic()
            producer.push([new(queue_name="after")])
            thread.join()
            assert woke[0] - pushed < 0.5, "the LISTEN connection came back too"
        finally:
            producer.close()
    finally:
        driver.close()
