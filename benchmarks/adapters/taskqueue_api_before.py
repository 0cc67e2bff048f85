"""The `Worker` API row on older code (``--before-src``), like ``taskqueue_before``."""

from __future__ import annotations

from benchmarks.adapters.taskqueue_api import TaskqueueApiAdapter


class TaskqueueApiBeforeAdapter(TaskqueueApiAdapter):
    name = "taskqueue-api-before"


ADAPTER = TaskqueueApiBeforeAdapter
