"""taskqueue: background jobs for Python.

The public API is what ``__all__`` lists; everything else is internal.
"""

from taskqueue.codec import generate_key
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
from taskqueue.jobs.builtin import TestJob
from taskqueue.jobs.context import JobContext, current_job
from taskqueue.jobs.definition import Call, Job, Task, task
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.priority import Priority
from taskqueue.jobs.states import State
from taskqueue.manager import JobHandle, QueueManager, default_manager, set_default_manager
from taskqueue.worker.runner import Worker, WorkerOptions, WorkerSummary
from taskqueue.workflows import BatchStatus, chain, group

__version__ = "0.1.0"

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
