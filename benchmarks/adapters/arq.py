"""arq on Redis: ``arq WorkerSettings`` with its defaults (max_jobs 10, poll_delay 0.5 s)."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis",)
_s = store()


async def noop(ctx: dict[str, Any], stamp: float = 0.0) -> None:
    probe.hit(stamp)


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(_s["redis_url"])
    queue_name = _s["queue"]


class ArqAdapter(Adapter):
    name = "arq"
    is_async = True
    config = "`arq WorkerSettings`, defaults (max_jobs 10, poll_delay 0.5 s, results kept 1 h)"

    async def setup(self) -> None:
        self.pool = await create_pool(WorkerSettings.redis_settings,
                                      default_queue_name=self.queue)

    async def enqueue(self, stamp: float) -> None:
        await self.pool.enqueue_job("noop", stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("arq"), "benchmarks.adapters.arq.WorkerSettings"]

    async def close(self) -> None:
        await self.pool.aclose()


ADAPTER = ArqAdapter
