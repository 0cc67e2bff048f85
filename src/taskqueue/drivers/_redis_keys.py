"""Helpers of the Redis driver: key names, script loading, URL options, the start-up
durability check, and the read side of search, stats and parked-job repair. The job-hash codec
is ``_redis_codec``; the data layout is described in ``taskqueue.drivers.redis``."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from redis.client import Redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from taskqueue.drivers._redis_codec import from_us, text
from taskqueue.drivers.base import JobFilter, QueueStats
from taskqueue.drivers.queries import read_text
from taskqueue.errors import ConfigError
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.drivers.redis")

DEFAULT_PREFIX = "taskqueue"
#: Every job state has a sorted set of that name in its queue.
STATES: tuple[str, ...] = tuple(s.value for s in State)


#: A prefix is plain text, or holds one hash tag (``{shop}``) that pins every key to one slot.
_PREFIX = re.compile(r"[^{}]+|[^{}]*\{[^{}]+\}[^{}]*")


class Keys:
    """Key names. Everything starts with the prefix; a queue's keys share the ``{queue}`` tag
    (or the prefix's own tag, which comes first and so wins)."""

    def __init__(self, prefix: str) -> None:
        if not _PREFIX.fullmatch(prefix or ""):
            raise ConfigError(f"invalid redis key prefix {prefix!r}: non-empty, and braces only "
                              "around one non-empty hash tag, as in 'shop' or '{shop}'")
        self.prefix = prefix
        self.queues = f"{prefix}:queues"       # set of queue names
        self.schema = f"{prefix}:schema"       # layout version
        self.tagged = "{" in prefix            # every key in one slot

    def queue(self, queue: str) -> str:
        """The key base of a queue, also passed to its scripts as KEYS[1]."""
        return f"{self.prefix}:{{{queue}}}"

    def job(self, queue: str, job_id: str) -> str:
        return f"{self.queue(queue)}:job:{job_id}"

    def sub(self, queue: str, name: str) -> str:
        """A per-queue structure: a state set, ready, delayed, parked, wake, idem,
        waits:<id>, dependents:<id>."""
        return f"{self.queue(queue)}:{name}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def counter(self, key: str) -> str:
        return f"{self.prefix}:counter:{key}"

    def registry(self, kind: str) -> list[str]:
        base = f"{self.prefix}:registry:{{{kind}}}"
        return [base, base + ":expiry"]


# -- scripts ------------------------------------------------------------------------------------

@cache
def script_source(name: str, *, per_queue: bool = True) -> str:
    """The Lua source of ``queries/redis_<name>.lua``; per-queue scripts get, in front, the
    header of ``redis_common.lua`` and those of its helpers the script uses (directly or through
    another helper): Redis runs a script's definitions on every call, so unused ones cost."""
    body = read_text(f"redis_{name}.lua")
    if not per_queue:
        return body
    header, helpers = _common()
    wanted: set[str] = set()
    todo = [body]
    while todo:  # one scan per text (a search per helper cost ~35 ms per process)
        for helper in set(_CALL.findall(todo.pop())) - wanted:
            if helper in helpers:
                wanted.add(helper)
                todo.append(helpers[helper])
    used = [block for helper, block in helpers.items() if helper in wanted]
    return "\n\n".join([header, *used, body])


def script_sha(name: str, *, per_queue: bool = True) -> str:
    """The SHA1 that EVALSHA names the script by. Worked out once, in the fork server (the
    driver module's ``preload``): a worker process that hashes runs OpenSSL's digest code and
    so maps ~1 MB more of it (its RSS, measured). The sources are ASCII, so the client's
    encoding does not change the digest."""
    return _sha(name, per_queue)


@cache
def _sha(name: str, per_queue: bool) -> str:
    source = script_source(name) if per_queue else script_source(name, per_queue=False)
    return hashlib.sha1(source.encode()).hexdigest()


class _Script(Script):
    """redis-py's ``Script`` (its call loads the script again on NOSCRIPT) with the SHA1
    given rather than computed."""

    def __init__(self, client: Any, source: str, sha: str) -> None:  # noqa: D107
        self.registered_client = client
        self.script = source
        self.sha = sha

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        """Run it by its SHA1, loading it when the server does not know it: redis-py's call
        without its check for pipelines (the driver never runs a script on one), which imports
        redis-py's cluster client into the process on the first call (~1 MB in each worker,
        the module being left out of the fork server's imports; see ``_redis_import``)."""
        if client is None:
            client = self.registered_client
        keys = list(keys or ())
        values = (*keys, *(args or ()))
        try:
            return client.evalsha(self.sha, len(keys), *values)
        except NoScriptError:  # another server, or its scripts were flushed
            self.sha = client.script_load(self.script)
            return client.evalsha(self.sha, len(keys), *values)


def register_script(client: Any, name: str, *, per_queue: bool = True) -> Script:
    """``client.register_script`` for a script of ``queries/``, without hashing it again."""
    source = script_source(name) if per_queue else script_source(name, per_queue=False)
    return _Script(client, source, _sha(name, per_queue))


_HELPER = re.compile(r"^local function (\w+)\(", re.MULTILINE)
#: A name called in Lua source (``name(`` as a whole word).
_CALL = re.compile(r"\b(\w+)\(")


@cache
def _common() -> tuple[str, dict[str, str]]:
    """``redis_common.lua`` as its header (up to the first blank line: always included) and its
    helpers, name -> block (a block is one function with the comment above it)."""
    source = read_text("redis_common.lua")
    header, _, rest = source.partition("\n\n")
    helpers: dict[str, str] = {}
    pending = ""
    for block in rest.strip().split("\n\n"):
        found = _HELPER.findall(block)
        if not found:   # a comment about the helpers that follow
            pending += block + "\n\n"
            continue
        assert len(found) == 1, f"redis_common.lua: one helper per block, got {found}"
        helpers[found[0]] = pending + block
        pending = ""
    return header, helpers


# -- connecting ---------------------------------------------------------------------------------

#: The warnings this process has logged (server, text): each is logged once per process.
_warned: set[tuple[str, str]] = set()


def check_durability(nodes: Sequence[Redis], strict: bool, where: str) -> None:
    """Warn (or, strict, refuse) when jobs could be evicted or lost on restart, on any of the
    servers that hold data. Servers that disable CONFIG (managed Redis) are skipped. A process
    that opens several drivers on one server (a supervisor, its scheduler) warns once."""
    problems: list[str] = []
    for node in nodes:
        for problem in _durability_problems(node):
            if problem not in problems:
                problems.append(problem)
    if not problems:
        return
    message = "redis: " + "; ".join(problems)
    if strict:
        raise ConfigError(message + " (refused: strict=true)")
    if (where, message) not in _warned:
        _warned.add((where, message))
        log.warning(message)


def _durability_problems(client: Redis) -> list[str]:
    try:
        config: dict[str, str] = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            for key, value in client.config_get(name).items():
                config[text(key)] = text(value)
    except ResponseError as exc:
        log.debug("redis: CONFIG GET is not available (%s); skipping the durability check", exc)
        return []
    problems = []
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy!r}, not 'noeviction': Redis may evict "
                        "job keys under memory pressure")
    if config.get("appendonly", "no") != "yes" and not config.get("save", "").strip():
        problems.append("persistence is off (appendonly no, no save points): a restart of "
                        "Redis loses every job")
    return problems


