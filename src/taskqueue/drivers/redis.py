"""Redis: sorted sets per queue and one Lua script per transition; one server or a Cluster.

URL: ``redis://[user:password@]host:port/db?prefix=tq&strict=true`` (``prefix`` defaults to
``taskqueue``; other query parameters go to redis-py); ``redis+cluster://host:port`` or
``?cluster=true`` for a Redis Cluster (``_redis_cluster``). Every key starts with the prefix.

Layout (version 2, see ``_redis_layout``). A queue's keys share the hash tag ``{<queue>}``
(``<prefix>:{<queue>}:...``), so they live in one Cluster slot, and every script names one
queue's base key and touches only that queue's keys:

* ``job:<id>`` -- a hash with the job-record fields (times as integer microseconds);
* ``pending``, ``processing``, ... -- one sorted set per state, scored by ``available_at``
  (pending, retrying), lease expiry (processing), ``completed_at`` (completed) or the finish
  time (failed, cancelled): counts, recovery, stats and pruning read them;
* ``ready`` -- reservable jobs, scored ``(1000 - priority) * 2**42 + available_at_ms`` so
  higher priority comes first, then the oldest, ties by id (UUIDv7, time-ordered);
* ``delayed`` -- waiting jobs not yet due (delays, retry backoff), scored by due time; reserve
  moves the due ones to ``ready``;
* ``parked`` + ``waits:<id>`` -- jobs with unmet dependencies and the parents they wait for;
  ``dependents:<id>`` -- the jobs (of any queue) waiting on ``<id>``. An edge is satisfied
  once, by removing the parent from ``waits:<id>`` (a completion, or a failed parent let run
  anyway); a parent retried and completed later finds it gone and counts nothing twice;
* ``idem`` -- idempotency key -> the job holding it (a key is unique within its queue);
* ``wake`` -- a short list pushed on new ready work; idle workers ``BLPOP`` it.

Global keys, each used alone (never in a script with a queue's keys): ``<prefix>:queues`` (the
queue names; the driver adds a queue in the round trip of a push, once per ``QUEUE_KNOWN_FOR``
seconds), ``<prefix>:schema``, ``<prefix>:lock:<name>`` (SET PX), ``<prefix>:counter:<key>``
(INCRBY + PEXPIRE) and ``<prefix>:registry:{<kind>}`` (hash + expiry set, one tag). There is no
id index: a lookup by id asks every queue in one round trip (``_homes``); the worker's own
calls use the queues remembered from reserve (``_redis_memory``).

Idempotency modes. A job hash has ``idempotency_mode`` (absent: "exists") and, for "window",
``idempotency_window``. A script that frees a key touches the job's hash only: it drops
``idempotency_key`` (reserve for "started"/"debounce", finishing for "finished") or sets
``idempotency_expires_at`` (finishing, "window"). The queue's claim counts only while its
holder still has the key unexpired; push and restore check that and clear stale claims, delete
and prune clear the job's own.

All lease and delay arithmetic runs inside the scripts on ``TIME``, the server's clock (on a
Cluster, the clock of the primary that owns the queue).

Round trips. A push without dependencies is one script call (plus, in the same round trip, the
queue set when the queue is new to this driver); ``reserve`` answers one row per job in
JobRecord's field order (``_redis_codec`` maps it by position); ``complete_many`` is one script
per queue, all in one round trip, with the queues remembered from reserve (a job not found there
is looked up), and ``complete_and_reserve`` sends them with the next one-queue reservation in
the same round trip; pipelines send plain EVALSHAs (no SCRIPT EXISTS first); an idle worker's
BLPOP is pipelined with its reserve, so a wake-up is one round trip, and a reserve that takes
nothing answers when the next delayed job falls due, which the wait needs. The client uses
hiredis when installed (the ``redis`` extra depends on it).

Atomicity: every transition of one job -- push with its idempotency claim, reserve, heartbeat,
complete, fail, release, progress, recover, cancel, retry, re-prioritise, delete, prune,
restore -- is one script in one slot, so it is atomic and fenced by the lease epoch exactly like
the SQL drivers, on one server and on a Cluster; so are reserve_job, replace_payload and the
settling of a failed job's dependents in its queue. Only these steps span several scripts:

* reserving from several queues peeks each queue's best jobs, then reserves the chosen number
  from each (each step atomic; another worker may take a peeked job, we then look again);
* a dependency on a job of *another* queue: the child is pushed parked (the parent counted as
  unmet), then registered with the parent's queue, which answers whether it is already met;
  completing a parent (or ``dependency_failed``) settles same-queue children in its script
  and other-queue children in a second call. A crash between the two steps of a completion
  leaves a child parked: ``recover_expired`` re-checks parked jobs now and then and releases
  those whose parents completed (or vanished for over a minute). After a crash in
  ``dependency_failed`` the caller calls it again (it is idempotent);
* restore skips ids another queue holds after asking every queue (an admin transfer, not a
  concurrent path). Push does not look for its id in other queues: ids are UUIDv7s.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from taskqueue.drivers import _attempts, _registry, _views
from taskqueue.drivers import _redis_cluster as cluster
from taskqueue.drivers import _redis_codec as rc
from taskqueue.drivers import _redis_keys as rk
from taskqueue.drivers import _redis_layout as layout
from taskqueue.drivers._redis_lane import Lane
from taskqueue.drivers._redis_memory import Memory, Primed
from taskqueue.drivers.base import (
    CloseHooks,
    DueFilter,
    HeartbeatResult,
    JobFilter,
    QueueStats,
    check_bulk,
)
from taskqueue.errors import Conflict, DriverError, DriverUnavailable
from taskqueue.jobs.model import Attempt, JobRecord, LeaseToken, NewJob
from taskqueue.jobs.states import State

QUEUE_SCRIPTS = ("push", "push_one", "reserve", "reserve_job", "peek", "heartbeat", "complete",
                 "complete_many", "fail",
                 "release", "set_progress", "recover", "cancel", "retry", "set_priority",
                 "delete", "prune", "restore", "depend", "unblock", "replace_payload",
                 "dependency_failed", "due", "bulk", "stats")
PLAIN_SCRIPTS = ("lock", "counter", "registry")
#: Longest single BLPOP of ``wait_for_work`` (seconds).
BLOCK_MAX = 1.0
#: On a Cluster, a worker whose queues hash to several slots blocks on each slot in turn for
#: at most this long (one BLPOP may only name keys of one slot).
SLOT_TURN = 0.05
#: How often ``recover_expired`` re-checks parked jobs, and how old a job must be before a
#: missing parent counts as met (a producer may still be pushing it).
REPAIR_EVERY = 30.0
REPAIR_GRACE_US = 60_000_000
BATCH = 500
#: How long a queue this driver added to the queue set is taken to be still there (seconds):
#: a push names its queue in the set only when the driver has not done so this recently.
QUEUE_KNOWN_FOR = 30.0

Call = tuple[str, str, list[Any]]   # (script, queue, args)
#: Scripts that may go through the lane (see ``_run``): pushing a job again is safe.
_PUSHES = frozenset({"push", "push_one"})


def preload() -> None:
    """What every driver would otherwise work out after a fork, done once in the fork server
    (no connection): the scripts' sources (assembled from ``queries/``) and their SHA1s
    (hashing in a worker maps ~1 MB more of OpenSSL), redis-py's version (read from the
    distribution's metadata on the first connection) and the IDNA codec a host name needs."""
    from redis.utils import get_lib_version

    for name in QUEUE_SCRIPTS:
        rk.script_sha(name)
    for name in PLAIN_SCRIPTS:
        rk.script_sha(name, per_queue=False)
    get_lib_version()
    "localhost".encode("idna")


