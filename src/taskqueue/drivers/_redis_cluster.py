"""How the Redis driver connects: a single server or a Redis Cluster, chosen by the URL, and the
errors a Cluster answers turned into messages that say what to do.

``redis+cluster://host:port`` (or ``rediss+cluster://``, or ``?cluster=true`` on a plain
``redis://`` URL) connects with redis-py's ``RedisCluster``, which discovers the other nodes
from the one named and follows slot moves. A single-node URL that reaches a Cluster node is
refused at start-up with the fix, instead of failing later on the first key of another slot.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.client import Redis
from redis.connection import ConnectionPool
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from taskqueue.errors import ConfigError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_OURS = ("prefix", "strict", "cluster")


class Target(NamedTuple):
    """What a Redis URL asks for, with our own query parameters taken out."""

    url: str       # for redis-py
    prefix: str
    strict: bool
    cluster: bool


def parse(url: str, options: dict[str, Any], default_prefix: str) -> Target:
    """Take ``prefix``, ``strict`` and ``cluster`` out of the URL query (they win over
    ``options``, like redis-py's own parameters)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    prefix = str(options.pop("prefix", default_prefix))
    strict = flag("strict", options.pop("strict", False))
    cluster = flag("cluster", options.pop("cluster", False)) or scheme in CLUSTER_SCHEMES
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        elif key == "strict":
            strict = flag(key, value)
        elif key == "cluster":
            cluster = cluster or flag(key, value)
        else:
            rest.append((key, value))
    path = parts.path
    if cluster:
        if path.strip("/") not in ("", "0"):
            raise ConfigError(f"redis cluster URL names database {path.strip('/')!r}: a Redis "
                              "Cluster has only database 0; drop it from the URL")
        path = ""
    parts = parts._replace(scheme=CLUSTER_SCHEMES.get(scheme, scheme), path=path,
                           query=urlencode(rest))
    return Target(urlunsplit(parts), prefix, strict, cluster)


def truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def flag(name: str, value: object) -> bool:
    """A boolean URL option; a misspelt value is an error, not a silent false."""
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise ConfigError(f"redis URL option {name}={value!r}: use true or false")
    return truthy(text)


def check_options(client: Redis) -> None:
    """Build (without connecting) one connection as the pool would, so a query parameter
    redis-py does not know is a configuration error now, not a TypeError at the first
    command."""
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        raise ConfigError(f"redis URL: {exc}; taskqueue's own options are prefix, strict and "
                          "cluster, the others go to redis-py") from None


def connect(target: Target, options: dict[str, Any], block_timeout: float) -> tuple[Any, Any]:
    """The client, and a second one for blocking pops (its socket timeout is above the
    longest block)."""
    if target.cluster:
        timeout = max(float(options.get("socket_timeout") or 0), block_timeout)
        from redis.cluster import RedisCluster  # a single server never loads the cluster client

        try:
            return (RedisCluster.from_url(target.url, **options),
                    RedisCluster.from_url(target.url, **{**options, "socket_timeout": timeout}))
        except TypeError as exc:
            raise ConfigError(f"redis cluster URL: {exc}; taskqueue's own options are prefix, "
                              "strict and cluster, the others go to redis-py") from None
    single = Redis.from_url(target.url, **options)
    check_options(single)
    return single, blocking_twin(single, block_timeout)


def blocking_twin(client: Redis, block_timeout: float) -> Redis:
    """A single-node client with the same connection settings and a longer socket timeout."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = max(float(kwargs.get("socket_timeout") or 0), block_timeout)
    return Redis(connection_pool=ConnectionPool(
        connection_class=pool.connection_class, **kwargs))


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is redis-py's cluster client (which only a loaded ``redis.cluster``
    can have made: asking does not import it)."""
    module = sys.modules.get("redis.cluster")
    return module is not None and isinstance(client, module.RedisCluster)


def describe(client: Any) -> str:
    """Where the client connects, for error messages (never the password)."""
    if is_cluster(client):
        nodes = client.get_nodes()
        first = nodes[0].name if nodes else "?"
        return f"cluster {first} (+{max(0, len(nodes) - 1)} nodes)"
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def refuse_cluster_node(client: Any, where: str) -> None:
    """A single-node client on a Cluster node works until a key of another slot; say so now."""
    if is_cluster(client):
        return
    try:
        enabled = client.info("cluster").get("cluster_enabled")
    except ResponseError:   # INFO disabled (managed Redis): nothing to learn
        return
    if str(enabled) == "1":
        raise ConfigError(f"redis at {where} is a Redis Cluster node: connect with the cluster "
                          "client, redis+cluster://host:port (or add ?cluster=true)")


def explain(exc: BaseException) -> str | None:
    """A message for the errors that mean "the keys or the client do not fit the Cluster"."""
    text = str(exc)
    if isinstance(exc, (MovedError, AskError)) \
            or text.startswith(("MOVED", "ASK ")):
        return ("this Redis is a Cluster and the client is not: connect with "
                f"redis+cluster://host:port (or ?cluster=true) [{type(exc).__name__}: {text}]")
    if "CROSSSLOT" in text or "same key slot" in text or "same slot" in text:
        return f"keys of different Cluster slots in one command (a driver bug): {text}"
    if text.startswith("CLUSTERDOWN") or isinstance(exc, ClusterDownError):
        return f"the Redis Cluster is down or resharding: {text}"
    return None


#: What redis-py raises for a Redis or Redis Cluster error: its cluster client's own errors
#: (no node reachable, a slot no node serves, a closed client) are not RedisErrors.
ERRORS = (RedisError, RedisClusterException)


def passing(exc: BaseException) -> bool:
    """Whether ``exc`` says the Cluster cannot serve for now, as an unreachable server does: no
    node reachable, a slot without a node, the cluster down (CLUSTERDOWN, MASTERDOWN), a
    resharding (TRYAGAIN), or redirections exhausted while slots move. Workers wait these out
    (the driver raises ``DriverUnavailable``); other errors are no outage."""
    if isinstance(exc, ClusterError | TryAgainError | SlotNotCoveredError):
        return True
    # "Redis Cluster cannot be connected": RedisClusterUnreachableError since redis-py 7, a
    # plain RedisClusterException before
    return isinstance(exc, RedisClusterException) and "cannot be connected" in str(exc)


def slot_groups(keys: Iterable[str]) -> list[list[str]]:
    """Keys grouped by Cluster slot, in first-seen order (one BLPOP may only name one slot)."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())
