"""The store of ``python -m benchmarks dashboard``: N jobs as a busy month leaves them, loaded in
two steps so a million jobs take a couple of minutes instead of ten to twenty.

1. **Through the store's API** (``Driver.restore``, 5,000 records per call): every job that
   is special — the bulk queues' 10,000 failed + 10,000 pending + 10,000 failed, the 20 jobs
   with a rare tag, the 20 with a rare exception, the batch of 2,000, the workflows (chains
   and diamonds of 4-12 jobs with their dependency edges) — and ``TEMPLATES`` ordinary jobs
   (states in the month's exact shares, queues, task names, common tags and exception texts
   drawn at random).
2. **In the store** (one ``INSERT ... SELECT`` per 100,000-200,000 rows: ``generate_series``
   on PostgreSQL, a recursive CTE on SQLite): the rest of the N jobs as copies of the
   templates, copy ``p`` of template ``p mod TEMPLATES``, created at evenly spaced moments of
   the month (with a random part under one step), each with a new UUIDv7 id of its creation
   millisecond; the other times move with the creation time, except a due time in the future
   (scheduled and retrying jobs) and a running job's lease. Every other column (payload,
   exception, tags, attempt history, and any column a later migration adds) is the
   template's. The inserts go through the store's own triggers, so the counters (PostgreSQL's
   statement-level deltas, SQLite's per-row counters) and PostgreSQL's trigram GIN indexes
   are kept as by any insert; on SQLite the copies' searchable texts enter ``job_text`` (and
   through its trigger the full-text index) as ``restore`` puts them there.

:func:`load` returns what it intended (jobs per state, the jobs of a common tag) so the
benchmark can check that the dashboard answers the same.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CHUNK = 5000
TEMPLATES = 10_000
BULK_TEMPLATES = 1000
BULK = 10_000
QUEUES = ("default", "emails", "reports", "billing", "media")
NAMES = tuple(f"app.tasks.{n}" for n in ("send_mail", "render", "charge", "sync", "resize",
                                         "import_csv", "notify", "index", "export", "cleanup"))
TAGS = tuple(f"tenant:{i}" for i in range(20))
RARE_TAG = "vip:rare"
ERRORS = (
    "ConnectionError: connection reset by peer (db-{n})",
    "TimeoutError: upstream took longer than 30s",
    "ValueError: invalid literal for int() with base 10: '{n}x'",
    "KeyError: 'customer_{n}'",
    "PermissionError: [Errno 13] Permission denied: '/data/{n}.csv'",
    "RuntimeError: render failed at page {n}",
    "HTTPError: 502 Bad Gateway from payments",
    "OSError: [Errno 28] No space left on device",
    "SMTPServerDisconnected: Connection unexpectedly closed",
)
RARE_ERROR = "QuotaExceeded: tenant 8841 is over its plan"
#: state, share of the jobs (the rest, after the bulk queues, are completed)
STATES = (("failed", 0.06), ("cancelled", 0.02), ("pending", 0.05), ("retrying", 0.01),
          ("processing", 0.005))
WORKFLOWS = 40
YEARS = 10 * 365 * 86_400.0
#: the tag whose jobs the benchmark counts to check the copies' tags are searchable
CHECK_TAG = TAGS[3]


def _id_at(ms: int, rnd: random.Random) -> str:
    """A UUIDv7 of millisecond ``ms``."""
    bits = rnd.getrandbits(74)
    text = f"{ms:012x}{0x7000 | (bits >> 62):04x}{(0b10 << 62) | (bits & ((1 << 62) - 1)):016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def bulk_size(n: int) -> int:
    """Jobs per bulk action: 10,000, or a tenth of a small store."""
    return min(BULK, n // 10)


@dataclass
class Group:
    """Templates (restored) and how many copies of them the store makes."""
    templates: list[Any]
    copies: int


@dataclass
class Plan:
    """What goes into the store: records for ``restore``, then the groups' templates
    (restored too) and their copies."""
    records: list[Any] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    start_ms: int = 0
    span_ms: int = 0
    rare: int = 20

    @property
    def restored(self) -> list[Any]:
        return self.records + [rec for group in self.groups for rec in group.templates]

    @property
    def copies(self) -> int:
        return sum(group.copies for group in self.groups)

    def intended(self) -> dict[str, Any]:
        """Jobs per state and with CHECK_TAG, as the store should count them."""
        states: Counter[str] = Counter()
        tagged = 0
        for rec in self.restored:
            states[rec.state.value] += 1
            tagged += CHECK_TAG in rec.tags
        for group in self.groups:
            rounds, extra = divmod(group.copies, len(group.templates))
            for k, rec in enumerate(group.templates):
                times = rounds + (k < extra)
                states[rec.state.value] += times
                tagged += times * (CHECK_TAG in rec.tags)
        return {"states": dict(states), "tag": tagged, "rare": self.rare,
                "jobs": len(self.restored) + self.copies}


def plan(n: int, now: datetime, payloads: dict[str, bytes], seed: int = 7) -> Plan:
    from taskqueue.jobs.model import JobRecord

    rnd = random.Random(seed)
    start = now - timedelta(days=30)
    start_ms = int(start.timestamp() * 1000)
    span_ms = 30 * 86_400_000 - 3_600_000
    out = Plan(start_ms=start_ms, span_ms=span_ms)

    def job(state: str, queue: str, created_ms: int, tags: tuple[str, ...] = (),
            error: str | None = None, batch: str | None = None) -> Any:
        name = NAMES[rnd.randrange(10)]
        if error is None and state in ("failed", "retrying"):
            error = ERRORS[rnd.randrange(len(ERRORS))].format(n=rnd.randrange(100))
        if error is not None:
            error = f"Traceback (most recent call last):\n  File \"app.py\", line 3\n{error}"
        elif state == "cancelled":
            error = "cancelled from the dashboard (by ops)"
        created = datetime.fromtimestamp(created_ms / 1000, now.tzinfo)
        return _record(JobRecord, _id_at(created_ms, rnd), queue, name, state, created, now,
                       tags, error, batch, payloads[name], rnd)

    def common_tags() -> tuple[str, ...]:
        return (TAGS[rnd.randrange(20)],) if rnd.random() < 0.33 else ()

    def anytime() -> int:
        return start_ms + rnd.randrange(span_ms)

    size = bulk_size(n)
    for state, queue in [("failed", "bulk"), ("pending", "bulk"), ("failed", "bulk-old")]:
        count = min(BULK_TEMPLATES, max(1, size // 2))  # a small store copies some too
        out.groups.append(Group([job(state, queue, anytime(), common_tags())
                                 for _ in range(count)], size - count))
    rest = n - 3 * size
    shares = {state: int(rest * share) for state, share in STATES}
    shares["completed"] = rest - sum(shares.values())
    pool = [state for state, count in shares.items() for _ in range(count)]
    rnd.shuffle(pool)
    # the rare exception on 20 failed jobs, the rare tag on 20 jobs of any state
    rare = out.rare = 20 if rest >= 1000 else 2
    for _ in range(rare):
        pool.remove("failed")
        out.records.append(job("failed", QUEUES[rnd.randrange(5)], anytime(), common_tags(),
                               RARE_ERROR))
    for _ in range(rare):
        out.records.append(job(pool.pop(), QUEUES[rnd.randrange(5)], anytime(), (RARE_TAG,)))
    # the batch: consecutive jobs of the middle of the month
    members = min(2000, len(pool) // 4)
    batch_ms = start_ms + span_ms // 2
    batch_id = _id_at(batch_ms, rnd)
    step = max(1, span_ms // max(n, 1))
    for k in range(members):
        out.records.append(job(pool.pop(), QUEUES[rnd.randrange(5)], batch_ms + k * step,
                               common_tags(), batch=batch_id))
    for _ in range(WORKFLOWS if n >= 1000 else 2):
        out.records += _workflow(JobRecord, datetime.fromtimestamp(anytime() / 1000,
                                                                   now.tzinfo),
                                 now, payloads, rnd)
    # the templates: the remaining pool's states in the same shares
    left = Counter(pool)
    total = len(pool)
    count = min(TEMPLATES, max(1, total // 4))
    drawn = {s: (left[s] * count) // total for s in left if s != "completed"}
    drawn["completed"] = count - sum(drawn.values())
    states = [s for s, c in drawn.items() for _ in range(c)]
    rnd.shuffle(states)
    out.groups.append(Group([job(s, QUEUES[rnd.randrange(5)], anytime(), common_tags())
                             for s in states], total - count))
    return out


def _record(cls: Any, job_id: str, queue: str, name: str, state: str, created: datetime,
            now: datetime, tags: tuple[str, ...], error: str | None, batch: str | None,
            payload: bytes, rnd: random.Random, dependencies: tuple[str, ...] = ()) -> Any:
    from taskqueue.jobs.states import State

    ran = created + timedelta(seconds=rnd.uniform(0.01, 5))
    done = ran + timedelta(seconds=rnd.uniform(0.01, 2))
    due = created
    if state == "pending" and rnd.random() < 0.1:
        due = now + timedelta(minutes=rnd.randrange(1, 600))
    elif state == "retrying":
        due = now + timedelta(seconds=rnd.randrange(10, 3600))
    finished = state in ("completed", "failed", "cancelled")
    running = state == "processing"
    return cls(
        id=job_id, queue_name=queue, name=name, payload=payload, state=State(state),
        priority=5, attempts=3 if state == "failed" else 1 if state != "pending" else 0,
        max_attempts=3, timeout_seconds=60, delay_seconds=0.0, available_at=due,
        created_at=created, updated_at=done if finished else created,
        dependencies=dependencies, tags=tags,
        started_at=ran if state != "pending" else None,
        completed_at=done if state == "completed" else None,
        failed_at=done if state in ("failed", "cancelled") else None, exception=error,
        result="null" if state == "completed" else None,
        progress=100.0 if state == "completed" else None, idempotency_key=None,
        batch_id=batch, lease_owner="bench-worker" if running else None,
        lease_expires_at=now + timedelta(hours=1) if running else None,
        lease_epoch=1 if state != "pending" else 0)


def _workflow(cls: Any, created: datetime, now: datetime, payloads: dict[str, bytes],
              rnd: random.Random) -> list[Any]:
    """A chain or a diamond of 4-12 jobs, all completed but the last few (pending)."""
    size = rnd.randrange(4, 13)
    ms = int(created.timestamp() * 1000)
    ids = [_id_at(ms + k, rnd) for k in range(size)]
    out = []
    for k, job_id in enumerate(ids):
        deps: tuple[str, ...] = ()
        if k:
            deps = (ids[k - 1],) if rnd.random() < 0.6 or k < 2 else (ids[k - 1], ids[k - 2])
        state = "completed" if k < size - 2 else "pending"
        out.append(_record(cls, job_id, "default", NAMES[k % 10], state,
                           created + timedelta(milliseconds=k), now, ("workflow",), None, None,
                           payloads[NAMES[k % 10]], rnd, deps))
    return out


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


# -- the copies, in the store -----------------------------------------------------------------

#: columns a copy does not take from its template
_MOVED = ("updated_at", "started_at", "completed_at", "failed_at")


def _copy_exprs(columns: list[str], minute: str) -> list[str]:
    """The SELECT list that copies template row ``t`` to the new job of generated row ``g``:
    a UUIDv7 id from ``g.h``/``g.r``, created at ``g.at``, its other times moved with it (a due
    time more than ``minute`` after creation, a scheduled job's, is kept), every other column
    as the template has it."""
    exprs = []
    for col in columns:
        if col == "id":
            exprs.append("substr(g.h, 1, 8) || '-' || substr(g.h, 9, 4) || '-7' || "
                         "substr(g.r, 1, 3) || '-8' || substr(g.r, 4, 3) || '-' || "
                         "substr(g.r, 7, 12)")
        elif col == "created_at":
            exprs.append("g.at")
        elif col in _MOVED:
            exprs.append(f"t.{col} + (g.at - t.created_at)")
        elif col == "available_at":
            exprs.append(f"CASE WHEN t.available_at > t.created_at + {minute} "
                         "THEN t.available_at ELSE t.available_at + (g.at - t.created_at) END")
        else:
            exprs.append(f"t.{col}")
    return exprs


def _pg_copies(url: str, layout: Plan, rows: int = 200_000) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'job_queue'"
            " AND table_schema = current_schema() ORDER BY ordinal_position")]
        conn.execute("CREATE TEMP TABLE bench_template (k integer PRIMARY KEY, id text)")
        exprs = _copy_exprs(columns, minute="interval '1 minute'")
        sql = (f"INSERT INTO job_queue ({', '.join(columns)}) "
               f"SELECT {', '.join(exprs)} FROM ("
               "  SELECT p, lpad(to_hex(ms), 12, '0') AS h,"
               "         md5(p::text || ' ' || %(g)s::text) AS r,"
               "         to_timestamp(ms / 1000.0) AS at FROM ("
               "    SELECT p, (%(start)s + floor((p + random() * 0.9) * %(step)s))::bigint AS ms"
               "    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS p) AS s) AS g"
               " JOIN bench_template b ON b.k = mod(g.p, %(t)s)"
               " JOIN job_queue t ON t.id = b.id ORDER BY g.p")
        for g, group in enumerate(layout.groups):
            conn.execute("TRUNCATE bench_template")
            with conn.cursor().copy("COPY bench_template (k, id) FROM STDIN") as copy:
                for k, rec in enumerate(group.templates):
                    copy.write_row((k, rec.id))
            step = layout.span_ms / max(group.copies, 1)
            for lo in range(0, group.copies, rows):
                hi = min(group.copies, lo + rows) - 1
                conn.execute(sql, {"start": layout.start_ms, "step": step, "lo": lo, "hi": hi,
                                   "t": len(group.templates), "g": g})


def _sqlite_copies(path: str, layout: Plan, rows: int = 100_000) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA cache_size = -400000")
        conn.execute("PRAGMA temp_store = MEMORY")
        columns = [r[1] for r in conn.execute("PRAGMA table_info(job_queue)")]
        conn.execute("CREATE TEMP TABLE bench_template (k INTEGER PRIMARY KEY, id TEXT)")
        conn.execute("CREATE TEMP TABLE bench_copy AS SELECT * FROM main.job_queue WHERE 0")
        exprs = _copy_exprs(columns, minute="60")
        names = ", ".join(columns)
        fill = (f"WITH RECURSIVE s(p) AS (SELECT :lo UNION ALL SELECT p + 1 FROM s WHERE p < :hi),"
                " m(p, ms) AS (SELECT p, :start + CAST((p + (abs(random()) % 900) / 1000.0)"
                "              * :step AS INTEGER) FROM s),"
                " g(p, h, r, at) AS (SELECT p, printf('%012x', ms), lower(hex(randomblob(9))),"
                "                    ms / 1000.0 FROM m) "
                f"INSERT INTO temp.bench_copy ({names}) SELECT {', '.join(exprs)} FROM g"
                " JOIN temp.bench_template b ON b.k = g.p % :t"
                " JOIN main.job_queue t ON t.id = b.id ORDER BY g.p")
        for group in layout.groups:
            conn.execute("DELETE FROM temp.bench_template")
            conn.executemany("INSERT INTO temp.bench_template VALUES (?, ?)",
                             [(k, rec.id) for k, rec in enumerate(group.templates)])
            step = layout.span_ms / max(group.copies, 1)
            for lo in range(0, group.copies, rows):
                hi = min(group.copies, lo + rows) - 1
                _sqlite_fill(conn, fill, names, {"start": layout.start_ms, "step": step,
                                                 "lo": lo, "hi": hi,
                                                 "t": len(group.templates)})
        # the copies' pages into the database file, as the store's checkpoints would have
        # done by the time anyone reads: readers do not look through a gigabyte of WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _sqlite_fill(conn: Any, fill: str, names: str, args: dict[str, Any]) -> None:
    """One transaction of copies: made into a temporary table, then inserted into the jobs
    (the counter triggers fire) and their searchable texts into job_text (as ``restore``
    does; its trigger fills the full-text index)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(fill, args)
    conn.execute(f"INSERT INTO main.job_queue ({names}) SELECT {names} FROM temp.bench_copy")
    conn.execute("INSERT INTO main.job_text (job_id, tags, exception) "
                 "SELECT id, tags, exception FROM temp.bench_copy "
                 "WHERE tags IS NOT NULL OR exception IS NOT NULL")
    conn.execute("DELETE FROM temp.bench_copy")
    conn.execute("COMMIT")


def load(manager: Any, server: Any, n: int) -> dict[str, Any]:
    """The store of ``n`` jobs (plus the workflows' jobs): the records through ``restore``,
    the copies in the store. Returns the times and what the store should now count."""
    payloads = {name: manager.codec.encode({"args": [42], "kwargs": {"user_id": 7}},
                                           job_id="x", queue="default") for name in NAMES}
    now = manager.driver.now()
    t0 = time.monotonic()
    layout = plan(n, now, payloads)
    restored = 0
    for chunk in _chunks(layout.restored):
        restored += manager.driver.restore(chunk)
    t1 = time.monotonic()
    if layout.copies:
        copy = {"postgres": lambda: _pg_copies(server.url, layout),
                "sqlite": lambda: _sqlite_copies(server.path, layout)}.get(server.backend)
        if copy is None:  # a store without SQL: the copies as records too
            raise RuntimeError(f"no server-side copies on {server.backend}")
        copy()
        # what the store's maintenance does after writes: PostgreSQL's counter deltas (one row
        # per queue, state and second of completion per statement; a month of completions in a
        # few statements is a million rows) are folded by prune, which deletes nothing here
        manager.driver.prune(YEARS, YEARS)
    t2 = time.monotonic()
    return {"jobs": restored + layout.copies, "restored": restored, "copied": layout.copies,
            "restore_s": t1 - t0, "copy_s": t2 - t1, "load_s": t2 - t0,
            "intended": layout.intended()}
