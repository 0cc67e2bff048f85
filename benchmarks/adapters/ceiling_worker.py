"""The ceiling loop (see ``benchmarks.adapters.ceiling``): reserve a batch, run, ack, repeat."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from benchmarks import probe
from benchmarks.adapters import store
from benchmarks.adapters.ceiling import (
    BATCH,
    REDIS_ACK,
    REDIS_RESERVE,
    SQLITE_SCHEMA,
    redis_keys,
)

stopping = False


def noop(stamp: float = 0.0) -> None:
    probe.hit(stamp)


def run(body: str) -> None:
    msg = json.loads(body)
    noop(*msg["args"], **msg["kwargs"])


def idle(wait: float) -> None:
    time.sleep(wait)


def sqlite_loop(s: dict[str, Any]) -> None:
    import sqlite3

    db = sqlite3.connect(s["sqlite_path"], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SQLITE_SCHEMA)
    reserve = ("UPDATE jobs SET state = 1, lease_until = ? WHERE id IN (SELECT id FROM jobs "
               "WHERE state = 0 AND queue = ? ORDER BY priority DESC, id LIMIT ?) "
               "RETURNING id, payload")
    queue = s["queue"]
    while not stopping:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(reserve, (time.time() + 30, queue, BATCH)).fetchall()
        db.execute("COMMIT")
        if not rows:
            idle(0.001)
            continue
        rows.sort()
        for _, body in rows:
            run(body)
        marks = ",".join("?" * len(rows))
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"UPDATE jobs SET state = 2 WHERE id IN ({marks})", [r[0] for r in rows])
        db.execute("COMMIT")


def postgres_loop(s: dict[str, Any]) -> None:
    import psycopg

    db = psycopg.connect(s["pg_dsn"], autocommit=True)
    reserve = ("WITH c AS (SELECT id FROM jobs WHERE state = 0 AND queue = %s "
               "ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED) "
               "UPDATE jobs j SET state = 1, lease_until = now() + interval '30 seconds' "
               "FROM c WHERE j.id = c.id RETURNING j.id, j.payload")
    ack = "UPDATE jobs SET state = 2 WHERE id = ANY(%s)"
    queue = s["queue"]
    db.execute("LISTEN jobs")
    while not stopping:
        rows = db.execute(reserve, (queue, BATCH), prepare=True).fetchall()
        if not rows:
            idle(0.001)
            continue
        rows.sort()
        for _, body in rows:
            run(body)
        db.execute(ack, ([r[0] for r in rows],), prepare=True)


def redis_loop(s: dict[str, Any]) -> None:
    import redis

    db = redis.Redis.from_url(s["redis_url"])
    reserve, ack = db.register_script(REDIS_RESERVE), db.register_script(REDIS_ACK)
    ready, leases, payloads, _ = redis_keys(s)
    while not stopping:
        flat = reserve(keys=[ready, leases, payloads], args=[BATCH, time.time() + 30])
        if not flat:
            idle(0.001)
            continue
        ids = flat[0::2]
        for body in flat[1::2]:
            run(body)
        ack(keys=[leases, payloads], args=ids)


def main() -> None:
    def stop(*_: Any) -> None:
        global stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    s = store()
    {"sqlite": sqlite_loop, "postgres": postgres_loop, "redis": redis_loop}[s["backend"]](s)


if __name__ == "__main__":
    main()