def _best_first(job: JobRecord) -> tuple[int, datetime, str]:
    """The order reserved jobs are handed out in: highest priority, then oldest due, then id."""
    return -job.priority, job.available_at, job.id


class RedisDriver(CloseHooks, _views.ReadsEveryMatch):
    name = "redis"

    def __init__(self, client: Any, *, prefix: str = rk.DEFAULT_PREFIX,
                 strict: bool = False, blocking: Any = None) -> None:
        self.keys = rk.Keys(prefix)
        self.strict = strict
        self._r = client
        self.cluster = cluster.is_cluster(client)
        self._where = cluster.describe(client)
        # Blocking pops get their own client, with a socket timeout above the block time.
        self._blocking = blocking or cluster.blocking_twin(client, BLOCK_MAX + 5)
        self._scripts = {name: rk.register_script(client, name) for name in QUEUE_SCRIPTS}
        self._scripts.update({name: rk.register_script(client, name, per_queue=False)
                              for name in PLAIN_SCRIPTS})
        self._next_repair = 0.0
        self._memory = Memory()   # reserved jobs' queues; a wake-up's reservation
        self._known_queues: dict[str, float] = {}   # queue -> when this driver last added it
        #: single pushes skip the pool's per-call checks (not on a Cluster: one node per slot)
        self._lane = None if self.cluster else Lane(client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisDriver:
        migrate = options.pop("migrate", True)
        target = cluster.parse(url, options, rk.DEFAULT_PREFIX)
        rk.Keys(target.prefix)   # a bad prefix fails before any connection
        options.setdefault("socket_connect_timeout", 5.0)
        options.setdefault("health_check_interval", 15)
        options.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.05), 2,
                                          supported_errors=(RedisConnectionError,)))
        try:
            client, blocking = cluster.connect(target, options, BLOCK_MAX + 5)
        except cluster.ERRORS as exc:   # the cluster client reads the slot map at once
            raise DriverUnavailable(f"redis cluster at {target.url} is unavailable: {exc}"
                                    ) from exc
        driver = cls(client, prefix=target.prefix, strict=target.strict, blocking=blocking)
        try:
            with driver._guard():
                cluster.refuse_cluster_node(client, driver._where)
                if migrate:   # a reader (stats, jobs list) neither writes nor warns
                    rk.check_durability(driver._nodes(), target.strict, driver._where)
            if migrate:
                driver.migrate()
        except BaseException:
            driver.close()
            raise
        return driver

    # -- plumbing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate redis-py errors at the boundary."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise DriverUnavailable(f"redis at {self._where} is unavailable: {exc}") from exc
        except cluster.ERRORS as exc:
            if cluster.passing(exc):
                raise DriverUnavailable(f"redis at {self._where} is unavailable: "
                                        f"{cluster.explain(exc) or exc}") from exc
            if isinstance(exc, ResponseError):
                if str(exc).startswith("CONFLICT"):
                    raise Conflict(f"redis: {exc}") from exc
                raise DriverError(f"redis: {cluster.explain(exc) or exc}") from exc
            raise DriverError(f"redis at {self._where}: {cluster.explain(exc) or exc}") from exc

    def _nodes(self) -> list[Any]:
        """One single-node client per server that holds data (each primary of a Cluster)."""
        if self.cluster:
            return [self._r.get_redis_connection(n) for n in self._r.get_primaries()]
        return [self._r]

    def _run(self, script: str, queue: str, args: Sequence[Any], *,
             named: Sequence[str] = ()) -> Any:
        """One per-queue script: a plain EVALSHA (redis-py's Script wrapper costs a producer
        more CPU than the call), loading the script when the server does not know it.
        ``named``: the queues this call relies on being in the queue set (see ``_rescript``)."""
        found = self._scripts[script]
        try:
            if script in _PUSHES and self._lane is not None:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    # a failed lane falls through to the pool, with the client's retries:
                    # pushing a job again is safe (the script accepts its own id again)
                    done, reply = self._lane.call("EVALSHA", found.sha, 1,
                                                  self.keys.queue(queue), *args)
                    if done:
                        return reply
            return self._r.execute_command("EVALSHA", found.sha, 1, self.keys.queue(queue), *args)
        except NoScriptError:
            self._rescript(named)
            return found(keys=[self.keys.queue(queue)], args=list(args), client=self._r)

    def _rescript(self, queues: Sequence[str]) -> None:
        """The server forgot the scripts: it restarted or was flushed, so the queue set may be
        gone too. Forget which queues this driver named, and name ``queues`` again now."""
        self._known_queues.clear()
        if queues:
            self._r.sadd(self.keys.queues, *queues)
            self._known_queues.update(dict.fromkeys(queues, time.monotonic()))

    def _run_many(self, calls: Sequence[Call], *, queues: Iterable[str] = ()) -> list[Any]:
        """Run per-queue scripts in one round trip (a pipeline when there are several).

        The pipeline sends plain EVALSHAs: redis-py's Script objects would make every
        pipeline ask SCRIPT EXISTS first, an extra round trip. A script the server does not
        know (restarted, flushed) fails alone with NOSCRIPT and is loaded and run again.

        ``queues``: queues to name in the queue set first (a global key), in the same round
        trip, unless this driver did so recently."""
        queues = list(dict.fromkeys(queues))
        now = time.monotonic()
        fresh = [q for q in queues
                 if now - self._known_queues.get(q, -QUEUE_KNOWN_FOR) >= QUEUE_KNOWN_FOR]
        if len(calls) == 1 and not fresh:
            script, queue, args = calls[0]
            return [self._run(script, queue, args, named=queues)]
        pipe = self._r.pipeline(transaction=False)
        if fresh:
            pipe.sadd(self.keys.queues, *fresh)
        for script, queue, args in calls:
            pipe.evalsha(self._scripts[script].sha, 1, self.keys.queue(queue), *args)
        results = list(pipe.execute(raise_on_error=False))
        if fresh:
            if isinstance(results[0], Exception):
                raise results[0]
            self._known_queues.update(dict.fromkeys(fresh, now))
            results = results[1:]
        if any(isinstance(r, NoScriptError) for r in results):
            self._rescript(queues)
        for pos, result in enumerate(results):
            if isinstance(result, NoScriptError):
                script, queue, args = calls[pos]
                results[pos] = self._run(script, queue, args)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _homes(self, ids: Sequence[str]) -> dict[str, str]:
        """Queue of each existing job id: every queue is asked (one round trip; there is no
        global id index, which would put a second slot into every push)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        queues = self._queue_names()
        if not queues:
            return {}
        pairs = [(i, q) for i in ids for q in queues]
        pipe = self._r.pipeline(transaction=False)
        for job_id, queue in pairs:
            pipe.exists(self.keys.job(queue, job_id))
        found: dict[str, str] = {}
        for (job_id, queue), hit in zip(pairs, pipe.execute(), strict=True):
            if hit:
                found.setdefault(job_id, queue)
        return found

    def _settle_homes(self, ids: Sequence[str]) -> dict[str, str]:
        """Queue of each job id: remembered from reserve, else looked up."""
        homes, missing = self._memory.homes(ids)
        if missing:
            homes.update(self._homes(missing))
        return homes

    def _queue_names(self) -> list[str]:
        return sorted(rc.text(q) for q in self._r.smembers(self.keys.queues))

    def _now_us(self) -> int:
        seconds, micros = self._r.time()
        return int(seconds) * 1_000_000 + int(micros)

    def migrate(self) -> list[int]:
        """Redis needs no schema; the key layout has a version (``_redis_layout``)."""
        with self._guard():
            return layout.upgrade(self._r, self.keys.prefix, self.keys.sub)

    def schema_absent(self) -> bool:
        with self._guard():
            return layout.absent(self._r, self.keys.prefix)

    def missing_migrations(self) -> list[int]:
        with self._guard():
            return layout.missing(self._r, self.keys.prefix)

    def close(self) -> None:
        self._closing()
        with contextlib.suppress(DriverError):
            self._from_wait(None, 0.0)   # hand back what a wait reserved
        if self._lane is not None:
            self._lane.close()
        self._r.close()
        self._blocking.close()
        if not self.cluster:   # a pool handed to a client is not closed with it
            self._blocking.connection_pool.disconnect()

    def now(self) -> datetime:
        with self._guard():
            return rc.from_us(self._now_us())

    # -- producing ------------------------------------------------------------------------
    def push(self, jobs: Sequence[NewJob]) -> list[str]:
        if not jobs:
            return []
        if len(jobs) == 1 and not jobs[0].dependencies and jobs[0].idempotency_key != "":
            return [self._push_one(jobs[0])]
        if len({j.id for j in jobs}) != len(jobs):
            raise Conflict("redis: the same job id appears twice in one push")
        with self._guard():
            ids = self._store(jobs, rc.push_args, "push")
        return [rc.text(i) for i in ids]

    def _push_one(self, job: NewJob) -> str:
        """The common single enqueue (one job, no dependencies): its own script, plain
        arguments. When this driver named the queue in the queue set recently, the script goes
        straight onto the lane, without the context managers, the queue bookkeeping and the
        generic dispatch of ``_run_many`` (a producer's own CPU per push: see CHANGELOG). Any
        failure there, a lost connection, a NOSCRIPT or an error reply, sends it again through
        ``_run_many``, which retries, reloads the script and reports as every other call does:
        pushing the same job again is safe (the script accepts its own id again)."""
        queue = job.queue_name
        args = rc.push_one_args(job)
        lane = self._lane
        if (lane is not None and time.monotonic() - self._known_queues.get(queue, -QUEUE_KNOWN_FOR)
                < QUEUE_KNOWN_FOR):
            try:
                done, reply = lane.call("EVALSHA", self._scripts["push_one"].sha, 1,
                                        self.keys.queue(queue), *args)
            except (RedisConnectionError, RedisTimeoutError, OSError, ResponseError):
                done = False
            if done:
                return rc.text(reply)
        with self._guard():
            answer = self._run_many([("push_one", queue, args)], queues=(queue,))
        return rc.text(answer[0])

    def _store(self, jobs: Sequence[Any], encode: Callable[[Any, list[str], list[str]], list[Any]],
               script: str) -> list[Any]:
        """Push or restore a batch: one script per queue (naming new queues in the queue set in
        the same round trip), then cross-queue dependency links. Returns the script's per-job
        answers in input order (restore: 0 for an id another queue holds)."""
        deps = [d for j in jobs for d in j.dependencies]
        homes = self._homes(deps) if deps else {}
        elsewhere: set[str] = set()
        if script == "restore":   # a job's id is taken in whichever queue holds it
            own = {j.id: j.queue_name for j in jobs}
            elsewhere = {i for i, q in self._homes(list(own)).items() if q != own[i]}
        groups: dict[str, list[int]] = defaultdict(list)
        for pos, job in enumerate(jobs):
            homes[job.id] = job.queue_name
            if job.id not in elsewhere:
                groups[job.queue_name].append(pos)
        calls: list[Call] = []
        for queue, positions in groups.items():
            args: list[Any] = []
            for pos in positions:
                known = [d for d in jobs[pos].dependencies if d in homes]
                args += encode(jobs[pos], [d for d in known if homes[d] == queue],
                               [d for d in known if homes[d] != queue])
            calls.append((script, queue, args))
        answers: list[Any] = [0] * len(jobs)
        results = self._run_many(calls, queues=groups) if calls else []
        for positions, result in zip(groups.values(), results, strict=True):
            for pos, answer in zip(positions, result, strict=True):
                answers[pos] = answer
        # A job stands for itself when it was inserted (push answers its id, restore 1).
        links = [(homes[d], d, j.id, j.queue_name)
                 for j, answer in zip(jobs, answers, strict=True)
                 if answer in (1, j.id.encode()) for d in j.dependencies
                 if d in homes and homes[d] != j.queue_name]
        self._link(links)
        return answers

    def _link(self, links: Sequence[tuple[str, str, str, str]]) -> None:
        """Register children with parents in other queues; unblock the ones already met."""
        if not links:
            return
        by_parent: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for parent_queue, parent, child, child_queue in links:
            by_parent[parent_queue].append((parent, child, child_queue))
        calls: list[Call] = [("depend", q, [x for p, c, _ in items for x in (p, c)])
                             for q, items in by_parent.items()]
        met: list[tuple[str, str, str]] = []
        for items, answers in zip(by_parent.values(), self._run_many(calls), strict=True):
            met += [(cq, c, p) for (p, c, cq), ok in zip(items, answers, strict=True) if ok]
        self._unblock(met)

    def _unblock(self, met: Sequence[tuple[str, str, str]]) -> None:
        """Tell children's queues that these (queue, child, parent) dependencies are met."""
        by_queue: dict[str, list[str]] = defaultdict(list)
        for queue, child, parent in met:
            by_queue[queue] += [child, parent]
        if by_queue:
            self._run_many([("unblock", q, args) for q, args in by_queue.items()])

    # -- consuming ------------------------------------------------------------------------
    def reserve(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        queues = list(dict.fromkeys(queues))
        if not queues or limit <= 0:
            return []
        lease_us = int(lease_seconds * 1_000_000)
        with self._guard():
            if len(queues) == 1:
                primed = self._memory.prime(worker_id, queues[0], limit, lease_us)
                jobs = self._from_wait(primed, lease_seconds)
                if not jobs:
                    jobs = self._take([(queues[0], limit)], worker_id, lease_us)
            else:
                jobs = self._take_across(queues, worker_id, limit, lease_us)
        jobs.sort(key=_best_first)
        return jobs

    def _from_wait(self, wanted: Primed | None, lease_seconds: float) -> list[JobRecord]:
        """The jobs ``wait_for_work`` reserved when it woke up, if they are what this call
        asks for (see ``Memory.claim``); the others are handed back (no attempt used)."""
        jobs, others = self._memory.claim(wanted, lease_seconds)
        for job in others:
            self.release(job.token)
        return jobs

    def _sweep_waited(self) -> None:
        """Hand back a wake-up's reservation that its worker did not come for (paused,
        stopping). Called by the calls a worker makes periodically from its heartbeat thread;
        a worker leaving (``registry_remove``) and ``close`` hand it back at once."""
        for job in self._memory.stale():
            self.release(job.token)

    def _take(self, wanted: Sequence[tuple[str, int]], worker: str, lease_us: int
              ) -> list[JobRecord]:
        calls: list[Call] = [("reserve", q, [worker, lease_us, n]) for q, n in wanted]
        return self._taken([q for q, _ in wanted], self._run_many(calls))

    def _taken(self, queues: Sequence[str], replies: Sequence[Any]) -> list[JobRecord]:
        """The jobs of reserve replies (one per queue), remembered; what an empty reply says
        of the next due time is noted for the wait that may follow."""
        rows: list[Any] = []
        for queue, reply in zip(queues, replies, strict=True):
            taken, due = rc.split_reserve(reply)
            if due != rc.UNTOLD:
                self._memory.note_due(queue, due)
            rows += taken
        jobs = rc.decode_rows(rows)
        self._memory.remember(jobs)
        return jobs

    def _take_across(self, queues: list[str], worker: str, limit: int, lease_us: int
                     ) -> list[JobRecord]:
        """Peek at each queue's best jobs, reserve the overall best; look again if others
        took some meanwhile."""
        taken: list[JobRecord] = []
        for _ in range(3):
            need = limit - len(taken)
            if need <= 0:
                break
            heads = self._run_many([("peek", q, [need]) for q in queues])
            best = sorted((float(flat[i + 1]), flat[i], q) for q, flat in zip(queues, heads,
                                                                              strict=True)
                          for i in range(0, len(flat), 2))[:need]
            if not best:
                break
            counts = Counter(q for _, _, q in best)
            got = self._take(list(counts.items()), worker, lease_us)
            taken += got
            if len(got) == len(best):
                break
        return taken

    def reserve_job(self, worker_id: str, job_id: str, lease_seconds: float) -> JobRecord | None:
        row = self._by_id("reserve_job", job_id, worker_id, int(lease_seconds * 1_000_000))
        if not row:
            return None
        jobs = rc.decode_rows([row])
        self._memory.remember(jobs)
        return jobs[0]

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        found: dict[str, set[str]] = {"e": set(), "c": set(), "l": set()}
        self._sweep_waited()
        with self._guard():
            homes = self._homes([t.job_id for t in tokens])
            groups: dict[str, list[LeaseToken]] = defaultdict(list)
            for token in tokens:
                if token.job_id in homes:
                    groups[homes[token.job_id]].append(token)
                else:
                    found["l"].add(token.job_id)
            calls: list[Call] = [
                ("heartbeat", q, [int(lease_seconds * 1_000_000)]
                 + [x for t in group for x in (t.job_id, int(t.epoch))])
                for q, group in groups.items()]
            results = self._run_many(calls) if calls else []
        for group, answers in zip(groups.values(), results, strict=True):
            for token, answer in zip(group, answers, strict=True):
                found[rc.text(answer)].add(token.job_id)
        return HeartbeatResult(frozenset(found["e"]), frozenset(found["c"]),
                               frozenset(found["l"]))

    def _by_id(self, script: str, job_id: str, *args: Any, held: bool = False) -> Any:
        """Run a per-queue script on the queue of ``job_id``; None when the job is unknown.
        ``held``: the caller holds the job's lease, so the queue remembered from reserve is
        right (a job never changes queues; a deleted one fails the script's lease check)."""
        with self._guard():
            queue = self._memory.homes([job_id])[0].get(job_id) if held else None
            if queue is None:
                queue = self._homes([job_id]).get(job_id)
            if queue is None:
                return None
            return self._run(script, queue, [job_id, *args])

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """One script per queue (atomic per job) in one round trip; the queues are remembered
        from reserve. A job not found in its remembered queue is looked up and tried again."""
        if not items:
            return []
        with self._guard():
            return self._complete_all(items)[0]

    def complete_and_reserve(
        self, items: Sequence[tuple[LeaseToken, str | None]], worker_id: str,
        queues: Sequence[str], limit: int, lease_seconds: float,
    ) -> tuple[list[bool], list[JobRecord]]:
        """``complete_many(items)``, then ``reserve(...)`` of one queue, in one round trip:
        the reservation's script goes in the completions' pipeline, after them, so it sees
        the dependents they released in its queue. Each script is atomic, as when sent
        apart; a retry after a lost reply finds the completions done (refused: no second
        completion) and repeats only the reservation, as a retried ``reserve`` would. An
        idle worker acknowledges its last job this way with the reservation it makes anyway
        (one round trip where it made two), and a drain each batch with the next one.
        Several queues (a peek first) or jobs a wake-up already reserved: the two calls."""
        queues = list(dict.fromkeys(queues))
        reserving = bool(queues) and limit > 0
        if not items or len(queues) != 1 or limit <= 0:
            answers = self.complete_many(items) if items else []
            return answers, (self.reserve(worker_id, queues, limit, lease_seconds)
                             if reserving else [])
        lease_us = int(lease_seconds * 1_000_000)
        with self._guard():
            primed = self._memory.prime(worker_id, queues[0], limit, lease_us)
            jobs = self._from_wait(primed, lease_seconds)
            if jobs:
                return self._complete_all(items)[0], jobs
            answers, reply = self._complete_all(
                items, ("reserve", queues[0], [worker_id, lease_us, limit]))
            jobs = self._taken([queues[0]], [reply])
        jobs.sort(key=_best_first)
        return answers, jobs

    def _complete_all(self, items: Sequence[tuple[LeaseToken, str | None]],
                      then: Call | None = None) -> tuple[list[bool], Any]:
        """``complete_many``'s work, with ``then`` (a script call) in the same round trip,
        after the completions; returns the answers and that call's reply."""
        ids = [t.job_id for t, _ in items]
        answers, reply = self._complete(items, range(len(items)), self._settle_homes(ids), then)
        again = [pos for pos, answer in enumerate(answers) if answer < 0]
        if again:   # a stale memo entry (or an unknown job): ask the index
            homes = self._homes([ids[pos] for pos in again])
            for pos, answer in zip(again, self._complete(items, again, homes)[0], strict=True):
                answers[pos] = answer
        self._memory.forget(ids)
        return [answer > 0 for answer in answers], reply

    def _complete(self, items: Sequence[tuple[LeaseToken, str | None]], positions: Iterable[int],
                  homes: dict[str, str], then: Call | None = None) -> tuple[list[int], Any]:
        """Complete the items at ``positions`` in the queues of ``homes``: per position 1
        (done), 0 (lease not held) or -1 (not in that queue), and the reply of ``then``,
        run in the same round trip after them. Then unblock dependents living in other
        queues."""
        positions = list(positions)
        groups: dict[str, list[int]] = defaultdict(list)
        for pos in positions:
            queue = homes.get(items[pos][0].job_id)
            if queue is not None:
                groups[queue].append(pos)
        calls: list[Call] = []
        for queue, group in groups.items():
            args: list[Any] = []
            for pos in group:
                token, result = items[pos]
                args += [token.job_id, int(token.epoch), "" if result is None else "=" + result]
            calls.append(("complete_many", queue, args))
        found = {pos: -1 for pos in positions}
        release: list[tuple[str, str]] = []
        results = self._run_many([*calls, then] if then else calls) if calls or then else []
        reply = results.pop() if then else None
        for group, (answers, remote) in zip(groups.values(), results, strict=True):
            found.update(zip(group, answers, strict=True))
            release += [(rc.text(c), rc.text(p)) for c, p in zip(remote[::2], remote[1::2],
                                                                 strict=True)]
        if release:
            child_homes = self._homes([c for c, _ in release])
            self._unblock([(child_homes[c], c, p) for c, p in release if c in child_homes])
        return [found[pos] for pos in positions], reply

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        if self._memory.knows(token.job_id):
            return self.complete_many([(token, result)])[0]
        # Not reserved through this driver object: look the queue up, complete in it.
        answer = self._by_id("complete", token.job_id, int(token.epoch),
                             "" if result is None else "=" + result)
        if not answer or not answer[0]:
            return False
        children = [rc.text(c) for c in answer[1:]]
        if children:
            with self._guard():
                homes = self._homes(children)
                self._unblock([(homes[c], c, token.job_id) for c in children if c in homes])
        return True

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        delay = "" if retry_in is None else int(retry_in * 1_000_000)
        done = self._by_id("fail", token.job_id, int(token.epoch), error, delay,
                           _attempts.clip(error), held=True)
        self._memory.forget([token.job_id])
        return bool(done)

    def release(
        self, token: LeaseToken, delay_seconds: float = 0.0, reason: str | None = None
    ) -> bool:
        done = self._by_id("release", token.job_id, int(token.epoch),
                           int(delay_seconds * 1_000_000), "" if reason is None else "=" + reason,
                           held=True)
        self._memory.forget([token.job_id])
        return bool(done)

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        return bool(self._by_id("set_progress", token.job_id, int(token.epoch),
                                repr(float(progress)), held=True))

    def recover_expired(self) -> list[str]:
        recovered: list[str] = []
        with self._guard():
            for queue in self._queue_names():
                while True:
                    ids = [rc.text(i) for i in self._run("recover", queue, [BATCH, "", "", ""])]
                    recovered += ids
                    if len(ids) < BATCH:
                        break
            if time.monotonic() >= self._next_repair:
                self._next_repair = time.monotonic() + REPAIR_EVERY
                self._repair_parked()
        return recovered

    def recover_worker(
        self, worker_id: str, reason: str, started: Collection[str] | None = None
    ) -> list[str]:
        listed = "*" if started is None else json.dumps(sorted(started))
        with self._guard():
            return [rc.text(i) for queue in self._queue_names()
                    for i in self._run("recover", queue, [BATCH, worker_id, reason, listed])]

    def _repair_parked(self) -> None:
        """Release parked jobs whose parents completed (a crash between a parent's completion
        and the unblocking of a child in another queue would otherwise strand the child)."""
        now = self._now_us()
        for queue in self._queue_names():
            self._unblock(rk.parked_met(self._r, self.keys, queue, self._homes, now,
                                        REPAIR_GRACE_US))

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """BLPOP the queues' wake lists in slices of at most a second, returning on a wake-up
        or when the next delayed job falls due.

        When the worker's last ``reserve`` asked for exactly these queues (one queue), each
        BLPOP is pipelined with that reserve: Redis runs it as soon as the BLPOP returns, and
        the jobs are kept for the worker's next ``reserve`` (handed back if it asks for
        something else, comes late, or the driver closes). A wake-up then costs one round
        trip instead of two, each of which wakes an idle process on both ends.

        Each slice blocks until the next delayed job falls due at the latest. A reservation
        that took nothing says when that is (the reserve script's empty answer), so the wait
        right after one, and every slice after a pipelined reserve, needs no ``due`` call of
        its own: an idle worker's round trips per job are the wake-up, its acknowledgement
        and the reservation that comes back empty."""
        if not queues:
            time.sleep(max(0.0, timeout))
            return
        deadline = time.monotonic() + timeout
        groups = cluster.slot_groups(self.keys.sub(q, "wake") for q in queues) \
            if self.cluster else [[self.keys.sub(q, "wake") for q in queues]]
        turn = 0
        primed = self._memory.primed_for(queues)
        with self._guard():
            while (remaining := deadline - time.monotonic()) > 0:
                block = min(remaining, BLOCK_MAX if len(groups) == 1 else SLOT_TURN)
                told, due_in = self._memory.due_for(queues)
                if not told:
                    due_in = self._due_in(queues)
                if due_in is not None:
                    if due_in <= 0:
                        return
                    block = min(block, due_in)
                wake_keys, turn = groups[turn % len(groups)], turn + 1
                if primed is None:
                    if self._blocking.blpop(wake_keys, timeout=max(block, 0.01)):
                        return
                elif self._wait_and_take(wake_keys, max(block, 0.01), primed):
                    return

    def _due_in(self, queues: Sequence[str]) -> float | None:
        """Seconds until the earliest delayed job of these queues falls due (None: no job
        waits for a time), each measured by its own queue's server clock."""
        due = [int(us) for us in self._run_many([("due", q, []) for q in queues])
               if us is not None]
        return min(due) / 1_000_000 if due else None

    def _wait_and_take(self, wake_keys: list[str], block: float, primed: Primed) -> bool:
        """BLPOP and then the primed reserve, in one pipeline on the blocking connection.
        True when woken or when jobs were reserved (kept for the next reserve)."""
        pipe = self._blocking.pipeline(transaction=False)
        pipe.blpop(wake_keys, timeout=block)
        pipe.evalsha(self._scripts["reserve"].sha, 1, self.keys.queue(primed.queue),
                     primed.worker, primed.lease_us, primed.limit)
        woke, rows = pipe.execute(raise_on_error=False)
        if isinstance(woke, Exception):
            raise woke
        if isinstance(rows, NoScriptError):
            self._rescript(())
            self._scripts["reserve"].sha = self._r.script_load(self._scripts["reserve"].script)
            return bool(woke)
        if isinstance(rows, Exception):
            raise rows
        rows, due = rc.split_reserve(rows)
        if due != rc.UNTOLD:   # for the next slice's block time
            self._memory.note_due(primed.queue, due)
        jobs = rc.decode_rows(rows)
        if jobs:
            self._memory.remember(jobs)
            self._memory.keep(primed, jobs)
        return bool(woke or jobs)

    # -- managing -------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        with self._guard():
            queue = self._homes([job_id]).get(job_id)
            if queue is None:
                return None
            return rc.decode_job(self._r.hgetall(self.keys.job(queue, job_id)))

    def dependents(self, job_ids: Sequence[str]) -> list[str]:
        """``children:<parent>`` of every queue (a child indexes its parents in its own queue):
        one pipelined SMEMBERS per queue and id, in one round trip (per node on a cluster)."""
        if not job_ids:
            return []
        with self._guard():
            pipe = self._r.pipeline(transaction=False)
            for queue in self._queue_names():
                for job_id in job_ids:
                    pipe.smembers(self.keys.sub(queue, f"children:{job_id}"))
            return sorted({rc.text(c) for found in pipe.execute() for c in found})

    def attempt_history(self, job_id: str) -> list[Attempt]:
        with self._guard():
            queue = self._homes([job_id]).get(job_id)
            if queue is None:
                return []
            return _attempts.parse(self._r.hget(self.keys.job(queue, job_id), "attempt_history"))

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        with self._guard():
            matches = self._scan(criteria, criteria.offset + criteria.limit)
        return matches[criteria.offset:criteria.offset + criteria.limit]

    def count(self, criteria: JobFilter) -> int:
        with self._guard():
            if not (criteria.names or criteria.ids or criteria.tag is not None
                    or criteria.batch_id is not None or criteria.exception_contains
                    or criteria.after_id is not None):
                pipe = self._r.pipeline(transaction=False)
                for queue in criteria.queues or self._queue_names():
                    for state in criteria.states or State:
                        pipe.zcard(self.keys.sub(queue, State(state).value))
                return sum(pipe.execute())
            return len(self._matching(criteria, None))

    def _scan(self, criteria: JobFilter, wanted: int | None) -> list[JobRecord]:
        """Matching jobs in id order, until ``wanted`` are found; only matches are read whole."""
        found = self._matching(criteria, wanted)
        out: list[JobRecord] = []
        for start in range(0, len(found), BATCH):
            pipe = self._r.pipeline(transaction=False)
            for job_id, queue in found[start:start + BATCH]:
                pipe.hgetall(self.keys.job(queue, job_id))
            out += [job for raw in pipe.execute() if (job := rc.decode_job(raw)) is not None]
        return out

    def _matching(self, criteria: JobFilter, wanted: int | None) -> list[tuple[str, str]]:
        """(id, queue) of the matching jobs in id order, at most ``wanted``. The candidates come
        from the state sets of the wanted queues and states; the other filters read only the
        fields they test (an error search reads each candidate's error, never its payload)."""
        candidates = rk.candidates(self._r, self.keys, criteria, self._homes)
        out: list[tuple[str, str]] = []
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start:start + BATCH]
            pipe = self._r.pipeline(transaction=False)
            for job_id, queue in chunk:
                pipe.hmget(self.keys.job(queue, job_id), rk.FILTER_FIELDS)
            out += [c for c, values in zip(chunk, pipe.execute(), strict=True)
                    if rk.matches(values, criteria)]
            if wanted is not None and len(out) >= wanted:
                return out[:wanted]
        return out

    def due(self, criteria: DueFilter) -> list[JobRecord]:
        """The state set of each queue (``pending``/``retrying``, scored by due time in
        microseconds, ties in id order as the set keeps them) from the cursor or from now, a
        page per queue, merged."""
        with self._guard():
            heads = self._due_ids(criteria, criteria.limit)
            heads.sort()
            wanted = heads[:criteria.limit]
            pipe = self._r.pipeline(transaction=False)
            for _, job_id, queue in wanted:
                pipe.hgetall(self.keys.job(queue, job_id))
            return [job for raw in pipe.execute() if (job := rc.decode_job(raw)) is not None]

    def count_due(self, criteria: DueFilter) -> int:
        state = _views.check_due(criteria)
        with self._guard():
            low = f"({self._now_us()}" if state is State.PENDING else "-inf"
            pipe = self._r.pipeline(transaction=False)
            for queue in criteria.queues or self._queue_names():
                pipe.zcount(self.keys.sub(queue, state.value), low, "+inf")
            return int(sum(pipe.execute()))

    def _due_ids(self, criteria: DueFilter, limit: int) -> list[tuple[int, str, str]]:
        """(due time in µs, id, queue) of the first ``limit`` waiting jobs of each queue."""
        state = _views.check_due(criteria)
        now = self._now_us() if state is State.PENDING else None
        low: int | str = "-inf" if now is None else f"({now}"
        after_us, after_id = None, ""
        if criteria.after is not None:
            after_us, after_id = rc.to_us(criteria.after[0]), criteria.after[1]
            low = after_us if now is None else max(after_us, now + 1)
        out: list[tuple[int, str, str]] = []
        for queue in criteria.queues or self._queue_names():
            key, start, found = self.keys.sub(queue, state.value), 0, 0
            while found < limit:
                page = self._r.zrangebyscore(key, low, "+inf", start=start, num=limit + 1,
                                             withscores=True)
                for member, score in page:
                    job_id, due = rc.text(member), int(score)
                    if after_us is not None and (due, job_id) <= (after_us, after_id):
                        continue
                    out.append((due, job_id, queue))
                    found += 1
                if len(page) <= limit:
                    break
                start += len(page)
        return out

    def cancel(self, job_id: str, reason: str) -> bool:
        return bool(self._by_id("cancel", job_id, reason))

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        return bool(self._by_id("replace_payload", job_id, payload,
                                int(delay_seconds * 1_000_000), repr(float(delay_seconds))))

    def dependency_failed(self, job_id: str, cancel: bool, reason: str) -> list[str]:
        """Settle the dependents in the parent's queue in one script, then those of other
        queues in one script per queue (as ``complete`` unblocks them)."""
        action = "cancel" if cancel else "release"
        with self._guard():
            queue = self._homes([job_id]).get(job_id)
            if queue is None:
                return []
            settled, remote = self._run("dependency_failed", queue, [job_id, action, reason])
            by_queue: dict[str, list[str]] = defaultdict(list)
            for child, home in self._homes([rc.text(c) for c in remote]).items():
                by_queue[home].append(child)
            calls: list[Call] = [("dependency_failed", q, [job_id, action, reason, *children])
                                 for q, children in by_queue.items()]
            for more, _ in self._run_many(calls) if calls else []:
                settled += more
        return [rc.text(i) for i in settled]

    def retry(self, job_id: str) -> bool:
        return bool(self._by_id("retry", job_id))

    def set_priority(self, job_id: str, priority: int) -> bool:
        return bool(self._by_id("set_priority", job_id, int(priority)))

    def delete(self, job_id: str) -> bool:
        with self._guard():
            queue = self._homes([job_id]).get(job_id)
            return queue is not None and bool(
                self._run("delete", queue, [job_id]))

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "",
                   priority: int | None = None) -> list[str]:
        """The ids' queues in one round trip, then one ``bulk`` script per queue (atomic for
        that queue's jobs of the page)."""
        ids = check_bulk(action, job_ids, priority)
        arg = reason if action == "cancel" else str(priority) if action == "priority" else ""
        changed: set[str] = set()
        with self._guard():
            by_queue: dict[str, list[str]] = defaultdict(list)
            for job_id, queue in self._homes(ids).items():
                by_queue[queue].append(job_id)
            for queue, members in by_queue.items():
                done = self._run("bulk", queue, [action, arg, *members])
                changed.update(rc.text(job_id) for job_id in done)
        return [job_id for job_id in ids if job_id in changed]

    def restore(self, records: Sequence[JobRecord]) -> int:
        if not records:
            return 0
        with self._guard():
            answers = self._store(records, lambda r, local, remote: rc.encode_record(
                rc.record_fields(r), local, remote), "restore")
        return sum(1 for a in answers if a == 1)

    def stats(self) -> dict[str, QueueStats]:
        """One read-only ``stats`` script per queue, all in one round trip: the counts come
        from the state sets (kept as jobs move), the gauges from the longest-waiting
        ``rk.PRIORITY_SAMPLE`` jobs, read inside the script."""
        with self._guard():
            queues = sorted(self._queue_names())
            states = [s.value for s in State]
            answers = self._run_many([("stats", q, [rk.PRIORITY_SAMPLE, *states])
                                      for q in queues]) if queues else []
        out: dict[str, QueueStats] = {}
        for queue, answer in zip(queues, answers, strict=True):
            qs = rk.stats_from_script(answer)
            if any(qs.counts.values()):
                out[queue] = qs
        return out

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        ages = {State.COMPLETED: completed_age, State.FAILED: failed_age,
                State.CANCELLED: failed_age}
        deleted = 0
        with self._guard():
            if dry_run:
                now = self._now_us()
                return sum(int(self._r.zcount(self.keys.sub(queue, state.value), "-inf",
                                              f"({now - int(age * 1_000_000)}"))
                           for queue in self._queue_names() for state, age in ages.items())
            for queue in self._queue_names():
                more = 1
                while more and (limit is None or deleted < limit):
                    cap = BATCH if limit is None else max(1, min(BATCH, limit - deleted))
                    count, more = self._run("prune", queue, [
                        int(completed_age * 1_000_000), int(failed_age * 1_000_000), cap])
                    deleted += int(count)
        return deleted

    # -- coordination ---------------------------------------------------------------------
    def _plain(self, script: str, keys: list[str], *args: Any) -> Any:
        with self._guard():
            return self._scripts[script](keys=keys, args=list(args))

    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return bool(self._plain("lock", [self.keys.lock(name)], "acquire", owner,
                                int(ttl_seconds * 1000)))

    def lock_release(self, name: str, owner: str) -> bool:
        return bool(self._plain("lock", [self.keys.lock(name)], "release", owner))

    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        return int(self._plain("counter", [self.keys.counter(key)], int(amount),
                               int(window_seconds * 1000)))

    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        self._sweep_waited()
        self._plain("registry", self.keys.registry(kind), "put", key, json.dumps(data),
                    int(ttl_seconds * 1_000_000))

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        flat = self._plain("registry", self.keys.registry(kind), "list")
        entries = sorted(zip(flat[::2], flat[1::2], strict=True))
        return _registry.decoded(kind, (data for _, data in entries))

    def registry_remove(self, kind: str, key: str) -> None:
        if kind == "worker":   # a worker leaving: hand back what a wait reserved for it
            self._from_wait(None, 0.0)
        self._plain("registry", self.keys.registry(kind), "remove", key)

