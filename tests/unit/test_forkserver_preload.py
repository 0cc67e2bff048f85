"""The fork server does once what every forked worker would otherwise redo when it opens its
store (issue #17: a recycle should cost no start-up work). Checked in a fresh interpreter,
because the test session has long filled every cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

REDIS = """
import hashlib
import redis
from taskqueue.drivers import _redis_keys as rk
from taskqueue.drivers import preload_driver
from taskqueue.drivers.redis import RedisDriver

preload_driver("redis://127.0.0.1:1/0")   # what the fork server runs (no connection)
before = rk.script_source.cache_info()
hashed, sha1 = [], hashlib.sha1
hashlib.sha1 = lambda *args, **kwargs: hashed.append(1) or sha1(*args, **kwargs)
RedisDriver(redis.Redis(host="127.0.0.1", port=1))   # what a worker builds after its fork
after = rk.script_source.cache_info()
print(after.misses - before.misses, after.hits - before.hits, len(hashed))
"""


def test_redis_scripts_are_assembled_in_the_fork_server_not_in_each_worker() -> None:
    proc = subprocess.run([sys.executable, "-c", REDIS], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    misses, hits, hashed = map(int, proc.stdout.split())
    assert misses == 0, f"a worker assembled {misses} Redis scripts itself"
    assert hits > 0
    # hashing in the worker maps ~1 MB more of OpenSSL into it (issue 17, worker RSS)
    assert hashed == 0, f"a worker hashed {hashed} Redis scripts itself"


def test_the_redis_scripts_carry_the_sha1_redis_py_would_compute() -> None:
    import redis

    from taskqueue.drivers import _redis_keys as rk
    from taskqueue.drivers.redis import PLAIN_SCRIPTS, QUEUE_SCRIPTS

    client = redis.Redis(host="127.0.0.1", port=1)
    for name, per_queue in [*((n, True) for n in QUEUE_SCRIPTS),
                            *((n, False) for n in PLAIN_SCRIPTS)]:
        ours = rk.register_script(client, name, per_queue=per_queue)
        theirs = client.register_script(rk.script_source(name, per_queue=per_queue))
        assert (ours.sha, ours.script) == (theirs.sha, theirs.script), name


def test_preloading_an_unknown_or_missing_backend_is_left_to_the_worker() -> None:
    from taskqueue.drivers import preload_driver

    preload_driver("nosuch://x")  # the worker reports the bad URL itself
    preload_driver("sqlite:///unused.db")  # a driver module without a preload step


OTEL = """
import sys
import opentelemetry.trace  # what an application (or redis-py 8) that uses it has loaded
from taskqueue.config import Settings
from taskqueue.worker.forkserver import Recipe, preload
from taskqueue.worker.runner import WorkerOptions

preload(Recipe(Settings(url="sqlite:///unused.db"), WorkerOptions(), [], None, -1, 0, -1))
print("opentelemetry.propagate" in sys.modules)
"""


def test_the_tracing_api_in_use_is_loaded_in_the_fork_server_not_on_each_first_job() -> None:
    import pytest

    pytest.importorskip("opentelemetry.trace")
    proc = subprocess.run([sys.executable, "-c", OTEL], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True"], "each worker would import it on its first job"
