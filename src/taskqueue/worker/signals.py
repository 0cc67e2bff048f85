"""Signals -> worker intents. Handlers only flip flags; the loop does the work.

* SIGTERM, SIGINT: graceful stop (finish the running job, hand prefetched jobs back, exit 0);
* a second SIGINT: stop at once (the running job goes back to the queue);
* SIGUSR1: graceful recycle (in a supervised pool the process is replaced);
* SIGUSR2: pause / resume taking jobs.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Protocol

log = logging.getLogger("taskqueue.worker")


class Controllable(Protocol):
    def request_stop(self, reason: str = ...) -> None: ...
    def toggle_pause(self) -> bool: ...


def install(worker: Controllable) -> None:
    """Install the handlers (main thread only)."""
    interrupts = 0

    def on_term(signum: int, frame: Any) -> None:
        worker.request_stop(f"received {signal.Signals(signum).name}")

    def on_int(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        worker.request_stop("received SIGINT (press Ctrl+C again to stop at once)")

    def on_usr1(signum: int, frame: Any) -> None:
        worker.request_stop("received SIGUSR1 (recycle)")

    def on_usr2(signum: int, frame: Any) -> None:
        paused = worker.toggle_pause()
        log.warning("worker %s by SIGUSR2", "paused" if paused else "resumed")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
