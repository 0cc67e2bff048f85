"""PgQueuer on PostgreSQL (asyncpg): ``pgq run`` with its defaults (batch size 10)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from benchmarks import probe
from benchmarks.adapters import Adapter, store

BACKENDS = ("postgres",)
_s = store()


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    conn = await asyncpg.connect(_s["pg_dsn"])
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        probe.hit(float(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await conn.close()


class PgQueuerAdapter(Adapter):
    name = "pgqueuer"
    is_async = True
    has_bulk = True
    bulk_batch = 1000
    config = "`pgqueuer.run(factory)` (= `pgq run`), defaults (batch size 10, LISTEN/NOTIFY)"

    async def setup(self) -> None:
        self.conn = await asyncpg.connect(_s["pg_dsn"])
        self.queries = Queries(AsyncpgDriver(self.conn))
        await self.queries.install()

    async def enqueue(self, stamp: float) -> None:
        await self.queries.enqueue("noop", repr(stamp).encode(), 0)

    async def enqueue_bulk(self, count: int) -> None:
        await self.queries.enqueue(["noop"] * count, [b"0"] * count, [0] * count)

    def worker_argv(self) -> list[str]:
        # `pgq run` 1.6.0 fails at start with typer 0.29 (its --log-level default is parsed
        # as a str); pgqueuer.run() is what that command calls.
        return [sys.executable, "-c", "import asyncio, pgqueuer; "
                "asyncio.run(pgqueuer.run('benchmarks.adapters.pgqueuer:main'))"]

    async def close(self) -> None:
        await self.conn.close()


ADAPTER = PgQueuerAdapter
