"""What the workflows need of a client, declared here so they never import one.

``taskqueue.client.Client`` (and so ``QueueManager``) satisfies it; the workflows sit below the
client, which offers them as methods (``batch``, ``cancel`` with its cascade, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taskqueue.drivers.base import Driver, JobFilter
    from taskqueue.jobs.definition import Call, Job
    from taskqueue.jobs.handle import JobHandle
    from taskqueue.jobs.model import JobRecord, NewJob
    from taskqueue.observability.events import EventBus


class WorkflowClient(Protocol):
    driver: Driver
    events: EventBus

    def push(self, job: Job | Call, *, connection: Any = None,
             **options: Any) -> JobHandle: ...

    def push_many(self, jobs: Iterable[Job | Call], *, connection: Any = None,
                  **options: Any) -> list[JobHandle]: ...

    def prepare(self, job: Job | Call, *, workflow: dict[str, Any] | None = None,
                **overrides: Any) -> NewJob: ...

    def push_prepared(self, new_jobs: list[NewJob], *,
                      connection: Any = None) -> list[JobHandle]: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def search(self, criteria: JobFilter | None = None) -> list[JobRecord]: ...

    def cancel(self, job_id: str, reason: str = "cancelled", by: str | None = None) -> bool: ...

    def decode_result(self, record: JobRecord) -> Any: ...
