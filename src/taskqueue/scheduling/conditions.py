"""Conditions on system state, checked before a job runs (or before a schedule enqueues a run).

A condition is a short string, so it travels in the job's payload as JSON::

    "cpu < 80"                      system CPU use below 80 %
    "memory > 512MB"                available memory above 512 MB (B, KB, MB, GB, TB, or 20%)
    "queue:emails < 100"            waiting jobs (pending + retrying) in a queue below / above
    "time 09:00-17:00 Europe/Paris" inside a daily window in a zone (22:00-06:00 spans midnight;
    "time mon-fri 09:00-17:00 UTC"  optional days: the days on which the window opens)
    "business_hours"                a predicate registered with ``@condition("business_hours")``

Helpers build them: ``cpu_below(80)``, ``memory_above("512MB")``, ``queue_below("emails", 100)``,
``queue_above``, ``time_window("09:00", "17:00", tz="Europe/Paris", days="mon-fri")``.

On a job (``@task(conditions=[...])`` or per call) the :class:`ConditionMiddleware` checks them on
the worker before each run; when one is false the job is postponed, not failed, and keeps its
attempts. Checks back off exponentially (1 s, 2 s, 4 s, ... up to 5 min; a time window waits
exactly until it opens) and the reason, naming the condition, is stored on the job:
``waiting for condition 'cpu < 80': cpu at 93% (check 3, next in 4s)``. Predicates must be
registered in the worker's process (import the module with ``--app``). On a schedule, the
scheduler checks them before enqueueing a run and skips that run with a log line when false.
"""

from __future__ import annotations

import inspect
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from taskqueue.drivers.base import Driver
from taskqueue.errors import DriverError
from taskqueue.jobs.states import State
from taskqueue.middleware import Middleware, Postpone, register_default
from taskqueue.scheduling.cron import ScheduleError, next_fire_times, zone

if TYPE_CHECKING:
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord
    from taskqueue.middleware import WorkerHost

log = logging.getLogger("taskqueue.scheduling")

