"""Where ``task.delay()`` sends a job when no manager is named: the default client.

This pure layer owns the hook and the layer that builds clients fills it: the package root
points it at ``taskqueue.manager.default_manager`` (set explicitly with
``set_default_manager``, or built from the environment on first use). So defining and
enqueueing a task never makes ``jobs`` import the manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from taskqueue.errors import ConfigError

if TYPE_CHECKING:
    from taskqueue.jobs.definition import Call, Job
    from taskqueue.jobs.handle import JobHandle
    from taskqueue.jobs.model import NewJob


class Enqueuer(Protocol):
    """What ``delay``, ``dispatch``, ``run_now``, ``chain`` and ``group`` ask of a client."""

    def push(self, job: Job | Call, *, connection: Any = None,
             **options: Any) -> JobHandle: ...

    def prepare(self, job: Job | Call, *, workflow: dict[str, Any] | None = None,
                **overrides: Any) -> NewJob: ...

    def push_prepared(self, new_jobs: list[NewJob], *,
                      connection: Any = None) -> list[JobHandle]: ...

    def run_now(self, job: Job | Call, **options: Any) -> Any: ...


_provider: Callable[[], Enqueuer] | None = None


def set_default_provider(provider: Callable[[], Enqueuer] | None) -> None:
    """Install the function that returns the default client (called on every use)."""
    global _provider
    _provider = provider


def default_client() -> Enqueuer:
    if _provider is None:
        raise ConfigError("no default queue manager: pass manager=..., or call "
                          "QueueManager.make_default()")
    return _provider()
