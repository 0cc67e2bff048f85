"""Fresh, isolated stores for tests: one URL per backend, each with its own database/prefix.

A backend whose server cannot be reached is skipped with the reason, except under CI
(``CI=true``), where that is a failure: CI must prove every backend.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ALL_BACKENDS = ("sqlite", "postgres", "mysql", "redis", "files")


def unavailable(backend: str, reason: object) -> None:
    message = f"{backend} server not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: every backend must be tested)", pytrace=False)
    pytest.skip(message)


def _name() -> str:
    return "tq_" + uuid.uuid4().hex[:12]


@contextlib.contextmanager
def sqlite_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'queue.db'}"


@contextlib.contextmanager
def files_url(tmp: Path) -> Iterator[str]:
    yield f"file:///{tmp / 'store'}"


@contextlib.contextmanager
def postgres_url(tmp: Path) -> Iterator[str]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        unavailable("postgres", exc)
    schema = _name()
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{PG_ADMIN}?schema={schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def pgbouncer_url(tmp: Path) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, reached through a PgBouncer in transaction
    pooling mode (``pooler=transaction``: no prepared statements; idle workers poll)."""
    from tests.pgbouncer import pgbouncer_port

    with postgres_url(tmp) as direct:
        try:
            port = pgbouncer_port(PG_ADMIN)
        except RuntimeError as exc:
            unavailable("pgbouncer", exc)
        parts = urlsplit(direct)
        yield urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{port}",
                                        query=parts.query + "&pooler=transaction"))


@contextlib.contextmanager
def mysql_url(tmp: Path) -> Iterator[str]:
    try:
        import pymysql

        admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                                connect_timeout=3, autocommit=True)
    except Exception as exc:  # noqa: BLE001
        unavailable("mysql", exc)
    database = _name()
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
        yield f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{database}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()


@contextlib.contextmanager
def redis_url(tmp: Path) -> Iterator[str]:
    try:
        import redis

        admin = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        admin.ping()
    except Exception as exc:  # noqa: BLE001
        unavailable("redis", exc)
    prefix = _name()
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        keys = list(admin.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            admin.delete(*keys)
        admin.close()


@contextlib.contextmanager
def redis_cluster_url(tmp: Path) -> Iterator[str]:
    """A fresh prefix on this process's local three-master Redis Cluster (``tests.redis_cluster``,
    started on first use), reached with ``redis+cluster://``; its keys are deleted after."""
    import redis

    from tests import redis_cluster

    try:
        base = redis_cluster.shared().url
    except Exception as exc:  # noqa: BLE001 - no redis-server, or it would not start
        unavailable("redis-cluster", exc)
    admin = redis.RedisCluster.from_url(base.replace("redis+cluster", "redis", 1))
    prefix = _name()
    try:
        yield f"{base}?prefix={prefix}"
    finally:
        for key in list(admin.scan_iter(match=f"{prefix}*", count=1000)):
            admin.delete(key)
        admin.close()


URLS: dict[str, Callable[[Path], contextlib.AbstractContextManager[str]]] = {
    "sqlite": sqlite_url,
    "postgres": postgres_url,
    "pgbouncer": pgbouncer_url,
    "redis-cluster": redis_cluster_url,
    "mysql": mysql_url,
    "redis": redis_url,
    "files": files_url,
}


def implemented_backends() -> list[str]:
    """Backends whose driver module exists (a backend under construction is left out)."""
    import importlib.util

    from taskqueue.drivers import SCHEMES

    modules = {"sqlite": "sqlite", "postgres": "postgresql", "mysql": "mysql",
               "redis": "redis", "files": "file"}
    return [b for b in ALL_BACKENDS
            if importlib.util.find_spec(SCHEMES[modules[b]][0]) is not None]
