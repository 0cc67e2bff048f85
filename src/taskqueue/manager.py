"""QueueManager: the facade applications use to enqueue, inspect and control jobs, and to
run a worker in their own process.

It is a :class:`~taskqueue.client.Client` (everything that talks to the store) plus the two
things that need the worker: ``start_worker`` and ``run_now``. It sits on top of the runtime
parts; nothing below it imports it (``task.delay()`` reaches the default manager through the
hook in ``jobs/dispatch.py``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskqueue.client import FOREVER as FOREVER  # re-exported: their first import path
from taskqueue.client import PAUSED as PAUSED
from taskqueue.client import PRUNE_BATCH as PRUNE_BATCH
from taskqueue.client import Client
from taskqueue.client import check_schema as check_schema
from taskqueue.client import codec_from as codec_from
from taskqueue.client import delay_seconds as delay_seconds
from taskqueue.jobs.body import RUN_OPTIONS as RUN_OPTIONS
from taskqueue.jobs.body import TIMEOUT_SET as TIMEOUT_SET
from taskqueue.jobs.body import WORKFLOW as WORKFLOW
from taskqueue.jobs.definition import Call, Job
from taskqueue.jobs.handle import JobHandle as JobHandle

if TYPE_CHECKING:
    from taskqueue.worker.runner import WorkerSummary


class QueueManager(Client):
    """Push jobs, look them up, cancel or retry them, read statistics, run a worker."""

    def make_default(self) -> QueueManager:
        """Use this manager for ``task.delay(...)`` calls that name no manager."""
        set_default_manager(self)
        return self

    def run_now(self, job: Job | Call, **options: Any) -> Any:
        """Run a job in this process, through the worker's middleware, retries and records;
        return its result or raise JobFailed."""
        from taskqueue.worker.inline import run_now

        return run_now(self, job, **options)

    def start_worker(self, queues: str | Sequence[str] | None = None,
                     **options: Any) -> WorkerSummary:
        """Run a worker in this process until it stops (see ``WorkerOptions``); return its
        summary. ``queues`` is a name, ``"a,b"`` or a list (default: ``default``).

        On the main thread it handles SIGTERM and SIGINT as ``taskqueue work`` does (finish
        the running job, hand reserved ones back, return; a second SIGINT hands the running
        job back too) and restores the previous handlers when it returns. It is one process
        with no supervisor: no hard timeout kills a job that ignores its soft timeout, nothing
        restarts it if it dies, and ``--grace`` does not apply (use ``taskqueue work``)."""
        import logging

        from taskqueue.worker import signals
        from taskqueue.worker.runner import Worker, WorkerOptions

        if queues is not None:
            if "queues" in options:
                raise TypeError("start_worker() got the queues twice (positional and queues=)")
            options["queues"] = _queue_names(queues)
        worker = Worker(self, WorkerOptions(**options))
        on_main = threading.current_thread() is threading.main_thread()
        with signals.installed(worker) if on_main else contextlib.nullcontext():
            summary = worker.run()
        logging.getLogger("taskqueue.worker").info(
            "worker %s stopped (%s): processed %d, completed %d, failed %d, retried %d, "
            "handed back %d", summary.worker_id, summary.stop_reason or "done",
            summary.processed, summary.completed, summary.failed, summary.retried,
            summary.handed_back)
        return summary



def _queue_names(queues: str | Sequence[str]) -> list[str]:
    """``"a"``, ``"a,b"`` or ``["a", "b"]`` -> a non-empty list of queue names."""
    items = queues.split(",") if isinstance(queues, str) else list(queues)
    if not all(isinstance(q, str) for q in items):
        raise TypeError(f"queue names must be strings, got {queues!r}")
    names = [q.strip() for q in items if q.strip()]
    if not names:
        raise ValueError(f"no queue name in {queues!r}")
    return names


_default: QueueManager | None = None
_default_lock = threading.Lock()


def set_default_manager(manager: QueueManager | None) -> None:
    global _default
    _default = manager


def default_manager() -> QueueManager:
    """The manager ``task.delay()`` uses: set explicitly, or built from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = QueueManager.from_env()
        return _default

