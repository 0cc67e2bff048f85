"""One module per measured library. Each defines the no-op job (which calls
``benchmarks.probe.hit``) and ``ADAPTER``, a subclass of :class:`Adapter`.

An adapter module is imported twice: by the harness (to enqueue) and by the worker process the
harness starts (to run jobs); both read the store from ``BENCH_STORE`` (JSON) in the
environment. What this package imports, every library's worker imports before its first job:
keep it to what a job needs (``importlib.metadata``, for the harness's version report, costs
a worker 30-70 ms of start-up and loads where it is used).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar


def store() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(os.environ["BENCH_STORE"])
    return data


def bin_path(script: str) -> str:
    """A console script installed next to this interpreter."""
    return os.path.join(os.path.dirname(sys.executable), script)


class Adapter:
    name: ClassVar[str] = ""
    #: Distribution whose version is reported.
    dist: ClassVar[str] = ""
    is_async: ClassVar[bool] = False
    has_bulk: ClassVar[bool] = False
    bulk_batch: ClassVar[int] = 1000
    #: How the worker is configured (shown in the report).
    config: ClassVar[str] = ""
    #: Jobs after which a worker process is replaced (the probe marks that process's last job).
    recycle_after: int | None = None
    #: Extra command-line arguments for the worker (a mode of the harness sets them).
    extra_args: list[str]

    def __init__(self, backend: str, store: dict[str, Any]) -> None:
        self.backend = backend
        self.store = store
        self.queue = store["queue"]
        self.extra_args = []

    def version(self) -> str:
        from importlib import metadata

        try:
            return metadata.version(self.dist or self.name)
        except metadata.PackageNotFoundError:
            return "?"

    def setup(self) -> None:
        """Create schema/tables; open client connections."""

    def enqueue(self, stamp: float) -> Any:
        raise NotImplementedError

    def enqueue_bulk(self, count: int) -> Any:
        raise NotImplementedError

    def worker_argv(self) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {}

    def close(self) -> Any:
        """Close client connections (the orchestrator drops the store itself)."""
