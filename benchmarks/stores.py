"""Fresh, isolated stores for one measurement, made and dropped by the orchestrator.

PostgreSQL and MariaDB: a database of our own per measurement (dropped after). Redis: a
redis-server of our own per measurement, on a spare port, without persistence like the
installed one (``scale_servers.redis``), stopped after it: every library's keys are then the
measurement's alone, and nothing is deleted from the shared server (which other people's tests
use; the competitors' keys cannot all be given a prefix). SQLite and files: a temporary
directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("BENCH_PG_DB", "test")
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))


def _pg_dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


def check(backend: str) -> str | None:
    """None when the backend's server answers, else the reason it cannot be used."""
    try:
        if backend == "postgres":
            import psycopg

            psycopg.connect(_pg_dsn(PG_ADMIN_DB), connect_timeout=3).close()
        elif backend == "mysql":
            import pymysql

            pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                            connect_timeout=3).close()
        elif backend == "redis" and shutil.which("redis-server") is None:
            return "redis-server not installed (each Redis measurement starts its own)"
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{backend} server not reachable: {type(exc).__name__}: {exc}"
    return None


def pg_commit_ms(dsn: str, commits: int = 50) -> float:
    """The median time of a one-row INSERT committed on its own (autocommit) in database
    ``dsn``: what the server's WAL flush costs a durable commit at this moment. Every durable
    PostgreSQL enqueue pays it once, and an enqueue-to-start twice (the push, then the
    reservation), whatever the library; the disk is shared, so it varies during a run."""
    import statistics
    import time

    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_commit_probe (x int)")
        times = []
        for i in range(commits):
            start = time.perf_counter()
            conn.execute("INSERT INTO bench_commit_probe VALUES (%s)", (i,))
            times.append(time.perf_counter() - start)
        conn.execute("DROP TABLE bench_commit_probe")
    return statistics.median(times) * 1000


@contextlib.contextmanager
def fresh_store(backend: str) -> Iterator[dict[str, Any]]:
    token = uuid.uuid4().hex[:10]
    tmp = tempfile.mkdtemp(prefix=f"bench-{backend}-")
    info: dict[str, Any] = {"backend": backend, "queue": f"bench_{token}",
                            "prefix": f"bench{token}", "tmp": tmp, "redis_url": None,
                            "sqlite_path": os.path.join(tmp, "queue.db"),
                            "files_dir": os.path.join(tmp, "jobs")}
    db = f"bench_{token}"
    admin: Any = None
    servers = contextlib.ExitStack()
    try:
        if backend == "postgres":
            import psycopg

            admin = psycopg.connect(_pg_dsn(PG_ADMIN_DB), autocommit=True)
            admin.execute(f'CREATE DATABASE "{db}"')
            info["pg_dsn"] = _pg_dsn(db)
            info["pg_parts"] = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "db": db}
        elif backend == "mysql":
            import pymysql

            admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                                    autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{db}`")
            info["mysql_url"] = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}"
        elif backend == "redis":
            from benchmarks.scale_servers import redis

            server = servers.enter_context(redis())
            info["redis_url"] = server.url.split("?")[0]
        yield info
    finally:
        try:
            if backend == "postgres" and admin is not None:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                admin.close()
            elif backend == "mysql" and admin is not None:
                with admin.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
                admin.close()
        finally:
            servers.close()
            shutil.rmtree(tmp, ignore_errors=True)
