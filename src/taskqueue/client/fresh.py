"""Reads on a store that has no taskqueue schema yet: an empty store, not an error.

A first-time user who runs ``taskqueue stats`` before anything was enqueued meets a database,
file, directory or key prefix nobody has migrated. Read-only commands never migrate, and an
older schema is still refused (``check_schema``); a store with no schema at all reads as an
empty one instead: no jobs, no statistics, no workers. Nothing is created: a missing SQLite
file or files directory is not even opened (opening creates it).

The store is looked at again on each read until a schema appears (a worker started meanwhile
migrated it), and from then on every verb goes to the real driver, so a long-running reader
(``metrics:serve``, a dashboard's replica) does not stay empty.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskqueue.client.store import check_schema
from taskqueue.drivers import Driver, JobFilter, QueueStats, nothing_at, open_driver
from taskqueue.drivers.base import CloseHooks, DueFilter, ErrorText, GraphNode
from taskqueue.errors import ConfigError
from taskqueue.jobs.model import Attempt, JobRecord


class FreshStoreReads(CloseHooks):
    """A Driver for readers of the store at ``url``, which had no schema when opened
    (``driver``: its open driver, or None when opening it would have created it)."""

    def __init__(self, url: str, driver: Driver | None, *, replica: bool = False) -> None:
        self.url, self._driver, self._replica = url, driver, replica
        self._ready = False
        self._lock = threading.Lock()
        self.name = driver.name if driver is not None else _scheme_name(url)

    def real(self) -> Driver | None:
        """The store's driver once it has a schema (checked to be current), else None."""
        if self._ready:
            return self._driver
        with self._lock:
            if self._driver is None:
                if nothing_at(self.url):
                    return None
                self._driver = open_driver(self.url, migrate=False)
            if self._driver.schema_absent():
                return None
            check_schema(self._driver, replica=self._replica)
            self._ready = True
            return self._driver

    def is_empty(self) -> bool:
        return self.real() is None

    def __getattr__(self, verb: str) -> Any:
        driver = self.real()
        if driver is None:
            raise ConfigError(f"the {self.name} store has no taskqueue schema yet (nothing was "
                              f"enqueued); `{verb}` needs one: run `taskqueue migrate`")
        return getattr(driver, verb)

    # -- the verbs that only read: an empty store's answers until a schema appears --------
    def get(self, job_id: str) -> JobRecord | None:
        driver = self.real()
        return None if driver is None else driver.get(job_id)

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        driver = self.real()
        return [] if driver is None else driver.search(criteria)

    def count(self, criteria: JobFilter) -> int:
        driver = self.real()
        return 0 if driver is None else driver.count(criteria)

    def estimate_count(self, criteria: JobFilter) -> int | None:
        driver = self.real()
        if driver is None:
            return 0
        estimate = getattr(driver, "estimate_count", None)
        return None if estimate is None else estimate(criteria)

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        driver = self.real()
        return [] if driver is None else driver.dependents(job_ids)

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        driver = self.real()
        return [] if driver is None else driver.sorted_search(criteria, column, descending,
                                                                 within)

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        driver = self.real()
        return [] if driver is None else driver.error_texts(criteria, limit)

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        driver = self.real()
        return [] if driver is None else driver.graph_nodes(criteria)

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        driver = self.real()
        return [] if driver is None else driver.due(criteria)

    def count_due(self, criteria: DueFilter) -> int:
        driver = self.real()
        return 0 if driver is None else driver.count_due(criteria)

    def attempt_history(self, job_id: str) -> list[Attempt]:
        driver = self.real()
        return [] if driver is None else driver.attempt_history(job_id)

    def stats(self) -> dict[str, QueueStats]:
        driver = self.real()
        return {} if driver is None else driver.stats()

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        driver = self.real()
        return [] if driver is None else driver.registry_list(kind)

    def missing_migrations(self) -> list[int]:
        driver = self.real()
        return [] if driver is None else driver.missing_migrations()

    def schema_absent(self) -> bool:
        return self.real() is None

    def now(self) -> datetime:
        driver = self.real()
        return datetime.now(UTC) if driver is None else driver.now()

    def close(self) -> None:
        self._closing()
        if self._driver is not None:
            self._driver.close()


def _scheme_name(url: str) -> str:
    scheme = url.split(":", 1)[0].lower()
    return {"file": "files", "postgresql": "postgres"}.get(scheme, scheme)


def open_for_reading(url: str, *, replica: bool = False) -> Driver:
    """The driver of a reader: the store's, its schema checked (an older one is refused), or,
    for a store with no schema at all, a :class:`FreshStoreReads` that reads as empty."""
    if nothing_at(url):
        return FreshStoreReads(url, None, replica=replica)
    driver = open_driver(url, migrate=False)
    try:
        if driver.schema_absent():
            return FreshStoreReads(url, driver, replica=replica)
        check_schema(driver, replica=replica)
    except BaseException:
        driver.close()
        raise
    return driver
