"""The "ceiling": a minimal batch reserve/acknowledge loop written directly against each store.

No library, no retries, no leases renewed, no events: the least work one Python process can do
per job while still reserving jobs atomically (so several workers could share the queue) and
acknowledging them durably in batches. It shows how far a library is from what the store and
one interpreter allow. Jobs carry a small JSON payload that the loop decodes, as a library
would.

* SQLite: ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`` in ``BEGIN IMMEDIATE``, then
  one ``UPDATE … WHERE id IN (…)`` transaction acknowledging the whole batch (WAL,
  ``synchronous=NORMAL``, as taskqueue's driver).
* PostgreSQL: ``FOR UPDATE SKIP LOCKED`` in a CTE with ``UPDATE … RETURNING`` (partial index
  on ready jobs), then ``UPDATE … WHERE id = ANY(%s)``; prepared statements, autocommit.
* Redis: one Lua script pops n ids and records their leases in a sorted set; one Lua script
  acknowledges the batch (drops leases and payloads).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.adapters import Adapter

BACKENDS = ("sqlite", "postgres", "redis")
BATCH = 100
PAYLOAD = json.dumps({"args": [0.0], "kwargs": {}})

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, queue TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 5,
  state INTEGER NOT NULL DEFAULT 0, lease_until REAL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, id) WHERE state = 0;
"""
PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id BIGSERIAL PRIMARY KEY, queue TEXT NOT NULL, priority INT NOT NULL DEFAULT 5,
  state SMALLINT NOT NULL DEFAULT 0, lease_until TIMESTAMPTZ, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, id) WHERE state = 0;
"""
REDIS_RESERVE = """
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if not ids then return {} end
local deadline = tonumber(ARGV[2])
for i = 1, #ids do redis.call('ZADD', KEYS[2], deadline, ids[i]) end
local payloads = redis.call('HMGET', KEYS[3], unpack(ids))
local out = {}
for i = 1, #ids do out[#out + 1] = ids[i]; out[#out + 1] = payloads[i] end
return out
"""
REDIS_ACK = """
redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return #ARGV
"""
REDIS_PUSH = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""


def redis_keys(s: dict[str, Any]) -> tuple[str, str, str, str]:
    p = f"{s['prefix']}:{{{s['queue']}}}"
    return f"{p}:ready", f"{p}:leases", f"{p}:payloads", f"{p}:seq"


class CeilingAdapter(Adapter):
    name = "ceiling"
    has_bulk = True
    bulk_batch = 1000
    config = f"a hand-written loop: reserve {BATCH} jobs, decode, call a no-op, ack the batch"

    def version(self) -> str:
        return "-"

    def setup(self) -> None:
        b, s = self.backend, self.store
        if b == "sqlite":
            import sqlite3

            self.db = sqlite3.connect(s["sqlite_path"], isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SQLITE_SCHEMA)
        elif b == "postgres":
            import psycopg

            self.db = psycopg.connect(s["pg_dsn"], autocommit=True)
            self.db.execute(PG_SCHEMA)
        elif b == "redis":
            import redis

            self.db = redis.Redis.from_url(s["redis_url"])
            self.push = self.db.register_script(REDIS_PUSH)
            self.keys = redis_keys(s)
        else:
            raise ValueError(b)

    def enqueue(self, stamp: float) -> None:
        payload = json.dumps({"args": [stamp], "kwargs": {}})
        if self.backend == "sqlite":
            self.db.execute("INSERT INTO jobs (queue, payload) VALUES (?, ?)",
                            (self.queue, payload))
        elif self.backend == "postgres":
            self.db.execute("INSERT INTO jobs (queue, payload) VALUES (%s, %s)",
                            (self.queue, payload), prepare=True)
        else:
            ready, _, payloads, seq = self.keys
            job_id = self.db.incr(seq)
            self.push(keys=[ready, payloads], args=[job_id, payload])

    def enqueue_bulk(self, count: int) -> None:
        if self.backend == "sqlite":
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO jobs (queue, payload) VALUES (?, ?)",
                                [(self.queue, PAYLOAD)] * count)
            self.db.execute("COMMIT")
        elif self.backend == "postgres":
            with self.db.cursor() as cur, cur.copy(
                    "COPY jobs (queue, payload) FROM STDIN") as copy:
                for _ in range(count):
                    copy.write_row((self.queue, PAYLOAD))
        else:
            ready, _, payloads, seq = self.keys
            last = self.db.incrby(seq, count)
            ids = list(range(last - count + 1, last + 1))
            pipe = self.db.pipeline(transaction=True)
            pipe.hset(payloads, mapping={i: PAYLOAD for i in ids})
            pipe.rpush(ready, *ids)
            pipe.execute()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.adapters.ceiling_worker"]

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_BACKEND": self.backend}

    def close(self) -> None:
        self.db.close()


ADAPTER = CeilingAdapter
