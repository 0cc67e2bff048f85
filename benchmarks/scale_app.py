"""Tasks of ``python -m benchmarks scale``, loaded by its ``taskqueue work --app`` worker.

``scale.noop`` is the finished job the store is filled with; ``scale.tick`` is the stream the
worker drains during a prune: each run appends its wall time to ``SCALE_TICKS_FILE``, so the
benchmark reads back when every job of the stream completed."""

from __future__ import annotations

import os
import time

from taskqueue import task

_fd = -1


@task(name="scale.noop")
def noop() -> None:
    return None


@task(name="scale.tick")
def tick() -> None:
    global _fd
    if _fd < 0:
        _fd = os.open(os.environ["SCALE_TICKS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                      0o600)
    os.write(_fd, f"{time.time()!r}\n".encode())
