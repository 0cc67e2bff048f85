"""Rate and concurrency limits, held in the store so they bind every worker on every machine.

Options (on ``@task``, a Job class, or per push)::

    rate="100/m"          at most 100 starts per minute (s, m, h, d; also "5/10s", "100/minute")
    concurrency=5         at most 5 running at once
    rate_key="customer_id"   apply both per value of that argument (kwarg, or positional arg by
                             parameter name; a key of ``data`` for class-based jobs)

Without ``rate_key`` a limit is per task. A queue can be limited as a whole, whatever the task,
with :func:`set_queue_limit` (kept in the store's registry; workers re-read it every 5 s).

**Rate** is enforced as an evenly spread window, with one store counter (``counter_incr``) per
slot: the period is cut into slots of ``q = max(1, limit // 20)`` starts each (20/s: 1 start
per 50 ms; 100/m: 5 per 3 s; 1000/h: 50 per 3 min). Over a long run exactly ``limit`` starts
per period; in any window of one period at most ``limit + q`` (5 % over, or one start for
limits under 20). Bursts are spread out rather than let through at once. Slot numbers come
from the store's clock, so workers on skewed machines agree (each measures its offset to it
as the fastest of a few readings: see ``StoreClock``). The counter value is also a
ticket: the n-th job over the limit in a slot is postponed to the slot where its turn comes,
so a backlog drains roughly in order instead of stampeding every slot.

**Concurrency** is enforced with ``N`` TTL locks per scope (``lock_acquire``, owner = job id,
TTL = the lease); a running job renews its slot in the background and frees it when it ends,
and a crashed worker's slot expires with the TTL. Jobs that find no free slot retry with
backoff (0.1 s doubling up to 5 s).

A job held back is postponed: back to ``pending`` with no attempt used and the reason on the
job, e.g. ``rate limit 100/m reached for task app.send (wait 1)``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from taskqueue.drivers.base import Driver
from taskqueue.errors import ConfigError, DriverError
from taskqueue.middleware import Middleware, Postpone, register_default
from taskqueue.scheduling.conditions import backoff, previous_waits

if TYPE_CHECKING:
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord
    from taskqueue.middleware import Outcome, WorkerHost

log = logging.getLogger("taskqueue.scheduling")

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hr": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*"
                   r"(s|sec|second|m|min|minute|h|hr|hour|d|day)s?")
QUEUE_LIMITS = "queue_limit"
_DURABLE = 100 * 365.25 * 86400.0
_SLOT_KEYS = 4  # counter keys rotate through this many slots (each expires after two)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` starts per ``period`` seconds."""

    limit: int
    period: float
    text: str

    @property
    def quantum(self) -> int:
        """Starts allowed per slot."""
        return max(1, self.limit // 20)

    @property
    def slot(self) -> float:
        """Slot length in seconds."""
        return self.period * self.quantum / self.limit


@lru_cache(maxsize=256)
def parse_rate(text: str) -> Rate:
    """``"100/m"``, ``"10/s"``, ``"1000/h"``, ``"5/10s"``, ``"100/minute"`` -> Rate."""
    match = _RATE.fullmatch(str(text).strip().lower())
    if not match:
        raise ConfigError(f"rate {text!r} is not understood; write N/unit with unit s, m, h or "
                          "d (e.g. '100/m', '10/s', '5/10s')")
    limit, span = int(match[1]), float(match[2] or 1)
    if limit < 1 or span <= 0:
        raise ConfigError(f"rate {text!r} must allow at least one start per period")
    return Rate(limit, span * _UNITS[match[3]], str(text).strip())


# -- scopes ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Limit:
    """One limit that applies to a job: a scope (store key part) and a label for people."""

    scope: str
    label: str
    rate: Rate | None = None
    concurrency: int | None = None


def job_limits(manager: WorkerHost, job: JobRecord, runnable: Runnable,
               options: dict[str, Any], queue_limits: dict[str, dict[str, Any]]) -> list[Limit]:
    """Every limit that binds ``job``: its task's (per ``rate_key`` value) and its queue's."""
    limits: list[Limit] = []
    rate, concurrency = options.get("rate"), options.get("concurrency")
    if rate or concurrency:
        scope, label = f"task:{job.name}", f"task {job.name}"
        if key_name := options.get("rate_key"):
            value = key_value(manager, job, runnable, str(key_name))
            scope, label = f"{scope}:{key_name}={value}", f"{label} ({key_name}={value})"
        limits.append(_limit(scope, label, rate, concurrency))
    if queue := queue_limits.get(job.queue_name):
        limits.append(_limit(f"queue:{job.queue_name}", f"queue {job.queue_name}",
                             queue.get("rate"), queue.get("concurrency")))
    return limits


def _sha1(text: str) -> str:
    import hashlib  # loads OpenSSL: only for the rare long key

    return hashlib.sha1(text.encode()).hexdigest()


def _limit(scope: str, label: str, rate: Any, concurrency: Any) -> Limit:
    if len(scope) > 150:
        scope = scope[:80] + ":" + _sha1(scope)
    return Limit(scope, label, parse_rate(rate) if rate else None,
                 int(concurrency) if concurrency else None)


def key_value(manager: WorkerHost, job: JobRecord, runnable: Runnable, name: str) -> str:
    """The value of argument ``name`` in the job's body, as a short stable string."""
    body = manager.decode(job)
    kwargs, args = body.get("kwargs") or {}, body.get("args") or []
    value: Any = None
    if name in kwargs:
        value = kwargs[name]
    elif isinstance(body.get("data"), dict):
        value = body["data"].get(name)
    elif (signature := getattr(runnable, "signature", None)) is not None:
        params = list(signature.parameters)
        if name in params and params.index(name) < len(args):
            value = args[params.index(name)]
        elif name in params:
            value = signature.parameters[name].default
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 64 else _sha1(text)


def set_queue_limit(driver: Driver, queue: str, *, rate: str | None = None,
                    concurrency: int | None = None) -> None:
    """Limit a whole queue (all tasks); ``rate=None, concurrency=None`` removes the limit."""
    if rate is None and concurrency is None:
        driver.registry_remove(QUEUE_LIMITS, queue)
        return
    if rate is not None:
        parse_rate(rate)
    if concurrency is not None and int(concurrency) < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    driver.registry_put(QUEUE_LIMITS, queue, {"queue": queue, "rate": rate,
                                              "concurrency": concurrency}, _DURABLE)


def queue_limits(driver: Driver) -> dict[str, dict[str, Any]]:
    return {e["queue"]: e for e in driver.registry_list(QUEUE_LIMITS)}


class _QueueLimitCache:
    """Queue limits, re-read from the store at most every ``max_age`` seconds.

    Job threads share one cache. It is marked fresh only once the store has answered: a
    thread that finds it stale waits on the lock for the read in progress, never returns a
    table still empty (which would let its job run unlimited)."""

    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self._value: dict[str, dict[str, Any]] | None = None
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def get(self, driver: Driver) -> dict[str, dict[str, Any]]:
        """The limits; on a store error, the last ones read (jobs without limits must not
        stall because the registry could not be read). Raises ``DriverError`` when the
        limits were never read: nothing is known to run unlimited yet."""
        value = self._value
        if value is not None and time.monotonic() - self._read_at <= self.max_age:
            return value  # fresh: no lock (every job asks)
        with self._lock:
            if self._value is None or time.monotonic() - self._read_at > self.max_age:
                try:
                    self._value = queue_limits(driver)
                except DriverError as exc:
                    if self._value is None:
                        raise
                    log.warning("could not read queue limits, using the last known: %s", exc)
                self._read_at = time.monotonic()
            value = self._value
        assert value is not None
        return value


class StoreClock:
    """The store's clock, read through a measured offset (refreshed every minute).

    Rate slots are numbered from this clock, so workers agree on them only as well as their
    offsets agree. One reading's error is up to half its round trip, and a busy process can
    stall a thread mid-reading for tens of milliseconds (more than a 20/s slot of 50 ms: two
    workers then count in different slots and let more starts through than the limit). So the
    offset comes from the fastest of a few readings, and one still slow is re-measured soon."""

    SAMPLES = 5
    GOOD = 0.002        # a round trip this short bounds the error to 1 ms: stop sampling
    RETRY_SLOW = 1.0    # re-measure this soon when even the best round trip was slow
    SLOW = 0.02

    def __init__(self, driver: Driver, refresh: float = 60.0) -> None:
        self.driver = driver
        self.refresh = refresh
        self._offset = 0.0
        self._next = -math.inf
        self.uncertainty = math.inf  # half the best round trip of the last measurement
        self._lock = threading.Lock()

    def now(self) -> float:
        if time.monotonic() >= self._next:
            with self._lock:
                if time.monotonic() >= self._next:
                    self._measure()
        return time.time() + self._offset

    def _measure(self) -> None:
        best_rtt, offset = math.inf, 0.0
        for _ in range(self.SAMPLES):
            before = time.time()
            store = self.driver.now().timestamp()
            after = time.time()
            if after - before < best_rtt:
                best_rtt, offset = after - before, store - (before + after) / 2
            if best_rtt <= self.GOOD:
                break
        self._offset, self.uncertainty = offset, best_rtt / 2
        self._next = time.monotonic() + (self.RETRY_SLOW if best_rtt > self.SLOW
                                         else self.refresh)


# -- rate -----------------------------------------------------------------------------------------

def rate_delay(driver: Driver, clock: StoreClock, scope: str, rate: Rate) -> float | None:
    """Take a start from the current slot: None when allowed, else seconds until the slot
    where this job's turn comes (its place in line is the counter's value)."""
    now = clock.now()
    slot = math.floor(now / rate.slot)
    key = f"tq:rate:{scope}:{rate.limit}/{rate.period:g}:{slot % _SLOT_KEYS}"
    taken = driver.counter_incr(key, 1, 2 * rate.slot)
    if taken <= rate.quantum:
        return None
    ahead = math.ceil((taken - rate.quantum) / rate.quantum)
    return (slot + ahead) * rate.slot - now + random.uniform(0, rate.slot / 2)


class _LimitMiddleware(Middleware):
    """Shared set-up: the manager, a store clock and the queue limit cache."""

    def __init__(self) -> None:
        self.manager: WorkerHost | None = None
        self.clock: StoreClock | None = None
        self.queue_cache = _QueueLimitCache()
        self._warned = False

    def setup(self, manager: WorkerHost, worker_id: str) -> None:
        self.manager = manager
        self.clock = StoreClock(manager.driver)

    def warm_up(self) -> None:
        """Read the queue limits now (they are kept ``max_age`` seconds): a standby's first
        job does not read them from the store on its way."""
        if self.manager is not None:
            self.queue_cache.get(self.manager.driver)

    def applies(self, job: JobRecord, options: dict[str, Any], kind: str) -> bool:
        """Cheap check first: does the task, or the job's queue, set a limit of this kind?
        False (with one warning) in a worker that never called ``setup()``: without the
        manager there is no store to count in."""
        if self.manager is None:
            if options.get(kind) and not self._warned:
                self._warned = True
                log.warning("%s: setup() was not called (Worker.run_once() without run()?); "
                            "%s limits are not enforced", type(self).__name__, kind)
            return False
        if options.get(kind):
            return True
        queue = self.queue_cache.get(self.manager.driver).get(job.queue_name)
        return bool(queue and queue.get(kind))

    def limits(self, job: JobRecord, runnable: Runnable,
               options: dict[str, Any]) -> list[Limit]:
        assert self.manager is not None, "setup() was not called"
        return job_limits(self.manager, job, runnable, options,
                          self.queue_cache.get(self.manager.driver))


# -- concurrency ----------------------------------------------------------------------------------

@register_default
class ConcurrencyMiddleware(_LimitMiddleware):
    """Runs a job only while it holds one of its scope's ``concurrency`` slots."""

    base_delay = 0.1
    max_delay = 5.0
    _PREFIX = "concurrency limit"

    def __init__(self) -> None:
        super().__init__()
        self.ttl = 30.0
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def setup(self, manager: WorkerHost, worker_id: str) -> None:
        super().setup(manager, worker_id)
        self.ttl = manager.settings.lease_seconds

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        try:
            if not self.applies(job, options, "concurrency"):
                return None
            limits = [lim for lim in self.limits(job, runnable, options) if lim.concurrency]
            return self._take_all(job, limits)
        except DriverError as exc:
            self._release(job.id)
            return Postpone(1.0, f"{self._PREFIX} check failed: {exc} (wait 1)")

    def _take_all(self, job: JobRecord, limits: list[Limit]) -> Postpone | None:
        for limit in limits:
            assert limit.concurrency is not None
            name = self._take(limit.scope, limit.concurrency, job.id)
            if name is None:
                self._release(job.id)
                count = previous_waits(job, self._PREFIX) + 1
                delay = backoff(count, self.base_delay, self.max_delay)
                return Postpone(delay, f"{self._PREFIX} {limit.concurrency} reached for "
                                       f"{limit.label} (wait {count})")
            with self._lock:
                self._held.setdefault(job.id, []).append(name)
        if job.id in self._held:
            self._start_renewer()
        return None

    def _take(self, scope: str, slots: int, owner: str) -> str | None:
        first = random.randrange(slots)
        for i in range(slots):
            name = f"tq:conc:{scope}:{(first + i) % slots}"
            if self._driver().lock_acquire(name, owner, self.ttl):
                return name
        return None

    def after_run(self, job: JobRecord, ctx: JobContext, outcome: Outcome) -> None:
        self._release(job.id)

    def _release(self, owner: str) -> None:
        if owner not in self._held:  # most jobs hold no slot; only this thread adds its own
            return
        with self._lock:
            names = self._held.pop(owner, [])
        for name in names:
            try:
                self._driver().lock_release(name, owner)
            except DriverError as exc:  # it expires with its TTL anyway
                log.warning("could not free concurrency slot %s: %s", name, exc)

    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                                 name="taskqueue-concurrency-slots")
                self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                held = [(owner, name) for owner, names in self._held.items() for name in names]
            for owner, name in held:
                try:
                    if not self._driver().lock_acquire(name, owner, self.ttl):
                        log.warning("concurrency slot %s was lost by job %s", name, owner)
                except DriverError as exc:
                    log.warning("could not renew concurrency slot %s: %s", name, exc)

    def teardown(self) -> None:
        self._stop.set()
        for owner in list(self._held):
            self._release(owner)

    def _driver(self) -> Driver:
        assert self.manager is not None, "setup() was not called"
        return self.manager.driver


# -- rate -----------------------------------------------------------------------------------------

@register_default
class RateLimitMiddleware(_LimitMiddleware):
    """Runs a job only when its scope's rate allows another start."""

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        try:
            if not self.applies(job, options, "rate"):
                return None
            assert self.manager is not None and self.clock is not None
            for limit in self.limits(job, runnable, options):
                if limit.rate is None:
                    continue
                delay = rate_delay(self.manager.driver, self.clock, limit.scope, limit.rate)
                if delay is not None:
                    count = previous_waits(job, "rate limit") + 1
                    return Postpone(delay, f"rate limit {limit.rate.text} reached for "
                                           f"{limit.label} (wait {count})")
        except DriverError as exc:
            return Postpone(1.0, f"rate limit check failed: {exc} (wait 1)")
        return None