# -- reading ------------------------------------------------------------------------------------

#: The job-hash fields ``matches`` tests, in its order.
FILTER_FIELDS = ("state", "name", "tags", "batch_id", "exception")


def matches(values: Sequence[Any], criteria: JobFilter) -> bool:
    """The filters that the candidate sets (queues, states, ids) do not apply by themselves,
    on a job's ``FILTER_FIELDS`` (HMGET; a vanished job has no state and never matches). Like
    SQLite's LIKE, the exception search ignores case."""
    state, name, tags, batch_id, exception = (None if v is None else text(v) for v in values)
    if state is None:
        return False
    needle = (criteria.exception_contains or "").casefold()
    return ((not criteria.states or state in {State(s).value for s in criteria.states})
            and (not criteria.names or name in criteria.names)
            and (criteria.tag is None or (tags is not None and criteria.tag in json.loads(tags)))
            and (criteria.batch_id is None or batch_id == criteria.batch_id)
            and (not needle or needle in (exception or "").casefold()))


#: How many of the longest-waiting jobs of a queue ``queue_stats`` reads the priority of.
PRIORITY_SAMPLE = 1000


def stats_from_script(answer: Sequence[Any]) -> QueueStats:
    """A queue's figures from the ``stats`` script's answer (see ``redis_stats.lua``): the
    counts of the state sets, completions of the last minute, and over the ``PRIORITY_SAMPLE``
    longest-waiting jobs (all of them below that many; a queue with a million waiting jobs
    costs what one with a thousand does) the earliest due time and the average priority."""
    states = list(State)
    counts = [int(n) for n in answer[:len(states)]]
    recent, oldest, total, summed = answer[len(states):]
    qs = QueueStats(counts=dict(zip(states, counts, strict=True)),
                    completed_last_minute=int(recent))
    if oldest:
        qs.oldest_ready_at = from_us(int(oldest))
    if int(summed):
        qs.avg_priority = int(total) / int(summed)
    return qs


