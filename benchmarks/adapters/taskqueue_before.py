"""The CLI row on older code (``--before-src``): the same adapter; the orchestrator puts the
older ``src/`` first on ``PYTHONPATH``, so the client and ``taskqueue work`` are the old ones."""

from __future__ import annotations

from benchmarks.adapters.taskqueue import TaskqueueAdapter


class TaskqueueBeforeAdapter(TaskqueueAdapter):
    name = "taskqueue-before"


ADAPTER = TaskqueueBeforeAdapter
