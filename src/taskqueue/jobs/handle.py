"""JobHandle: a job id (it *is* the id string) that can also wait for and inspect its job.

The client that pushed the job makes the handle and answers for it; the handle only needs
the three calls of :class:`HandleOwner`, so this pure layer names no client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State


class HandleOwner(Protocol):
    """What a handle asks its client (``QueueManager`` is one)."""

    def result(self, job_id: str, timeout: float = 0.0, poll: float = 0.05) -> Any: ...

    def require(self, job_id: str) -> JobRecord: ...

    def cancel(self, job_id: str, reason: str = "cancelled", by: str | None = None) -> bool: ...


class JobHandle(str):
    """A job id (it *is* the id string) that can also wait for and inspect its job."""

    manager: HandleOwner

    def __new__(cls, job_id: str, manager: HandleOwner) -> JobHandle:
        handle = str.__new__(cls, job_id)
        handle.manager = manager
        return handle

    @classmethod
    def many(cls, job_ids: Iterable[str], manager: HandleOwner) -> list[JobHandle]:
        """A handle for each id (a bulk push's): what ``JobHandle(id, manager)`` makes, without
        a call of ``__new__`` per handle."""
        new = str.__new__
        out: list[JobHandle] = []
        for job_id in job_ids:
            handle = new(cls, job_id)
            handle.manager = manager
            out.append(handle)
        return out

    @property
    def id(self) -> str:
        return str(self)

    def wait(self, timeout: float = 30.0) -> Any:
        """Block until the job finishes; return its result (JobFailed if it did not complete)."""
        return self.manager.result(self, timeout=timeout)

    def record(self) -> JobRecord:
        return self.manager.require(self)

    @property
    def state(self) -> State:
        return self.record().state

    def cancel(self, reason: str = "cancelled") -> bool:
        return self.manager.cancel(self, reason)
