"""Opening a store for a client: the codec its settings describe, the schema check of the
read-only users, and whether a driver can join the caller's transaction."""

from __future__ import annotations

from taskqueue.codec import Codec, KeyRing
from taskqueue.config import Settings
from taskqueue.drivers import Driver
from taskqueue.errors import ConfigError


def codec_from(settings: Settings) -> Codec:
    ring = KeyRing.from_strings(settings.encryption_key, settings.encryption_previous_keys)
    return Codec(ring if ring.enabled else None, max_payload=settings.max_payload)


def check_schema(driver: Driver, *, replica: bool = False) -> None:
    """Refuse a store that lacks schema versions this code needs (read-only users never
    migrate: they say so instead)."""
    missing = driver.missing_migrations()
    if missing:
        where = "the primary store (the replica follows it)" if replica else "this store"
        raise ConfigError(
            f"the {driver.name} store's schema is behind this taskqueue (migrations "
            f"{', '.join(map(str, missing))} not applied): run `taskqueue migrate` against "
            f"{where}, or start a worker, which migrates")


def check_transactional(driver: Driver) -> None:
    """``connection=`` needs a driver whose push takes one (SQLite, PostgreSQL, MySQL)."""
    import inspect

    if "connection" not in inspect.signature(driver.push).parameters:
        raise ConfigError(f"push(connection=...) writes the job in your own database "
                          f"transaction; the {driver.name} backend has none (use SQLite, "
                          "PostgreSQL or MySQL, or push after your commit)")
