"""Procrastinate on PostgreSQL: ``procrastinate worker`` (default concurrency 1, LISTEN/NOTIFY)."""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("postgres",)
_s = store()
app = App(connector=PsycopgConnector(conninfo=_s["pg_dsn"]))


@app.task(name="noop", queue=_s["queue"])
async def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class ProcrastinateAdapter(Adapter):
    name = "procrastinate"
    is_async = True
    has_bulk = True
    bulk_batch = 1000
    config = "`procrastinate worker`, defaults (concurrency 1)"

    async def setup(self) -> None:
        await app.open_async()
        await app.schema_manager.apply_schema_async()

    async def enqueue(self, stamp: float) -> None:
        await noop.defer_async(stamp=stamp)

    async def enqueue_bulk(self, count: int) -> None:
        await noop.batch_defer_async(*[{"stamp": 0.0}] * count)

    def worker_argv(self) -> list[str]:
        return [bin_path("procrastinate"), "--app=benchmarks.adapters.procrastinate.app",
                "--verbose", "worker", "--queues", self.queue]

    async def close(self) -> None:
        await app.close_async()


ADAPTER = ProcrastinateAdapter