_SIZES = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_CPU = re.compile(r"cpu\s*<\s*(\d+(?:\.\d+)?)\s*%?")
_MEMORY = re.compile(r"memory\s*>\s*(\d+(?:\.\d+)?)\s*(%|[kmgt]i?b|b)")
_QUEUE = re.compile(r"queue\s*:\s*([\w.\-]+)\s*([<>])\s*(\d+)")
_WINDOW = re.compile(r"time\s+(?:([a-z,\-]+)\s+)?(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})"
                     r"(?:\s+(\S+))?")
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one check; ``wait`` is a known time until it may turn true."""

    ok: bool
    detail: str = ""
    wait: float | None = None


class Condition(Protocol):
    @property
    def text(self) -> str: ...

    def check(self, probe: Probe) -> Verdict: ...


# -- measurements ---------------------------------------------------------------------------------

class Probe:
    """System and store measurements, cached briefly so a burst of jobs costs one reading.

    psutil is imported by the first system reading, not before: most workers never check one.
    """

    def __init__(self, driver: Driver | None, max_age: float = 1.0) -> None:
        self.driver = driver
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cpu: tuple[float, float] | None = None
        self._depths: tuple[float, dict[str, int]] | None = None
        self._cpu_primed: float | None = None

    def cpu_percent(self) -> float:
        import psutil

        with self._lock:
            now = time.monotonic()
            if self._cpu_primed is None:
                psutil.cpu_percent(interval=None)  # the first reading only starts the measurement
                self._cpu_primed = now
            if self._cpu is None or now - self._cpu[0] > self.max_age:
                wait = 0.1 - (now - self._cpu_primed)
                value = psutil.cpu_percent(interval=wait if wait > 0 else None)
                self._cpu = (time.monotonic(), float(value))
            return self._cpu[1]

    def memory_available(self) -> tuple[int, float]:
        """(available bytes, available percent of total)."""
        import psutil

        mem = psutil.virtual_memory()
        return int(mem.available), 100.0 * mem.available / mem.total

    def queue_depth(self, queue: str) -> int:
        if self.driver is None:
            raise ScheduleError("queue conditions need a store")
        with self._lock:
            now = time.monotonic()
            if self._depths is None or now - self._depths[0] > self.max_age:
                stats = self.driver.stats()
                self._depths = (now, {q: s.counts[State.PENDING] + s.counts[State.RETRYING]
                                      for q, s in stats.items()})
            return self._depths[1].get(queue, 0)


# -- the condition kinds --------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuBelow:
    text: str
    percent: float

    def check(self, probe: Probe) -> Verdict:
        value = probe.cpu_percent()
        return Verdict(value < self.percent, f"cpu at {value:.0f}%")


@dataclass(frozen=True)
class MemoryAbove:
    text: str
    amount: float
    unit: str

    def check(self, probe: Probe) -> Verdict:
        available, percent = probe.memory_available()
        if self.unit == "%":
            return Verdict(percent > self.amount, f"{percent:.0f}% memory available")
        shown = f"{available / 1024**2:.0f} MiB available"
        return Verdict(available > self.amount * _SIZES[self.unit], shown)


@dataclass(frozen=True)
class QueueDepth:
    text: str
    queue: str
    below: bool
    limit: int

    def check(self, probe: Probe) -> Verdict:
        depth = probe.queue_depth(self.queue)
        ok = depth < self.limit if self.below else depth > self.limit
        return Verdict(ok, f"queue {self.queue} has {depth} waiting")


@dataclass(frozen=True)
class TimeWindow:
    text: str
    start: tuple[int, int]
    end: tuple[int, int]
    timezone: str
    days: frozenset[int]  # cron numbering, 0 = Sunday; the days the window opens

    def check(self, probe: Probe) -> Verdict:
        local = datetime.now(UTC).astimezone(zone(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = self.start[0] * 60 + self.start[1], self.end[0] * 60 + self.end[1]
        today = (local.weekday() + 1) % 7
        if start <= end:
            inside = start <= minute < end and today in self.days
        else:  # spans midnight: the early part belongs to the window opened yesterday
            inside = (minute >= start and today in self.days) or \
                (minute < end and (today - 1) % 7 in self.days)
        if inside:
            return Verdict(True)
        opens = next_fire_times(self._opening_cron(), self.timezone, datetime.now(UTC), 1)[0]
        wait = (opens - datetime.now(UTC)).total_seconds()
        shown = opens.astimezone(local.tzinfo)
        return Verdict(False, f"outside the window, opens {shown:%a %H:%M}", wait=max(1.0, wait))

    def _opening_cron(self) -> str:
        days = ",".join(str(d) for d in sorted(self.days))
        return f"{self.start[1]} {self.start[0]} * * {days}"


@dataclass(frozen=True)
class Predicate:
    text: str
    name: str

    def check(self, probe: Probe) -> Verdict:
        fn = PREDICATES.get(self.name)
        if fn is None:
            return Verdict(False, f"no condition named {self.name!r} is registered in this "
                                  "process (import the module that defines it)")
        return Verdict(bool(fn()), "predicate returned false")


# -- parsing and the registry ---------------------------------------------------------------------

PREDICATES: dict[str, Callable[[], object]] = {}
_KEYWORDS = {"cpu", "memory", "queue", "time"}


def condition(name: str | None = None) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register a zero-argument predicate under ``name`` (default: the function's name)."""

    def register(fn: Callable[[], object]) -> Callable[[], object]:
        key = name or fn.__name__
        if not _NAME.fullmatch(key) or key.lower() in _KEYWORDS:
            raise ScheduleError(f"{key!r} cannot name a condition (use letters, digits, _ . -; "
                                f"not {', '.join(sorted(_KEYWORDS))})")
        if inspect.signature(fn).parameters:
            raise ScheduleError(f"condition {key!r} must take no arguments")
        PREDICATES[key] = fn
        return fn

    return register


@lru_cache(maxsize=1024)
def parse_condition(text: str) -> Condition:
    """Parse one condition string; raise ScheduleError saying what is wrong with it."""
    clean = " ".join(text.split())
    lower = clean.lower()
    if match := _CPU.fullmatch(lower):
        return CpuBelow(clean, float(match[1]))
    if match := _MEMORY.fullmatch(lower):
        return MemoryAbove(clean, float(match[1]), match[2])
    if match := _QUEUE.fullmatch(clean):
        return QueueDepth(clean, match[1], match[2] == "<", int(match[3]))
    if lower.startswith("time "):
        return _window(clean)
    if lower.split(" ")[0] in _KEYWORDS or lower.startswith("queue:"):
        raise ScheduleError(f"cannot parse condition {text!r}; the forms are 'cpu < 80', "
                            "'memory > 512MB', 'queue:NAME < 100', 'time 09:00-17:00 ZONE'")
    if _NAME.fullmatch(clean):
        return Predicate(clean, clean)
    raise ScheduleError(f"cannot parse condition {text!r}: not a built-in form and not a "
                        "predicate name")


