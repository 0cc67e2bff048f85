"""Store outages are waited out, never fatal.

A process that cannot reach its store when it starts (the server is down, restarting, "the
database system is starting up", Redis "LOADING the dataset") does not exit: :func:`open_patiently`
tries again with a capped, growing delay for as long as it takes, logging each failure as an
error (the process is unhealthy, not gone). Only :class:`~taskqueue.errors.DriverUnavailable`
is waited out; a wrong password or a missing database is a configuration error and fails at
once.

A process asked to stop while it waits (SIGTERM, Ctrl-C) stops waiting: ``abandon`` is asked at
every failure and about every second, and when it says so :class:`Abandoned` is raised; no job
was taken, so there is nothing to hand back.

While it waits, ``on_wait`` is called about every second: a worker uses it to tell its
supervisor it is alive, because its liveness is not the store's. (Once running, a worker that
loses its store keeps its heartbeat thread ticking and backs off in its loop; see
``worker/heartbeat.py`` and ``worker/runner.py``.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from taskqueue.errors import DriverUnavailable

log = logging.getLogger("taskqueue.worker")
T = TypeVar("T")

#: First and longest wait between two attempts to reach the store (seconds).
FIRST_DELAY = 0.5
MAX_DELAY = 10.0


class Abandoned(Exception):
    """The wait for an unreachable store was given up because the process was asked to stop."""


def open_patiently(open_: Callable[[], T], what: str,
                   on_wait: Callable[[], None] | None = None,
                   max_delay: float = MAX_DELAY,
                   abandon: Callable[[], bool] | None = None) -> T:
    """``open_()``, retried through store outages for as long as it takes (or until
    ``abandon()`` is true: then :class:`Abandoned`)."""
    delay, began, failures = FIRST_DELAY, time.monotonic(), 0
    while True:
        try:
            value = open_()
        except DriverUnavailable as exc:
            failures += 1
            if abandon is not None and abandon():
                raise Abandoned(f"{what}: asked to stop while the store was unreachable "
                                f"({exc})") from exc
            log.error("%s: the store is unreachable (down for %.0fs, %d attempts); trying again "
                      "in %.1fs: %s", what, time.monotonic() - began, failures, delay, exc)
            _wait(delay, on_wait, abandon)
            delay = min(max_delay, delay * 2)
            continue
        if failures:
            log.warning("%s: the store is back after %.0fs", what, time.monotonic() - began)
        return value


def _wait(seconds: float, on_wait: Callable[[], None] | None,
          abandon: Callable[[], bool] | None) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if abandon is not None and abandon():
            return
        if on_wait is not None:
            on_wait()
        time.sleep(min(0.25 if abandon is not None else 1.0, left))
