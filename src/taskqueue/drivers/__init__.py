"""Backends. ``open_driver`` is the only place that names a concrete driver, imported lazily."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from taskqueue.drivers.base import (
    CompletesAndReserves,
    Driver,
    HeartbeatResult,
    JobFilter,
    PushesRuns,
    QueueStats,
    WarmsUp,
)
from taskqueue.drivers.replica import ReplicaReads
from taskqueue.errors import ConfigError

__all__ = ["CompletesAndReserves", "Driver", "HeartbeatResult", "JobFilter", "PushesRuns",
           "QueueStats", "open_driver", "preload_driver", "ReplicaReads", "SCHEMES", "WarmsUp"]

#: URL scheme -> (module, class). Modules are imported only when used.
SCHEMES: dict[str, tuple[str, str]] = {
    "sqlite": ("taskqueue.drivers.sqlite", "SQLiteDriver"),
    "postgresql": ("taskqueue.drivers.postgres", "PostgresDriver"),
    "postgres": ("taskqueue.drivers.postgres", "PostgresDriver"),
    "mysql": ("taskqueue.drivers.mysql", "MySQLDriver"),
    "mariadb": ("taskqueue.drivers.mysql", "MySQLDriver"),
    "redis": ("taskqueue.drivers.redis", "RedisDriver"),
    "rediss": ("taskqueue.drivers.redis", "RedisDriver"),
    "redis+cluster": ("taskqueue.drivers.redis", "RedisDriver"),
    "rediss+cluster": ("taskqueue.drivers.redis", "RedisDriver"),
    "file": ("taskqueue.drivers.files", "FileDriver"),
}


def _import_driver(module_name: str) -> Any:
    """A driver's module. For Redis, redis-py's package ``__init__`` (every client it has, the
    asyncio ones too) waits until something asks for it (``_redis_import``)."""
    import importlib

    if module_name == SCHEMES["redis"][0]:
        from taskqueue.drivers._redis_import import defer_package_init

        defer_package_init()
    return importlib.import_module(module_name)


def open_driver(url: str, **options: Any) -> Driver:
    """Connect to the store named by ``url`` (``sqlite:///storage/queue.db``, ``redis://…``)
    and migrate it (``migrate=False``: leave its schema alone; see ``missing_migrations``)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(sorted({s + "://" for s in SCHEMES}))
        from taskqueue.config import redact_url

        raise ConfigError(f"unsupported store URL scheme {scheme!r} in {redact_url(url)!r}; "
                          f"use {known}")
    module_name, class_name = SCHEMES[scheme]
    try:
        module = _import_driver(module_name)
    except ImportError as exc:
        extra = {"postgresql": "postgres", "postgres": "postgres", "mariadb": "mysql",
                 "rediss": "redis", "redis+cluster": "redis", "rediss+cluster": "redis"}.get(
            scheme, scheme
        )
        raise ConfigError(
            f"the {scheme} backend needs an extra package: "
            f"pip install 'taskqueue-py[{extra}]' ({exc})"
        ) from exc
    driver: Driver = getattr(module, class_name).from_url(url, **options)
    return driver


def nothing_at(url: str) -> bool:
    """Whether the store at ``url`` is plainly absent, known without opening it: a SQLite file
    or a files-backend directory that does not exist. Opening one creates it, which a command
    that only reads must not do (the driver class's ``nothing_at``; False for the others)."""
    entry = SCHEMES.get(urlsplit(url).scheme.lower())
    if entry is None:
        return False
    try:
        module = _import_driver(entry[0])
    except ImportError:
        return False
    check = getattr(getattr(module, entry[1]), "nothing_at", None)
    return bool(check is not None and check(url))


def preload_driver(url: str) -> None:
    """Import the driver module of ``url`` and do, without connecting, the work each of its
    drivers would repeat on opening (its module-level ``preload()``, if it has one). The fork
    server calls this once, so a forked worker inherits the result instead of redoing it.
    A missing extra is left for the worker to report."""
    entry = SCHEMES.get(urlsplit(url).scheme.lower())
    if entry is None:
        return
    try:
        module = _import_driver(entry[0])
    except ImportError:
        return
    warm = getattr(module, "preload", None)
    if callable(warm):
        warm()
