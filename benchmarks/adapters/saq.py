"""SAQ on Redis and PostgreSQL: ``saq settings --workers 1`` (default concurrency 10)."""

from __future__ import annotations

from typing import Any

from saq import Queue

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis", "postgres")
_s = store()
_url = _s["redis_url"] if _s["backend"] == "redis" else _s["pg_dsn"].replace(
    "postgresql://", "postgres://", 1)
queue = Queue.from_url(_url, name=_s["queue"])


async def noop(ctx: dict[str, Any], *, stamp: float = 0.0) -> None:
    probe.hit(stamp)


settings = {"queue": queue, "functions": [noop]}


class SaqAdapter(Adapter):
    name = "saq"
    is_async = True
    config = "`saq settings --workers 1`, defaults (concurrency 10)"

    async def setup(self) -> None:
        await queue.connect()

    async def enqueue(self, stamp: float) -> None:
        await queue.enqueue("noop", stamp=stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("saq"), "benchmarks.adapters.saq.settings", "--workers", "1"]

    async def close(self) -> None:
        await queue.disconnect()


ADAPTER = SaqAdapter
