"""Jobs that ship with taskqueue, registered on import."""

from __future__ import annotations

import time
from typing import Any

from taskqueue.jobs.definition import Job


class TestJob(Job):
    """The original specification's example job, used by ``taskqueue test``.

    ``data`` may hold ``sleep`` (seconds of simulated work), ``fail`` (raise on purpose) and any
    other fields, which are echoed in the result.
    """

    __test__ = False  # not a pytest test class
    name = "taskqueue.TestJob"

    def handle(self) -> dict[str, Any]:
        data = self.data if isinstance(self.data, dict) else {"data": self.data}
        seconds = float(data.get("sleep", 0) or 0)
        if seconds:
            time.sleep(seconds)
        if data.get("fail"):
            raise RuntimeError(f"TestJob asked to fail: {data.get('fail')}")
        return {"echo": {k: v for k, v in data.items() if k != "padding"}}
