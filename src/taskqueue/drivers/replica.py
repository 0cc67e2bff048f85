"""Reads from a replica, everything else on the primary store: the dashboard's driver when a
read URL is configured (``--read-url`` / ``TASKQUEUE_READ_URL``).

Only the verbs that never write go to the replica: ``get``, ``search``, ``count``,
``estimate_count``, ``stats``, ``registry_list``, ``missing_migrations``, ``schema_absent``,
``attempt_history``, ``sorted_search``, ``error_texts``, ``graph_nodes``, ``due``,
``count_due``.
A replica lags its primary, so what these return may be a moment old; code that writes and
then reads back what it wrote uses ``primary``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.drivers.base import (
    CloseHooks,
    Driver,
    DueFilter,
    ErrorText,
    GraphNode,
    JobFilter,
    QueueStats,
)
from taskqueue.jobs.model import Attempt, JobRecord


class ReplicaReads(CloseHooks):
    """A Driver over two: reads on ``replica``, the rest on ``primary``."""

    def __init__(self, primary: Driver, replica: Driver) -> None:
        self.primary, self.replica = primary, replica
        self.name = primary.name

    def __getattr__(self, verb: str) -> Any:
        return getattr(self.primary, verb)

    def get(self, job_id: str) -> JobRecord | None:
        return self.replica.get(job_id)

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        return self.replica.search(criteria)

    def count(self, criteria: JobFilter) -> int:
        return self.replica.count(criteria)

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        return self.replica.dependents(job_ids)

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        return self.replica.sorted_search(criteria, column, descending, within)

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        return self.replica.error_texts(criteria, limit)

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        return self.replica.graph_nodes(criteria)

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        return self.replica.due(criteria)

    def count_due(self, criteria: DueFilter) -> int:
        return self.replica.count_due(criteria)

    def estimate_count(self, criteria: JobFilter) -> int | None:
        estimate = getattr(self.replica, "estimate_count", None)
        return None if estimate is None else estimate(criteria)

    def attempt_history(self, job_id: str) -> list[Attempt]:
        return self.replica.attempt_history(job_id)

    def stats(self) -> dict[str, QueueStats]:
        return self.replica.stats()

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return self.replica.registry_list(kind)

    def missing_migrations(self) -> list[int]:
        return self.replica.missing_migrations()

    def schema_absent(self) -> bool:
        return self.replica.schema_absent()

    def close(self) -> None:
        self._closing()
        try:
            self.replica.close()
        finally:
            self.primary.close()
