"""taskqueue: background jobs for Python.

The public API is what ``__all__`` lists; everything else is internal.

Defining tasks needs only the light modules imported here; the queue manager, the worker, the
workflows and the codec (orjson, and cryptography when a key is set) load on first use of one of
their names, so ``from taskqueue import task`` in an application module stays cheap.
"""

import importlib as _importlib
import typing as _typing

from taskqueue._version import __version__
from taskqueue.drivers import JobFilter
from taskqueue.errors import (
    ConfigError,
    Conflict,
    DecryptionError,
    DriverError,
    DriverUnavailable,
    InvalidTransition,
    JobCancelled,
    JobFailed,
    JobInterrupt,
    JobNotFound,
    JobTimeout,
    NonRetryable,
    PayloadError,
    PayloadTooLarge,
    TaskQueueError,
    UnknownTask,
)
from taskqueue.jobs.builtin import TestJob  # registers the built-in tasks in every process
from taskqueue.jobs.context import JobContext, current_job
from taskqueue.jobs.definition import Call, Job, Task, task
from taskqueue.jobs.dispatch import set_default_provider as _set_default_provider
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.priority import Priority
from taskqueue.jobs.states import State

if _typing.TYPE_CHECKING:
    from taskqueue.codec import generate_key
    from taskqueue.jobs.handle import JobHandle
    from taskqueue.manager import QueueManager, default_manager, set_default_manager
    from taskqueue.worker.runner import Worker, WorkerOptions, WorkerSummary
    from taskqueue.workflows.batch import BatchStatus
    from taskqueue.workflows.chain import chain, group

#: Public names loaded on first use, and the module each comes from.
_LAZY = {
    "generate_key": "taskqueue.codec.crypto",
    "JobHandle": "taskqueue.jobs.handle",
    "QueueManager": "taskqueue.manager",
    "default_manager": "taskqueue.manager",
    "set_default_manager": "taskqueue.manager",
    "Worker": "taskqueue.worker.runner",
    "WorkerOptions": "taskqueue.worker.runner",
    "WorkerSummary": "taskqueue.worker.runner",
    "BatchStatus": "taskqueue.workflows.batch",
    "chain": "taskqueue.workflows.chain",
    "group": "taskqueue.workflows.chain",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def _default_manager() -> _typing.Any:
    """``task.delay()`` without a manager uses this (jobs owns the hook, see jobs/dispatch.py)."""
    from taskqueue.manager import default_manager

    return default_manager()


_set_default_provider(_default_manager)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BatchStatus",
    "Call",
    "ConfigError",
    "Conflict",
    "DecryptionError",
    "DriverError",
    "DriverUnavailable",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobFilter",
    "JobHandle",
    "JobInterrupt",
    "JobNotFound",
    "JobRecord",
    "JobTimeout",
    "NonRetryable",
    "PayloadError",
    "PayloadTooLarge",
    "Priority",
    "QueueManager",
    "State",
    "Task",
    "TaskQueueError",
    "TestJob",
    "UnknownTask",
    "Worker",
    "WorkerOptions",
    "WorkerSummary",
    "__version__",
    "chain",
    "current_job",
    "default_manager",
    "generate_key",
    "group",
    "set_default_manager",
    "task",
]