def candidates(client: Redis, keys: Keys, criteria: JobFilter,
               homes: Callable[[Sequence[str]], dict[str, str]]) -> list[tuple[str, str]]:
    """(id, queue) of the jobs in the wanted queues and states, in the wanted id order and
    after ``after_id``. ``homes`` maps job ids to their queues."""
    queues = set(criteria.queues or (text(q) for q in client.smembers(keys.queues)))
    if criteria.ids and criteria.states:
        # ids in given states (a worker asking which of its buffered jobs were cancelled):
        # one ZMSCORE per queue and state instead of an EXISTS per id and queue
        ids = list(dict.fromkeys(criteria.ids))
        pipe = client.pipeline(transaction=False)
        pairs = [(q, State(s).value) for q in sorted(queues) for s in criteria.states]
        for queue, state in pairs:
            pipe.zmscore(keys.sub(queue, state), ids)
        found: dict[str, str] = {}
        for (queue, _), scores in zip(pairs, pipe.execute() if pairs else [], strict=True):
            found.update((i, queue) for i, score in zip(ids, scores, strict=True)
                         if score is not None and i not in found)
    elif criteria.ids:
        found = {i: q for i, q in homes(criteria.ids).items() if q in queues}
    else:
        pipe = client.pipeline(transaction=False)
        pairs = [(q, State(s).value) for q in sorted(queues) for s in criteria.states or State]
        for queue, state in pairs:
            pipe.zrange(keys.sub(queue, state), 0, -1)
        found = {text(i): q for (q, _), ids in zip(pairs, pipe.execute(), strict=True)
                 for i in ids}
    ordered = sorted(found.items(), reverse=criteria.newest_first)
    after = criteria.after_id
    if after is None:
        return ordered
    return [(i, q) for i, q in ordered if (i < after if criteria.newest_first else i > after)]


def parked_met(client: Redis, keys: Keys, queue: str,
               homes: Callable[[Sequence[str]], dict[str, str]], now_us: int,
               grace_us: int) -> list[tuple[str, str, str]]:
    """(queue, child, parent) of the parked jobs' dependencies that are met although the child
    still waits: the parent completed, or it is missing and the child is older than
    ``grace_us`` (its producer may still be pushing the parent)."""
    parked = [text(c) for c in client.smembers(keys.sub(queue, "parked"))]
    if not parked:
        return []
    pipe = client.pipeline(transaction=False)
    for child in parked:
        pipe.smembers(keys.sub(queue, f"waits:{child}"))
        pipe.hget(keys.job(queue, child), "created_at")
    replies = pipe.execute()
    waits = {c: ([text(p) for p in replies[2 * i]], int(replies[2 * i + 1] or now_us))
             for i, c in enumerate(parked)}
    found = homes([p for parents, _ in waits.values() for p in parents])
    pipe = client.pipeline(transaction=False)
    for parent, home in found.items():
        pipe.hget(keys.job(home, parent), "state")
    states = dict(zip(found, pipe.execute(), strict=True))
    return [(queue, child, p) for child, (parents, created) in waits.items() for p in parents
            if states.get(p) == b"completed"
            or (p not in found and now_us - created > grace_us)]
