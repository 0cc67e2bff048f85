"""The Redis driver loads redis-py's synchronous client without the package's ``__init__``
(``drivers/_redis_import.py``), and an application that then uses redis-py still gets the whole
package. Each check runs in a fresh interpreter: the test session has imported redis already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("redis")

REPO = Path(__file__).resolve().parents[1].parent

#: What only redis-py's package __init__ imports: the other clients.
OTHER_CLIENTS = ["redis.asyncio.client", "redis.asyncio.cluster", "redis.asyncio.sentinel",
                 "redis.cluster", "redis.sentinel", "redis.keyspace_notifications"]

OPEN = """
import json, sys
from taskqueue.drivers import preload_driver
preload_driver("redis://127.0.0.1:6379/0")
import taskqueue.drivers.redis
from taskqueue.drivers._redis_keys import register_script
loaded = sorted(m for m in sys.modules if m.startswith("redis"))
deferred = type(sys.modules["redis"]).__name__
"""


def run(code: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_driver_loads_no_other_client() -> None:
    out = run(OPEN + "print(json.dumps({'loaded': loaded, 'deferred': deferred}))")
    assert out["deferred"] == "DeferredPackage"
    assert [m for m in OTHER_CLIENTS if m in out["loaded"]] == []  # type: ignore[operator]
    assert "redis.client" in out["loaded"]  # type: ignore[operator]


def test_the_application_still_gets_the_whole_package() -> None:
    out = run(OPEN + """
import redis
import redis.asyncio
from redis import Sentinel, RedisCluster
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError
import redis.client
print(json.dumps({
    "same_client": redis.Redis is redis.client.Redis,
    "same_error": redis.ConnectionError is ConnectionError,
    "version": redis.__version__,
    "names": "Sentinel" in dir(redis) and "Redis" in redis.__all__,
    "asyncio": AsyncRedis is redis.asyncio.client.Redis,
    "classes": [Sentinel.__module__, RedisCluster.__module__],
    "plain": [type(sys.modules[n]).__name__ for n in ("redis", "redis.asyncio")],
}))
""")
    assert out["same_client"] and out["same_error"] and out["names"] and out["asyncio"]
    assert out["version"]
    assert out["classes"] == ["redis.sentinel", "redis.cluster"]
    assert out["plain"] == ["module", "module"]


def test_nothing_is_deferred_when_redis_was_imported_first() -> None:
    out = run("import redis\n" + OPEN + "print(json.dumps({'deferred': deferred}))")
    assert out["deferred"] == "module"


def test_a_missing_name_is_still_an_attribute_error() -> None:
    out = run(OPEN + """
import redis
try:
    redis.no_such_name
except AttributeError as exc:
    print(json.dumps({"error": str(exc)}))
""")
    assert "no_such_name" in str(out["error"])
