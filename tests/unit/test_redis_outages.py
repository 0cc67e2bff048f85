"""Which Redis and Redis Cluster errors are an outage (waited out: ``DriverUnavailable``) and
which are not. redis-py's cluster client raises some of its own errors outside ``RedisError``
(no node reachable, a slot no node serves): they used to pass the driver untranslated."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")

from redis import exceptions as rx  # noqa: E402

from taskqueue.drivers import _redis_cluster as cluster  # noqa: E402

UNREACHABLE = getattr(rx, "RedisClusterUnreachableError", rx.RedisClusterException)


CASES = [
    (UNREACHABLE("Redis Cluster cannot be connected. Please provide at least one reachable "
                 "node"), True),
    (rx.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one "
                              "reachable node: Error 111"), True),
    (rx.SlotNotCoveredError("Command # 1 (GET x) of pipeline caused error: slot 12"), True),
    (rx.ClusterDownError("The cluster is down"), True),
    (rx.MasterDownError("Link with MASTER is down"), True),
    (rx.TryAgainError("Multiple keys request during rehashing of slot"), True),
    (rx.ClusterError("TTL exhausted."), True),
    (rx.RedisClusterException("No way to dispatch this command to Redis Cluster"), False),
    (rx.ClusterCrossSlotError("Keys in request don't hash to the same slot"), False),
    (rx.ResponseError("ERR unknown command"), False),
    (rx.MovedError("3999 127.0.0.1:6381"), False),
]


@pytest.mark.parametrize(("exc", "outage"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_only_a_cluster_that_cannot_serve_for_now_is_an_outage(exc: Exception,
                                                               outage: bool) -> None:
    assert isinstance(exc, cluster.ERRORS)
    assert cluster.passing(exc) is outage
