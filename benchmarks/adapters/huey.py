"""Huey: RedisHuey, SqliteHuey and FileHuey; ``huey_consumer -w 1 -k thread`` (one process,
one worker thread, default polling delays)."""

from __future__ import annotations

from huey import FileHuey, RedisHuey, SqliteHuey

from benchmarks import probe
from benchmarks.adapters import Adapter, bin_path, store

BACKENDS = ("redis", "sqlite", "files")
_s = store()
if _s["backend"] == "redis":
    huey = RedisHuey(_s["queue"], url=_s["redis_url"])
elif _s["backend"] == "sqlite":
    huey = SqliteHuey(_s["queue"], filename=_s["sqlite_path"])
else:
    huey = FileHuey(_s["queue"], path=_s["files_dir"])


@huey.task()
def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


class HueyAdapter(Adapter):
    name = "huey"
    config = "`huey_consumer -w 1 -k thread` (defaults: -d 0.1 s, backoff to -m 10 s when idle)"

    def enqueue(self, stamp: float) -> None:
        noop(stamp)

    def worker_argv(self) -> list[str]:
        return [bin_path("huey_consumer"), "benchmarks.adapters.huey.huey", "-w", "1", "-k",
                "thread", "-q"]


ADAPTER = HueyAdapter
