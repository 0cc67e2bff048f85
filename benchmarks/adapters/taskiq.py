"""Taskiq on Redis (taskiq-redis ``ListQueueBroker``): ``taskiq worker --workers 1``."""

from __future__ import annotations

from taskiq_redis import ListQueueBroker

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis",)
_s = store()
broker = ListQueueBroker(_s["redis_url"], queue_name=_s["queue"])


@broker.task(task_name="noop")
async def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class TaskiqAdapter(Adapter):
    name = "taskiq"
    dist = "taskiq"
    is_async = True
    config = ("`taskiq worker --workers 1` (one worker process under taskiq's supervisor), "
              "`ListQueueBroker`, no result backend")

    async def setup(self) -> None:
        await broker.startup()

    async def enqueue(self, stamp: float) -> None:
        await noop.kiq(stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("taskiq"), "worker", "benchmarks.adapters.taskiq:broker",
                "--workers", "1", "--log-level", "WARNING"]

    async def close(self) -> None:
        await broker.shutdown()


ADAPTER = TaskiqAdapter
