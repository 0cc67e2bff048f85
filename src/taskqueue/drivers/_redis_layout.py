"""Versions of the Redis driver's key layout, and the step from each to the next.

1. Global hashes ``<prefix>:jobs`` (job id -> queue) and ``<prefix>:idem`` (idempotency key ->
   job id), written by the push script together with the queue's keys: one script spanning
   slots, refused by a Redis Cluster.
2. Every script stays in its queue's slot: idempotency claims live in each queue
   (``<prefix>:{<queue>}:idem``, so a key is unique within its queue) and there is no id index
   (a lookup by id asks each queue whether it holds the job).
3. (current) A lasting index of dependents: ``<prefix>:{<queue>}:children:<parent>`` lists the
   jobs of that queue that depend on ``<parent>`` for as long as they exist (the ``dependents``
   verb); ``dependents:<id>`` keeps only the edges still open.

``upgrade`` moves a layout-1 store to layout 2 on the driver's first start: each claim is
copied into its job's queue, then both global hashes are dropped. To layout 3, every job with
dependencies is added to its parents' ``children`` sets (SADD: harmless to repeat). It is safe
to run twice (two processes starting at once); stop producers and workers of the older version
first, or they keep writing the old hashes (the jobs stay, their claims in those hashes are
ignored) and push children the index misses.
"""

from __future__ import annotations

import json
from typing import Any

from taskqueue.errors import ConfigError

LAYOUT = 3
_BATCH = 1000


def missing(client: Any, prefix: str) -> list[int]:
    """The layout ``upgrade`` would bring the store at ``prefix`` to, if it is not there yet
    (read-only: for commands that must not migrate)."""
    stored = client.get(f"{prefix}:schema")
    return [] if stored is not None and int(stored) >= LAYOUT else [LAYOUT]


def absent(client: Any, prefix: str) -> bool:
    """No taskqueue keys at ``prefix``: neither the layout version nor the job index (what
    ``upgrade`` treats as a new store)."""
    return client.get(f"{prefix}:schema") is None and not client.exists(f"{prefix}:jobs")


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
    if version < 2:
        _claims_into_queues(client, index, idem, queue_key)
    _index_children(client, f"{prefix}:queues", queue_key)
    client.set(schema, LAYOUT)
    return [v for v in range(version + 1, LAYOUT + 1)]


def _claims_into_queues(client: Any, index: str, idem: str, queue_key: Any) -> None:
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


def _index_children(client: Any, queues: str, queue_key: Any) -> None:
    """Layout 3: each job with dependencies joins ``children:<parent>`` in its queue."""
    for raw in client.smembers(queues):
        queue = raw.decode() if isinstance(raw, bytes) else str(raw)
        keys = list(client.scan_iter(match=_glob(queue_key(queue, "job:")) + "*", count=_BATCH))
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start:start + _BATCH]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(key, "dependencies")
            found = pipe.execute()
            pipe = client.pipeline(transaction=False)
            for key, deps in zip(chunk, found, strict=True):
                job_id = (key.decode() if isinstance(key, bytes) else key).rsplit(":job:", 1)[1]
                for dep in json.loads(deps) if deps else []:
                    pipe.sadd(queue_key(queue, f"children:{dep}"), job_id)
            pipe.execute()


def _glob(text: str) -> str:
    """``text`` matched literally by a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
