"""One taskqueue worker process for the benchmark: the Worker API with default options."""

from __future__ import annotations

import json
import os
import signal

from benchmarks.adapters import store
from benchmarks.adapters.taskqueue import noop  # noqa: F401 - registers the task
from taskqueue import QueueManager
from taskqueue.worker.runner import Worker, WorkerOptions


def main() -> None:
    s = store()
    manager = QueueManager.from_url(os.environ["TASKQUEUE_URL"])
    extra = json.loads(os.environ.get("BENCH_TQ_OPTIONS", "{}"))
    worker = Worker(manager, WorkerOptions(queues=[s["queue"]], **extra))
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop("SIGTERM"))
    worker.run()
    manager.close()


if __name__ == "__main__":
    main()
