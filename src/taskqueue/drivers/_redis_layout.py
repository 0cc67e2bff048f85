"""Versions of the Redis driver's key layout, and the step from each to the next.

1. Global hashes ``<prefix>:jobs`` (job id -> queue) and ``<prefix>:idem`` (idempotency key ->
   job id), written by the push script together with the queue's keys: one script spanning
   slots, refused by a Redis Cluster.
2. (current) Every script stays in its queue's slot: idempotency claims live in each queue
   (``<prefix>:{<queue>}:idem``, so a key is unique within its queue) and there is no id index
   (a lookup by id asks each queue whether it holds the job).

``upgrade`` moves a layout-1 store to layout 2 on the driver's first start: each claim is
copied into its job's queue, then both global hashes are dropped. It is safe to run twice (two
processes starting at once); stop producers and workers of the older version first, or they
keep writing the old hashes (the jobs stay, their claims in those hashes are ignored).
"""

from __future__ import annotations

from typing import Any

from taskqueue.errors import ConfigError

LAYOUT = 2
_BATCH = 1000


def missing(client: Any, prefix: str) -> list[int]:
    """The layout ``upgrade`` would bring the store at ``prefix`` to, if it is not there yet
    (read-only: for commands that must not migrate)."""
    stored = client.get(f"{prefix}:schema")
    return [] if stored is not None and int(stored) >= LAYOUT else [LAYOUT]


def upgrade(client: Any, prefix: str, queue_key: Any) -> list[int]:
    """Bring the store at ``prefix`` to ``LAYOUT``; return the versions applied.
    ``queue_key(queue, name)`` names a per-queue structure."""
    index, idem, schema = f"{prefix}:jobs", f"{prefix}:idem", f"{prefix}:schema"
    stored = client.get(schema)
    if stored is None and not client.exists(index):
        return [LAYOUT] if client.set(schema, LAYOUT, nx=True) else []
    version = int(stored or 1)
    if version > LAYOUT:
        raise ConfigError(f"the redis store at prefix {prefix!r} has key layout {version}, "
                          f"newer than this taskqueue understands ({LAYOUT}): upgrade taskqueue")
    if version == LAYOUT:
        return []
    cursor = 0
    while True:
        cursor, claims = client.hscan(idem, cursor, count=_BATCH)
        if claims:
            keys = list(claims)
            homes = client.hmget(index, [claims[k] for k in keys])
            pipe = client.pipeline(transaction=False)
            for key, home in zip(keys, homes, strict=True):
                if home is not None:
                    pipe.hsetnx(queue_key(home.decode(), "idem"), key, claims[key])
            pipe.execute()
        if cursor == 0:
            break
    client.delete(index, idem)
    client.set(schema, LAYOUT)
    return [LAYOUT]
