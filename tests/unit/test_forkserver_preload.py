"""The fork server does once what every forked worker would otherwise redo when it opens its
store (issue #17: a recycle should cost no start-up work). Checked in a fresh interpreter,
because the test session has long filled every cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

REDIS = """
import redis
from taskqueue.drivers import _redis_keys as rk
from taskqueue.drivers import preload_driver
from taskqueue.drivers.redis import RedisDriver

preload_driver("redis://127.0.0.1:1/0")   # what the fork server runs (no connection)
before = rk.script_source.cache_info()
RedisDriver(redis.Redis(host="127.0.0.1", port=1))   # what a worker builds after its fork
after = rk.script_source.cache_info()
print(after.misses - before.misses, after.hits - before.hits)
"""


def test_redis_scripts_are_assembled_in_the_fork_server_not_in_each_worker() -> None:
    proc = subprocess.run([sys.executable, "-c", REDIS], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    misses, hits = map(int, proc.stdout.split())
    assert misses == 0, f"a worker assembled {misses} Redis scripts itself"
    assert hits > 0


def test_preloading_an_unknown_or_missing_backend_is_left_to_the_worker() -> None:
    from taskqueue.drivers import preload_driver

    preload_driver("nosuch://x")  # the worker reports the bad URL itself
    preload_driver("sqlite:///unused.db")  # a driver module without a preload step
