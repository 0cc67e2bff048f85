"""Dramatiq on Redis: one worker process (``--processes 1``), its default 8 threads."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis",)
_s = store()
broker = RedisBroker(url=_s["redis_url"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=_s["queue"], actor_name="noop")
def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    config = "`dramatiq --processes 1` (8 threads, the default)"

    def enqueue(self, stamp: float) -> None:
        noop.send(stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("dramatiq"), "benchmarks.adapters.dramatiq", "--processes", "1"]

    def close(self) -> None:
        broker.close()


ADAPTER = DramatiqAdapter
