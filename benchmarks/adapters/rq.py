"""RQ on Redis: ``SimpleWorker`` (runs jobs in the worker process; the default ``Worker`` forks
a child per job)."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path

BACKENDS = ("redis",)


def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class RQAdapter(Adapter):
    name = "rq"
    has_bulk = True
    bulk_batch = 1000
    config = "`rq worker --worker-class rq.worker.SimpleWorker` (no fork per job)"

    def setup(self) -> None:
        self.conn = Redis.from_url(self.store["redis_url"])
        self.q = Queue(self.queue, connection=self.conn)

    def enqueue(self, stamp: float) -> None:
        self.q.enqueue(noop, stamp)

    def enqueue_bulk(self, count: int) -> None:
        self.q.enqueue_many([Queue.prepare_data(noop, (0.0,)) for _ in range(count)])

    def worker_argv(self) -> list[str]:
        return [bin_path("rq"), "worker", "--url", self.store["redis_url"], "--worker-class",
                "rq.worker.SimpleWorker", "--logging_level", "WARNING", self.queue]

    def close(self) -> None:
        self.conn.close()


ADAPTER = RQAdapter
