"""MySQL/MariaDB specifics: transactional enqueue, error messages, locking, surviving a restart.

The restart test runs its OWN throw-away MariaDB server (``mariadb-install-db`` + ``mariadbd``
on a spare port in a temp dir); the shared server on 3306 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from taskqueue.drivers import JobFilter, open_driver
from taskqueue.errors import ConfigError, DriverUnavailable
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from tests.backends import mysql_url

pymysql = pytest.importorskip("pymysql")
Q = ["default"]


def new(**kw: object) -> NewJob:
    fields: dict[str, object] = {"id": uuid7(), "name": "tests.noop", "payload": b"{}"}
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def own_connection(url: str):  # type: ignore[no-untyped-def]
    """A plain PyMySQL connection of the application's own (autocommit off, like PyMySQL's
    default), to the database the driver uses."""
    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port, user=parts.username or "root",
                           password=parts.password or "", database=parts.path.lstrip("/"),
                           cursorclass=pymysql.cursors.DictCursor)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- waking idle workers -----------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_a_push_rings_idle_workers_of_its_database_on_this_host(tmp_path: Path) -> None:
    """An idle worker polls every 5-200 ms; a push on the same host rings its doorbell, one
    per server and database (a worker of another database is not woken)."""
    with mysql_url(tmp_path) as url, mysql_url(tmp_path) as other_url:
        waiter, pusher, other = open_driver(url), open_driver(url), open_driver(other_url)
        bell, other_bell = waiter._doorbell, other._doorbell  # type: ignore[attr-defined]
        try:
            assert bell.sleep(0) is False and other_bell.sleep(0) is False   # now listening
            pusher.push([new()])
            assert bell.sleep(0) is True, "the push did not ring the idle worker"
            assert other_bell.sleep(0) is False, "another database's worker was rung"
            waiter.wait_for_work(Q, 30)   # the job is due: returns at once
        finally:
            for driver in (waiter, pusher, other):
                driver.close()


# -- transactional enqueue -------------------------------------------------------------------

def test_push_on_callers_connection_appears_only_on_commit(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        app = own_connection(url)
        try:
            job = new(payload=bytes(range(256)))  # binary payload on a connection without _binary
            with app.cursor() as cur:
                cur.execute("CREATE TABLE orders (id INT PRIMARY KEY)")
            app.begin()
            with app.cursor() as cur:
                cur.execute("INSERT INTO orders VALUES (1)")
            assert driver.push([job], connection=app) == [job.id]  # type: ignore[call-arg]
            assert driver.get(job.id) is None, "not visible before the caller commits"
            assert driver.reserve("w", Q, 10, 30) == []
            app.commit()
            rec = driver.get(job.id)
            assert rec is not None and rec.state == State.PENDING
            assert rec.payload == bytes(range(256))
            assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [job.id]
        finally:
            app.close()
            driver.close()


def test_push_on_callers_connection_vanishes_on_rollback(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        app = own_connection(url)
        try:
            parent = new()
            child = new(dependencies=(parent.id,), idempotency_key="order-7")
            app.begin()
            ids = driver.push([parent, child], connection=app)  # type: ignore[call-arg]
            assert ids == [parent.id, child.id]
            app.rollback()
            assert driver.count(JobFilter()) == 0
            assert driver.reserve("w", Q, 10, 30) == []
            again = new(idempotency_key="order-7")
            assert driver.push([again]) == [again.id], "the rolled-back key is free again"
        finally:
            app.close()
            driver.close()


# -- errors ----------------------------------------------------------------------------------

def test_unreachable_server_is_driver_unavailable() -> None:
    port = free_port()
    with pytest.raises(DriverUnavailable) as info:
        open_driver(f"mysql://root:s3cret-pw@127.0.0.1:{port}/tq?connect_timeout=2")
    message = str(info.value)
    assert f"127.0.0.1:{port}/tq" in message and "unreachable" in message
    assert "s3cret-pw" not in message


def test_missing_database_names_it(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        parts = urlsplit(url)
        missing = "tq_does_not_exist_" + uuid7()[-8:]
        with pytest.raises(ConfigError) as info:
            open_driver(parts._replace(path="/" + missing).geturl())
        assert missing in str(info.value) and "CREATE DATABASE" in str(info.value)


def test_bad_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="no database"):
        open_driver("mysql://root@127.0.0.1:3306/")
    with pytest.raises(ConfigError, match="unknown MySQL option"):
        open_driver("mysql://root@127.0.0.1:3306/x?colour=blue")


def test_sessions_share_one_tls_context_without_reading_the_ca_store(tmp_path: Path) -> None:
    """Given no TLS option, PyMySQL tries TLS without verifying the server; it used to build
    a default context, reading the system's CA store (35-50 ms of CPU), for every session
    (issue #17 goal 3: a worker's first query). One context per process now, holding no CA,
    with the same checks (none) and sessions that still work."""
    from taskqueue.drivers._mysql_pool import open_connection

    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            args = driver._connect_args  # type: ignore[attr-defined]
            first, second = open_connection(args), open_connection(args)
            try:
                assert first.ctx is second.ctx
                assert first.ctx.cert_store_stats()["x509_ca"] == 0
                assert not first.ctx.check_hostname and first.ctx.verify_mode == ssl.CERT_NONE
                for conn in (first, second):
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                        assert cur.fetchone() == (1,)
            finally:
                first.close()
                second.close()
        finally:
            driver.close()


# -- locking ---------------------------------------------------------------------------------

def test_reserve_skips_rows_locked_by_someone_else(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        app = own_connection(url)
        try:
            first, second, third = new(priority=9), new(priority=8), new(priority=7)
            driver.push([first, second, third])
            app.begin()
            with app.cursor() as cur:
                cur.execute("SELECT id FROM job_queue WHERE id = %s FOR UPDATE", (first.id,))
            got = driver.reserve("w", Q, 2, 30)  # must neither wait nor take the locked row
            assert [j.id for j in got] == [second.id, third.id]
            app.rollback()
            assert [j.id for j in driver.reserve("w", Q, 2, 30)] == [first.id]
        finally:
            app.close()
            driver.close()


def test_push_waits_for_a_parent_completing_concurrently(tmp_path: Path) -> None:
    """A child pushed while its parent's completion is in flight must not miss the wake-up:
    the dependency count is a locking read, so it waits and sees the parent completed."""
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        app = own_connection(url)
        try:
            parent = new()
            driver.push([parent])
            app.begin()  # an uncommitted completion holding the parent's row lock
            with app.cursor() as cur:
                cur.execute("UPDATE job_queue SET state = 'completed' WHERE id = %s", (parent.id,))
            child = new(dependencies=(parent.id,))
            pusher = threading.Thread(target=driver.push, args=([child],))
            pusher.start()
            pusher.join(0.5)
            assert pusher.is_alive(), "the push waits for the parent's row lock"
            app.commit()
            pusher.join(10)
            assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id]
        finally:
            app.close()
            driver.close()


def test_same_idempotency_key_from_many_threads_stores_one_job(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        results: list[str] = []
        lock = threading.Lock()

        def push() -> None:
            job_id = driver.push([new(idempotency_key="once")])[0]
            with lock:
                results.append(job_id)

        try:
            threads = [threading.Thread(target=push) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(results) == 8 and len(set(results)) == 1
            assert driver.count(JobFilter()) == 1
        finally:
            driver.close()


def test_completion_does_not_wait_for_a_child_being_pushed(tmp_path: Path) -> None:
    """Satisfying a parent's edges skips a child's edge that is not committed yet (instead of
    waiting for it, which could deadlock with the push waiting for the parent's row)."""
    with mysql_url(tmp_path) as url:
        driver = open_driver(url, read_timeout=10)
        app = own_connection(url)
        try:
            parent = new()
            driver.push([parent])
            job = driver.reserve("w", Q, 1, 30)[0]
            app.begin()  # a child's edge, inserted but not committed
            with app.cursor() as cur:
                cur.execute("INSERT INTO job_dependencies (job_id, depends_on) VALUES (%s, %s)",
                            (uuid7(), parent.id))
            started = time.monotonic()
            assert driver.complete(job.token)
            assert time.monotonic() - started < 2, "the completion did not wait for the push"
            app.rollback()
        finally:
            app.close()
            driver.close()


# -- schema upgrade --------------------------------------------------------------------------

def _version_1_store(url: str) -> None:
    """Create the schema as the first release did (migration 1 only)."""
    from taskqueue.drivers.mysql import Q as queries

    app = own_connection(url)
    try:
        with app.cursor() as cur:
            for statement in filter(str.strip, queries["migration_1"].split(";")):
                cur.execute(statement)
            cur.execute(queries["create_migrations"])
            cur.execute(queries["record_migration"], (1,))
        app.commit()
    finally:
        app.close()


def _sql_rows(url: str, sql: str, *params: object) -> list[dict[str, object]]:
    app = own_connection(url)
    try:
        with app.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        app.close()


def test_version_1_database_upgrades_with_its_jobs(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        _version_1_store(url)
        done, running, child = uuid7(), uuid7(), uuid7()
        app = own_connection(url)
        try:  # a completed parent (released already) and a running one, in the old layout
            with app.cursor() as cur:
                for job_id, job_state, waiting in ((done, "completed", 0),
                                                   (running, "pending", 0), (child, "pending", 1)):
                    cur.execute(
                        "INSERT INTO job_queue (id, payload, state, name, available_at, "
                        "created_at, updated_at, waiting_on, idempotency_key) VALUES (%s, '{}', "
                        "%s, 'tests.noop', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
                        "UTC_TIMESTAMP(6), %s, %s)", (job_id, job_state, waiting, f"key-{job_id}"))
                cur.executemany("INSERT INTO job_dependencies (job_id, depends_on) VALUES (%s, %s)",
                                [(child, done), (child, running)])
            app.commit()
        finally:
            app.close()
        driver = open_driver(url)  # migrates
        try:
            assert driver.migrate() == [], "already current"
            edges = _sql_rows(url, "SELECT depends_on, satisfied FROM job_dependencies")
            assert {e["depends_on"]: e["satisfied"] for e in edges} == {done: 1, running: 0}
            again = new(idempotency_key=f"key-{done}")
            assert driver.push([again]) == [done], "old keys keep blocking (mode 'exists')"
            job = driver.reserve("w", Q, 1, 30)[0]
            assert job.id == running and driver.complete(job.token)
            assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child]
        finally:
            driver.close()


def test_interrupted_upgrade_is_finished_by_the_next_start(tmp_path: Path) -> None:
    """MySQL commits each DDL statement: a crash can leave migration 2 half applied."""
    with mysql_url(tmp_path) as url:
        _version_1_store(url)
        app = own_connection(url)
        try:
            with app.cursor() as cur:
                from taskqueue.drivers.mysql import Q as queries

                cur.execute(queries["migration_2"].split(";")[0])  # the first ALTER only
        finally:
            app.close()
        driver = open_driver(url)
        try:
            versions = _sql_rows(url, "SELECT version FROM taskqueue_migrations ORDER BY version")
            from taskqueue.drivers.mysql import MIGRATIONS

            assert [v["version"] for v in versions] == [v for v, _ in MIGRATIONS]
            parent = new()
            child = new(dependencies=(parent.id,))
            driver.push([parent, child])
            driver.complete(driver.reserve("w", Q, 1, 30)[0].token)
            assert [j.id for j in driver.reserve("w", Q, 10, 30)] == [child.id]
        finally:
            driver.close()


def test_window_key_frees_once_on_the_store_clock(tmp_path: Path) -> None:
    with mysql_url(tmp_path) as url:
        driver = open_driver(url)
        try:
            first = new(idempotency_key="w", idempotency_mode="window", idempotency_window=30.0)
            driver.push([first])
            driver.complete(driver.reserve("w", Q, 1, 30)[0].token)
            (row,) = _sql_rows(url, "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), "
                                    "idempotency_expires_at) AS left_s FROM job_queue")
            assert 28 <= int(row["left_s"]) <= 30  # type: ignore[call-overload]
            assert driver.push([new(idempotency_key="w")]) == [first.id]
        finally:
            driver.close()


# -- a server restart ------------------------------------------------------------------------

def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
    return None


def _need(what: str) -> None:
    message = f"cannot run a private MariaDB/MySQL server: {what}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: every backend must be tested)", pytrace=False)
    pytest.skip(message)


class PrivateServer:
    """A throw-away mariadbd on a spare port, with its data in a temp dir."""

    def __init__(self, root: Path) -> None:
        server = _binary("mariadbd", "mysqld")
        install = _binary("mariadb-install-db", "mysql_install_db")
        if not server or not install:
            _need("mariadbd/mariadb-install-db not found on PATH")
        self.server, self.root = str(server), root
        self.data, self.port = root / "data", free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        done = subprocess.run(
            [str(install), "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            _need(f"mariadb-install-db failed: {done.stderr.decode()[-500:]}")

    def start(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.root / 's.sock'}",
             f"--pid-file={self.root / 'server.pid'}", "--user=root", "--skip-grant-tables",
             "--innodb-buffer-pool-size=16M", "--skip-name-resolve"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "server.log").read_text(errors="replace")[-800:]
                    raise AssertionError(f"private mariadbd did not start:\n{tail}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextlib.contextmanager
def private_server(root: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(root)
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.mark.slow
def test_driver_survives_a_server_restart(tmp_path: Path) -> None:
    with private_server(tmp_path) as server:
        admin = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE tq")
        admin.close()
        driver = open_driver(f"mysql://root@127.0.0.1:{server.port}/tq"
                             "?connect_timeout=2&read_timeout=10")
        try:
            jobs = [new() for _ in range(20)]
            assert driver.push(jobs) == [j.id for j in jobs]
            done = driver.reserve("w", Q, 5, 60)
            assert all(driver.complete(j.token, '"ok"') for j in done)

            server.kill()
            with pytest.raises(DriverUnavailable, match="unreachable"):
                driver.count(JobFilter())  # the pooled connection is dead
            with pytest.raises(DriverUnavailable, match="unreachable"):
                driver.reserve("w", Q, 1, 60)  # no server to reconnect to yet

            server.start()  # same data directory, same port
            assert driver.count(JobFilter()) == 20, "the same driver reconnects by itself"
            completed = driver.search(JobFilter(states=(State.COMPLETED,), limit=100))
            assert {j.id for j in completed} == {j.id for j in done}
            assert all(j.result == '"ok"' for j in completed)
            rest = driver.reserve("w", Q, 100, 60)
            assert {j.id for j in rest} == {j.id for j in jobs} - {j.id for j in done}
            assert all(driver.complete(j.token) for j in rest)
            assert driver.count(JobFilter(states=(State.COMPLETED,))) == 20
        finally:
            driver.close()
