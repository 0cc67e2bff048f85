"""taskqueue's second row: the in-process ``Worker`` API in one process of our own
(``benchmarks.adapters.taskqueue_worker``), no supervisor, no recycling: the engine without the
CLI around it."""

from __future__ import annotations

import sys

from benchmarks.adapters.taskqueue import TaskqueueAdapter


class TaskqueueApiAdapter(TaskqueueAdapter):
    name = "taskqueue-api"
    config = ("`Worker(manager, WorkerOptions(queues=[q])).run()` in one process, default options, "
              "no supervisor, no recycling")

    def setup(self) -> None:
        super().setup()
        self.recycle_after = None

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.adapters.taskqueue_worker"]


ADAPTER = TaskqueueApiAdapter