def _window(text: str) -> TimeWindow:
    match = _WINDOW.fullmatch(text.lower())
    if not match:
        raise ScheduleError(f"cannot parse condition {text!r}; write e.g. "
                            "'time 09:00-17:00 Europe/Paris' or 'time mon-fri 09:00-17:00 UTC'")
    start, end = (int(match[2]), int(match[3])), (int(match[4]), int(match[5]))
    if start[0] > 23 or end[0] > 24 or start[1] > 59 or end[1] > 59 or start == end:
        raise ScheduleError(f"condition {text!r}: the window needs two different times of day")
    tz_name = text.split()[-1] if match[6] else "UTC"
    zone(tz_name)
    return TimeWindow(text, start, end, tz_name, _weekdays(match[1], text))


def _weekdays(spec: str | None, text: str) -> frozenset[int]:
    if not spec:
        return frozenset(range(7))
    from taskqueue.scheduling.natural import compile_phrase

    try:
        dow = compile_phrase(f"every {spec.replace(',', ' and ')}").cron.split()[-1]
    except ScheduleError:
        raise ScheduleError(f"condition {text!r}: cannot read the days {spec!r} "
                            "(write e.g. mon-fri or sat,sun)") from None
    days: set[int] = set()
    for part in dow.split(","):
        low, _, high = part.partition("-")
        days.update(range(int(low), int(high or low) + 1))
    return frozenset(days)


def validate_conditions(conditions: Sequence[str]) -> None:
    if isinstance(conditions, str):
        raise ScheduleError("conditions must be a list of strings, not one string")
    for text in conditions:
        parse_condition(text)


def first_unmet(conditions: Sequence[str], probe: Probe) -> tuple[str, Verdict] | None:
    """The first condition that is false (text and verdict), or None when all hold."""
    for text in conditions:
        try:
            verdict = parse_condition(text).check(probe)
        except ScheduleError as exc:
            verdict = Verdict(False, f"invalid: {exc}", wait=300.0)
        except Exception as exc:  # noqa: BLE001 - a failing check must not crash the worker
            log.exception("condition %r raised", text)
            verdict = Verdict(False, f"the check raised {type(exc).__name__}: {exc}")
        if not verdict.ok:
            return text, verdict
    return None


# -- builders -------------------------------------------------------------------------------------

def cpu_below(percent: float) -> str:
    return f"cpu < {percent:g}"


def memory_above(amount: str) -> str:
    """``memory_above("512MB")`` or ``memory_above("20%")``."""
    return f"memory > {amount}"


def queue_below(queue: str, depth: int) -> str:
    return f"queue:{queue} < {depth}"


def queue_above(queue: str, depth: int) -> str:
    return f"queue:{queue} > {depth}"


def time_window(start: str, end: str, tz: str = "UTC", days: str | None = None) -> str:
    """``time_window("09:00", "17:00", tz="Europe/Paris", days="mon-fri")``."""
    return f"time {days + ' ' if days else ''}{start}-{end} {tz}"


# -- postponing -----------------------------------------------------------------------------------

def previous_waits(job: JobRecord, prefix: str) -> int:
    """How many times in a row this job was already held back by the postponement whose
    reason starts with ``prefix`` (read back from the reason stored on the job)."""
    reason = job.exception or ""
    if not reason.startswith(prefix):
        return 0
    match = re.search(r"\((?:check|wait) (\d+)", reason)
    return int(match[1]) if match else 0


def backoff(count: int, base: float, cap: float) -> float:
    """Exponential delay for the ``count``-th wait (1-based), capped, with 20 % jitter."""
    delay: float = min(cap, base * 2.0 ** min(count - 1, 30))
    return delay * random.uniform(0.8, 1.0)


@register_default
class ConditionMiddleware(Middleware):
    """Postpones a job while one of its ``conditions`` is false."""

    base_delay = 1.0
    max_delay = 300.0
    _PREFIX = "waiting for condition"

    def __init__(self) -> None:
        self.probe: Probe | None = None

    def setup(self, manager: WorkerHost, worker_id: str) -> None:
        self.probe = Probe(manager.driver)

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        conditions = options.get("conditions") or ()
        if not conditions:
            return None
        if self.probe is None:
            self.probe = Probe(None)
        try:
            unmet = first_unmet(list(conditions), self.probe)
        except DriverError as exc:
            unmet = ("queue depth", Verdict(False, f"store error: {exc}"))
        if unmet is None:
            return None
        text, verdict = unmet
        count = previous_waits(job, self._PREFIX) + 1
        delay = verdict.wait or backoff(count, self.base_delay, self.max_delay)
        return Postpone(delay, f"{self._PREFIX} '{text}': {verdict.detail} "
                               f"(check {count}, next in {delay:.3g}s)")
