"""A small pool of daemon threads for ``--concurrency`` > 1 (I/O-bound sync jobs).

Daemon threads, so an immediate stop is never held up by a job that will not return; the worker
hands such jobs back to the queue before the process exits.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("taskqueue.worker")


class JobPool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._tasks: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._inflight = 0
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"taskqueue-job-{i}",
                                          daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def free(self) -> int:
        with self._cond:
            return self.size - self._inflight

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._cond:
            self._inflight += 1
        self._tasks.put((fn, args))

    def wait_for_capacity(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight < self.size, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight == 0, timeout)

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)

    def _run(self) -> None:
        while (item := self._tasks.get()) is not None:
            fn, args = item
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a job thread must survive anything
                log.exception("job thread crashed while running %r", fn)
            finally:
                with self._cond:
                    self._inflight -= 1
                    self._cond.notify_all()
