"""taskqueue, the library under test, on every backend, through the path users run: the worker
is ``taskqueue work --app benchmarks.adapters.taskqueue --queue Q`` as a subprocess, with its
defaults (a supervisor and one worker process, ``WORKER_MAX_JOBS`` recycling, process start
included). ``taskqueue_api`` is the same with the in-process ``Worker`` API instead."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path
from taskqueue import task

BACKENDS = ("sqlite", "postgres", "redis", "mysql", "files")


@task(name="bench.noop")
def noop(stamp: float = 0.0, data: Any = None) -> None:
    probe.hit(stamp)


@task(name="bench.short")
def short_job(stamp: float = 0.0) -> None:
    """The mixed benchmark's short job: 1 ms."""
    probe.hit(stamp)
    time.sleep(0.001)


@task(name="bench.long")
def long_job(stamp: float = 0.0) -> None:
    """The mixed benchmark's long job: 2 s."""
    probe.hit(stamp, "W")
    time.sleep(2.0)


def url_for(s: dict[str, Any]) -> str:
    b = s["backend"]
    if b == "sqlite":
        return f"sqlite:///{s['sqlite_path']}"
    if b == "postgres":
        return str(s["pg_dsn"])
    if b == "redis":
        return f"{s['redis_url']}?prefix={s['prefix']}"
    if b == "mysql":
        return str(s["mysql_url"])
    if b == "files":
        return f"file:///{s['files_dir']}"
    raise ValueError(b)


class TaskqueueAdapter(Adapter):
    name = "taskqueue"
    has_bulk = True
    bulk_batch = 1000
    config = ("`taskqueue work --app … --queue q` as a subprocess, every default (a supervisor "
              "and one worker process, recycled every `WORKER_MAX_JOBS`=1000 jobs)")

    def version(self) -> str:
        """The version of the code measured (``src/`` first on the path, whatever the venv
        holds under the distribution's name)."""
        import taskqueue

        return str(taskqueue.__version__)

    def setup(self) -> None:
        from taskqueue import QueueManager
        from taskqueue.config import Settings

        self.manager = QueueManager.from_url(url_for(self.store))
        self.manager.driver.migrate()
        self.payload: Any = None
        if self.recycle_after is None:
            self.recycle_after = Settings().worker_max_jobs

    def set_payload(self, size: int) -> None:
        self.payload = make_payload(size)

    def stored_size(self) -> int:
        job = self.manager.prepare(noop.s(0.0, self.payload), queue=self.queue)
        return len(job.payload)

    def enqueue(self, stamp: float) -> None:
        if self.payload is None:
            self.manager.push(noop.s(stamp), queue=self.queue)
        else:
            self.manager.push(noop.s(stamp, self.payload), queue=self.queue)

    def enqueue_bulk(self, count: int) -> None:
        self.manager.push_many([noop.s(0.0) for _ in range(count)], queue=self.queue)

    def enqueue_mixed(self, stamp: float, is_long: bool) -> None:
        self.manager.push((long_job if is_long else short_job).s(stamp), queue=self.queue)

    def enqueue_mixed_bulk(self, kinds: list[bool], first: float) -> None:
        """Push one job per kind (True: long), job i with the argument ``first - i``."""
        self.manager.push_many([(long_job if k else short_job).s(first - i)
                                for i, k in enumerate(kinds)], queue=self.queue)

    def worker_argv(self) -> list[str]:
        script = bin_path("taskqueue")
        command = [script] if os.path.exists(script) else [sys.executable, "-m", "taskqueue"]
        return [*command, "work", "--app", "benchmarks.adapters.taskqueue", "--queue",
                self.queue, *self.extra_args]

    def worker_env(self) -> dict[str, str]:
        return {"TASKQUEUE_URL": url_for(self.store)}

    def close(self) -> None:
        self.manager.close()


def make_payload(size: int) -> dict[str, Any]:
    """About ``size`` bytes of JSON that compresses like typical application data (~3-4x):
    records of words and numbers from a fixed seed."""
    import random

    rnd = random.Random(size)
    words = [
        "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 10)))
        for _ in range(2000)
    ]
    rows: list[dict[str, Any]] = []
    length = 2
    while length < size:
        row = {"id": rnd.randint(1, 10**9), "name": " ".join(rnd.choices(words, k=3)),
               "score": round(rnd.random() * 1000, 3), "tags": rnd.choices(words, k=2)}
        piece = len(json.dumps(row)) + 1
        if length + piece > size:
            break
        rows.append(row)
        length += piece
    return {"rows": rows, "pad": "x" * max(0, size - length - 12)}


ADAPTER = TaskqueueAdapter
