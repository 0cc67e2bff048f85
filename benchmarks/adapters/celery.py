"""Celery on Redis: one worker process, ``--pool=solo`` (the job runs in the worker process)."""

from __future__ import annotations

from celery import Celery

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis",)
_s = store()
app = Celery("bench", broker=_s["redis_url"])
app.conf.update(task_default_queue=_s["queue"], task_ignore_result=True,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="bench.noop")
def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class CeleryAdapter(Adapter):
    name = "celery"
    config = ("`celery worker --pool=solo --concurrency=1 --without-gossip --without-mingle "
              "--without-heartbeat`; no result backend")

    def enqueue(self, stamp: float) -> None:
        noop.delay(stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("celery"), "-A", "benchmarks.adapters.celery:app", "worker",
                "--pool=solo", "--concurrency=1", "-Q", self.queue, "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"]


ADAPTER = CeleryAdapter
