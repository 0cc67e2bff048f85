"""Job statistics kept in the store as compact per-minute buckets, readable from any node.

Writing. A :class:`StatsRecorder` aggregates a client's job events in memory, per minute, per
queue, per task: counts of enqueued / completed / failed / retried / cancelled /
lease-lost jobs, and two latency histograms (run time, and wait time from enqueue to start).
Every ``flush_interval`` seconds a background thread writes the minutes that changed, one
registry entry per (minute, recorder)::

    registry kind "stats", key "<minute>:<source>", TTL one hour + two minutes
    {"v": 1, "minute": 29061234, "source": "3f9c0a1b2c4d",
     "queues": {"emails": {"send_welcome": {
         "counts": {"completed": 57, "failed": 1},
         "run":  [sum_seconds, min, max, {"bucket index": count, ...}],
         "wait": [sum_seconds, min, max, {...}]}}}}

Only this process writes its own key, so a plain overwrite is safe without a store-side merge;
the job path touches only memory, never the store: a start or an end is one entry appended to
the recorder's inbox (no lock), and every ``ABSORB_AT`` entries, or at the flush, the inbox is
added to the figures a run of one kind, queue and task at a time (bucketed, counted and summed
by C loops, each entry in the minute it happened in). The worker hands its client's recorder
each start and each run's end directly (:meth:`StatsRecorder.started` /
:meth:`StatsRecorder.finished`: no event is built for them unless another subscriber wants
it); enqueues, cancellations and lost leases arrive as events
on the client's bus (a cancel's event names the job's task and queue: an event that names no
queue is not counted, nor a worker's ``already_cancelled`` one: the job it ran was cancelled
by a client, whose event counted it). A recorder is installed by the client's first push or
cancel, by ``taskqueue work`` in each worker process, or by hand (``StatsRecorder.install``);
a ``Worker`` whose client has none records nothing (the in-process API adds no cost for
statistics nobody asked for).

Keeping. Once a minute one recorder (a TTL lock) folds the closed minutes into entries per
hour merged across processes -- minutes kept 2 hours, 5-minute buckets 6 hours, hours 8 days
-- and removes the minute entries it folded
(:mod:`taskqueue.observability.stats_rollup`); :mod:`stats_tasks` reads them per task.

Reading. :class:`History` reads the folded minutes of the last hour and the few entries not
folded yet (:func:`live_entries`), merges all sources, and answers per window
(1 min / 5 min / 1 h): counts, rates per minute, success and failure rates, and run/wait time
p50/p95/p99 estimated from the histogram (linear inside a bucket, clamped to the observed
min/max). Buckets grow by at most 1.5x (1, 1.5, 2, 2.5, 3.5, 5, 7.5 per decade, 1 ms to
2 h), so a percentile is within one bucket of the truth.

Wait time is measured for first attempts, from the job id's creation time (ids are UUIDv7) to
the start, unless the start event carries ``ready_at`` (epoch seconds the job became due), which
then wins and makes delayed jobs and retries measurable too.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol

from taskqueue.drivers.base import Driver, QueueStats
from taskqueue.jobs.states import State
from taskqueue.observability import events as ev

log = logging.getLogger("taskqueue.stats")


class Recorded(Protocol):
    """What ``StatsRecorder.install`` needs of a client: its store, its event bus, and a
    place to keep the recorder (one per client)."""

    driver: Driver
    events: ev.EventBus
    stats_recorder: Any

KIND = "stats"
#: The closed minutes of every process, merged, one entry per hour (see ``stats_rollup``).
MINUTE_KIND = "stats-minute"
BUCKET_SECONDS = 60
RETENTION = 3600.0 + 2 * BUCKET_SECONDS
FLUSH_INTERVAL = 5.0
#: Upper bounds (seconds) of the latency buckets; one more bucket holds everything above.
BOUNDS: tuple[float, ...] = tuple(
    round(m * 10.0**e, 6) for e in range(-3, 4) for m in (1, 1.5, 2, 2.5, 3.5, 5, 7.5))
COUNTS = ("enqueued", "completed", "failed", "retried", "cancelled", "lost")
WINDOWS: tuple[tuple[str, int], ...] = (("1m", 60), ("5m", 300), ("1h", 3600))
_COUNTED = {ev.JOB_ENQUEUED: "enqueued", ev.JOB_COMPLETED: "completed", ev.JOB_FAILED: "failed",
            ev.JOB_RETRIED: "retried", ev.JOB_CANCELLED: "cancelled",
            ev.JOB_LEASE_LOST: "lost"}
_RUNS = {"completed", "failed", "retried"}
#: The kinds a worker hands its client's recorder directly (``started``/``finished``, no event
#: built), and enqueues, which ``Client.push_prepared`` hands it (``enqueued``): the recorder
#: does not subscribe to them on the bus. ``on_event`` still takes them.
DIRECT_KINDS = (ev.JOB_STARTED, ev.JOB_COMPLETED, ev.JOB_FAILED, ev.JOB_RETRIED,
                ev.JOB_ENQUEUED)


#: Starts and ends a recorder holds in its inbox before it adds them to its figures at once
#: (``StatsRecorder._absorb``; its flush takes in what is there before it writes).
ABSORB_AT = 512
#: The inbox's name for a start's wait (an end's is the count it goes to).
_WAIT = "wait"

_bisect_left = bisect.bisect_left
_bucket_of = partial(_bisect_left, BOUNDS)
#: An inbox entry is (counted or _WAIT, queue, task, seconds or None, at).
_what = itemgetter(0, 1, 2)
_seconds = itemgetter(3)
_at = itemgetter(4)


def _minute_of(entry: tuple[str, str, str, float | None, float]) -> int:
    return int(entry[4] // BUCKET_SECONDS)


def bucket_index(seconds: float) -> int:
    """Index of the bucket holding ``seconds`` (``len(BOUNDS)`` for the overflow bucket)."""
    return _bisect_left(BOUNDS, seconds)


@dataclass
class Histogram:
    """Latency counts per fixed bucket, with sum, min and max for averages and clamping."""

    buckets: dict[int, int] = field(default_factory=dict)
    total: float = 0.0
    low: float = float("inf")
    high: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.buckets.values())

    def add(self, seconds: float) -> None:
        if seconds < 0.0:
            seconds = 0.0
        buckets = self.buckets
        index = _bisect_left(BOUNDS, seconds)
        buckets[index] = buckets.get(index, 0) + 1
        self.total += seconds
        if seconds < self.low:
            self.low = seconds
        if seconds > self.high:
            self.high = seconds

    def add_many(self, values: Sequence[float]) -> None:
        """``add`` each of ``values``, the per-value work done by C loops."""
        if not values:
            return
        low = min(values)
        if low < 0.0:
            values = [v if v > 0.0 else 0.0 for v in values]
            low = 0.0
        buckets = self.buckets
        for index, n in Counter(map(_bucket_of, values)).items():
            buckets[index] = buckets.get(index, 0) + n
        self.total += sum(values)
        if low < self.low:
            self.low = low
        high = max(values)
        if high > self.high:
            self.high = high

    def merge(self, other: Histogram) -> None:
        mine = self.buckets
        for index, n in other.buckets.items():
            mine[index] = mine.get(index, 0) + n
        self.total += other.total
        if other.low < self.low:
            self.low = other.low
        if other.high > self.high:
            self.high = other.high

    def quantile(self, q: float) -> float | None:
        """Estimate of the ``q`` quantile (0..1); None without observations."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Estimates of the ``qs`` quantiles (ascending, each 0..1) in one walk."""
        count = self.count
        if count == 0:
            return [None] * len(qs)
        out: list[float | None] = []
        ordered = sorted(self.buckets.items())
        at, seen = 0, 0
        for q in qs:
            rank = q * count
            while at < len(ordered) and seen + ordered[at][1] < rank:
                seen += ordered[at][1]
                at += 1
            if at == len(ordered):
                out.append(self.high)
                continue
            index, n = ordered[at]
            lower = BOUNDS[index - 1] if index > 0 else 0.0
            upper = BOUNDS[index] if index < len(BOUNDS) else self.high
            value = lower + (upper - lower) * ((rank - seen) / n)
            out.append(min(max(value, self.low), self.high))
        return out

    def summary(self) -> dict[str, float | int | None]:
        count = self.count
        p50, p95, p99 = self.quantiles((0.50, 0.95, 0.99))
        return {"count": count, "avg": self.total / count if count else None,
                "p50": p50, "p95": p95, "p99": p99, "max": self.high if count else None}

    def to_json(self) -> list[Any]:
        return [round(self.total, 6), self.low if self.buckets else 0.0, self.high,
                {str(i): n for i, n in self.buckets.items()}]

    @classmethod
    def from_json(cls, raw: Any) -> Histogram:
        total, low, high, buckets = raw
        return cls({int(i): int(n) for i, n in buckets.items()}, float(total),
                   float(low) if buckets else float("inf"), float(high))


@dataclass
class TaskStats:
    """One task's figures in one queue during one minute."""

    counts: dict[str, int] = field(default_factory=dict)
    run: Histogram = field(default_factory=Histogram)
    wait: Histogram = field(default_factory=Histogram)

    def merge(self, other: TaskStats) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.run.merge(other.run)
        self.wait.merge(other.wait)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"counts": {k: n for k, n in self.counts.items() if n}}
        if self.run.buckets:
            out["run"] = self.run.to_json()
        if self.wait.buckets:
            out["wait"] = self.wait.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TaskStats:
        return cls({str(k): int(n) for k, n in raw.get("counts", {}).items()},
                   Histogram.from_json(raw["run"]) if "run" in raw else Histogram(),
                   Histogram.from_json(raw["wait"]) if "wait" in raw else Histogram())


Minute = dict[str, dict[str, TaskStats]]  # queue -> task -> figures


def id_time(job_id: str) -> float | None:
    """Creation time (epoch seconds) of a UUIDv7 job id; None for other ids."""
    try:
        value = uuid.UUID(job_id)
    except (ValueError, TypeError):
        return None
    return (value.int >> 80) / 1000.0 if value.version == 7 else None


def wait_seconds(event: ev.Event) -> float | None:
    """Enqueue (or due) to start, for the start event of a job; None when unknown."""
    ready_at = event.fields.get("ready_at")
    if isinstance(ready_at, int | float):
        return max(0.0, event.at - float(ready_at))
    if event.attempt != 1 or event.job_id is None:
        return None
    created = id_time(event.job_id)
    return None if created is None else max(0.0, event.at - created)


class StatsRecorder:
    """Aggregates lifecycle events in memory and flushes them to the store now and then."""

    def __init__(self, driver: Driver, *, flush_interval: float = FLUSH_INTERVAL,
                 retention: float = RETENTION) -> None:
        self.driver = driver
        self.flush_interval = flush_interval
        self.retention = retention
        #: Seconds between attempts to fold closed minutes into the long history.
        self.rollup_interval = 60.0
        self.source = uuid.uuid4().hex[:12]
        self._minutes: dict[int, Minute] = {}
        #: (minute, queue, task) -> its figures in ``_minutes``, those used since the last flush
        self._at_hand: dict[tuple[int, str, str], TaskStats] = {}
        self._dirty: set[int] = set()
        #: Starts and ends not added yet (appended without a lock by any thread; taken out
        #: under ``_lock``).
        self._inbox: deque[tuple[str, str, str, float | None, float]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False  # under _flush_lock
        self._thread: threading.Thread | None = None
        self._rollup: Any = None

    @classmethod
    def install(cls, manager: Recorded, **options: Any) -> StatsRecorder:
        """Record the events of ``manager`` into its store; return the recorder (the one
        already installed, if any: a manager has at most one)."""
        existing: StatsRecorder | None = getattr(manager, "stats_recorder", None)
        if existing is not None:
            return existing
        recorder = cls(manager.driver, **options)
        # not job.ran and co; nor the kinds a worker hands over directly (DIRECT_KINDS)
        for kind in (*_COUNTED, ev.WORKER_STOPPED):
            if kind not in DIRECT_KINDS:
                manager.events.subscribe(recorder.on_event, kind)
        manager.stats_recorder = recorder
        return recorder

    def on_event(self, event: ev.Event) -> None:
        if event.kind == ev.WORKER_STOPPED:
            self.flush()  # the worker is about to close its store connection
            return
        if event.queue is None or event.fields.get("already_cancelled"):
            return  # (a worker's word that a run ended: the cancel was counted by its author)
        counted = _COUNTED.get(event.kind)
        if counted is not None:
            self.finished(counted, event.queue, event.name or "?", event.duration, event.at)
        elif event.kind == ev.JOB_STARTED and (wait := wait_seconds(event)) is not None:
            self.started(event.queue, event.name or "?", wait, event.at)

    # -- the job path: a worker calls these directly (no event), so they touch memory only ------
    def started(self, queue: str, task: str, wait: float, at: float) -> None:
        """A job of ``task`` started at ``at`` (epoch seconds) after waiting ``wait`` seconds
        since it was due."""
        inbox = self._inbox
        inbox.append((_WAIT, queue, task, wait, at))
        if len(inbox) >= ABSORB_AT or self._thread is None:
            self._take_in()

    def enqueued(self, queue: str, task: str, at: float, count: int = 1) -> None:
        """``count`` jobs of ``task`` were pushed to ``queue`` at ``at`` (epoch seconds)."""
        self.finished("enqueued", queue, task, None, at, count)

    def finished(self, counted: str, queue: str, task: str, duration: float | None,
                 at: float, count: int = 1) -> None:
        """Count ``count`` of ``counted`` (a name of ``COUNTS``) at ``at``; a run's
        ``duration`` goes into the run-time histogram."""
        if count != 1:
            with self._lock:
                self._add(int(at // BUCKET_SECONDS), counted, queue, task, count, (duration,))
        else:
            inbox = self._inbox
            inbox.append((counted, queue, task, duration, at))
            if len(inbox) < ABSORB_AT and self._thread is not None:
                return
        self._take_in()

    def _take_in(self) -> None:
        """Add what the inbox holds; start the flusher with the first figures."""
        with self._lock:
            self._absorb()
        if self._thread is None:
            self.start()

    def _absorb(self) -> None:
        """Add the inbox's entries to the figures, each run of one kind, queue and task at
        once (under ``_lock``). Entries are split by their own minute."""
        inbox = self._inbox
        popleft = inbox.popleft
        entries = [popleft() for _ in range(len(inbox))]  # (others may append meanwhile)
        for (counted, queue, task), group in groupby(entries, _what):
            run = list(group)
            minute = int(min(map(_at, run)) // BUCKET_SECONDS)
            if minute == int(max(map(_at, run)) // BUCKET_SECONDS):
                self._add(minute, counted, queue, task, len(run), list(map(_seconds, run)))
                continue
            for minute, part in groupby(sorted(run, key=_at), _minute_of):  # at a minute's end
                same = list(part)
                self._add(minute, counted, queue, task, len(same), list(map(_seconds, same)))

    def _add(self, minute: int, counted: str, queue: str, task: str, count: int,
             seconds: Sequence[float | None]) -> None:
        """Add ``count`` of ``counted`` (or ``_WAIT``: waits) with their ``seconds`` to the
        figures of (minute, queue, task) (under ``_lock``)."""
        key = (minute, queue, task)
        figures = self._at_hand.get(key)
        if figures is None:
            figures = self._figures(key)
        if counted == _WAIT:
            figures.wait.add_many([v for v in seconds if v is not None])
            return
        counts = figures.counts
        counts[counted] = counts.get(counted, 0) + count
        if counted in _RUNS:
            figures.run.add_many([v for v in seconds if v is not None])

    def _figures(self, key: tuple[int, str, str]) -> TaskStats:
        """The figures of (minute, queue, task), created when new, its minute marked dirty
        (under ``_lock``). They are kept at hand until the next flush (which clears the dirty
        marks): a worker asks for the same few figures again and again."""
        minute, queue, task = key
        tasks = self._minutes.setdefault(minute, {}).setdefault(queue, {})
        figures = tasks.get(task)
        if figures is None:
            figures = tasks[task] = TaskStats()
        self._dirty.add(minute)
        self._at_hand[key] = figures
        return figures

    def flush(self) -> int:
        """Write the minutes that changed since the last flush; return how many entries
        (none once closed: its store may be closed too)."""
        with self._flush_lock:
            return 0 if self._closed else self._write()

    def _write(self) -> int:
        """``flush``, under ``_flush_lock``."""
        with self._lock:
            self._absorb()
            dirty, self._dirty = sorted(self._dirty), set()
            self._at_hand.clear()  # each is marked dirty again by its next use
            entries = [(m, self._entry(m)) for m in dirty]
        written = 0
        try:
            for minute, entry in entries:
                self.driver.registry_put(KIND, f"{minute}:{self.source}", entry,
                                         ttl_seconds=self.retention)
                written += 1
        except Exception as exc:  # noqa: BLE001 - statistics never break the worker
            log.warning("could not store job statistics (will retry): %s", exc)
            with self._lock:
                self._dirty.update(m for m, _ in entries[written:])
        self._forget_old()
        return written

    def _entry(self, minute: int) -> dict[str, Any]:
        queues = {q: {t: s.to_json() for t, s in tasks.items()}
                  for q, tasks in self._minutes[minute].items()}
        return {"v": 1, "minute": minute, "source": self.source, "queues": queues}

    def _forget_old(self) -> None:
        current = int(time.time() // BUCKET_SECONDS)
        with self._lock:
            old = [m for m in self._minutes if m < current - 1 and m not in self._dirty]
            for minute in old:
                del self._minutes[minute]

    def start(self) -> None:
        """Start the background flusher (done lazily at the first recorded event). From then
        on the driver's ``close()`` closes this recorder first (``Driver.before_close``),
        whoever closes the driver."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._loop, name="taskqueue-stats",
                                            daemon=True)
        self.driver.before_close(self.close)
        self._thread.start()
        atexit.register(self.close)

    def close(self) -> None:
        """Write what is left and stop the flusher (errors are logged, not raised): nothing
        of this recorder touches the store afterwards. Its client's ``close()``, its driver's
        (before it releases anything) or the interpreter's exit calls it, whichever is first."""
        with self._flush_lock:  # after a flush or rollup under way
            if self._closed:
                return
            self._stop.set()
            self._write()
            self._closed = True
        atexit.unregister(self.close)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.flush_interval + 5)

    def _loop(self) -> None:
        next_rollup = time.monotonic() + self.flush_interval
        while not self._stop.wait(self.flush_interval):
            self.flush()
            if time.monotonic() >= next_rollup:
                next_rollup = time.monotonic() + self.rollup_interval
                self.rollup()

    def rollup(self) -> int | None:
        """Fold closed minutes into the long history if this process holds the rollup lock
        (see :mod:`stats_rollup`); runs in the flusher thread, never on a job's path."""
        from taskqueue.observability.stats_rollup import Rollup

        with self._flush_lock:
            if self._closed:
                return None
            if self._rollup is None:
                self._rollup = Rollup(self.driver, self.source)
            try:
                folded: int | None = self._rollup.if_leader()
                return folded
            except Exception as exc:  # noqa: BLE001 - statistics never break the worker
                log.warning("could not roll up job statistics (will retry): %s", exc)
                return None


# -- reading ------------------------------------------------------------------------------------

def _parse(entries: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str, str], TaskStats]:
    merged: dict[tuple[int, str, str], TaskStats] = {}
    for entry in entries:
        try:
            minute = int(entry["minute"])
            for queue, tasks in entry["queues"].items():
                for task, raw in tasks.items():
                    figures = TaskStats.from_json(raw)
                    key = (minute, str(queue), str(task))
                    if key in merged:
                        merged[key].merge(figures)
                    else:
                        merged[key] = figures
        except (KeyError, TypeError, ValueError, AttributeError):
            log.debug("skipping a malformed stats entry: %r", entry)
    return merged


def folded_through(entries: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """hour -> the last minute folded into it, from a folded kind's entries."""
    return {int(e["hour"]): int(e["through"]) for e in entries if "hour" in e and "through" in e}


def unfolded(entries: Iterable[Mapping[str, Any]], through: Mapping[int, int],
             since: float = 0.0) -> list[Mapping[str, Any]]:
    """The recorders' minute ``entries`` (ending after ``since``) not folded into the entries
    ``through`` describes: the folded kinds plus these count every minute once.

    List the recorders' entries BEFORE the folded kind: a fold writes the folded entry, then
    removes the minute entries, so a minute missing from the first listing is in the second,
    and one in both is left out here by the second's ``through``."""
    return [e for e in entries
            if isinstance(e.get("minute"), int) and (e["minute"] + 1) * BUCKET_SECONDS > since
            and e["minute"] > through.get(e["minute"] * BUCKET_SECONDS // 3600, -1)]


def live_entries(driver: Driver) -> list[Mapping[str, Any]]:
    """Minute entries of the last two hours, merged across sources where folded: the folded
    minutes (``stats-minute``) as one entry each, then the recorders' entries not folded."""
    recorded = driver.registry_list(KIND)  # first: see ``unfolded``
    folded = driver.registry_list(MINUTE_KIND)
    out: list[Mapping[str, Any]] = [{"minute": int(m), "queues": queues}
                                    for e in folded for m, queues in e.get("buckets", {}).items()]
    return out + unfolded(recorded, folded_through(folded))


class History:
    """The stored buckets of every node, merged, queried per window."""

    def __init__(self, cells: dict[tuple[int, str, str], TaskStats], now: float) -> None:
        self.cells = cells
        self.now = now
        self._by_queue: dict[str | None, list[tuple[int, TaskStats]]] = {None: []}
        for (minute, queue, _), figures in cells.items():
            self._by_queue.setdefault(queue, []).append((minute, figures))
            self._by_queue[None].append((minute, figures))

    @classmethod
    def load(cls, driver: Driver, now: float | None = None) -> History:
        return cls(_parse(live_entries(driver)), time.time() if now is None else now)

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]],
                     now: float | None = None) -> History:
        return cls(_parse(entries), time.time() if now is None else now)

    def queues(self) -> list[str]:
        return sorted({q for _, q, _ in self.cells})

    def _weight(self, minute: int, start: float) -> float:
        """Share of a bucket inside ``[start, now]``, assuming events spread evenly in it."""
        begin = minute * BUCKET_SECONDS
        end = min(begin + BUCKET_SECONDS, self.now)
        if end <= start or begin > self.now:
            return 0.0
        span = max(end - begin, 1e-9)
        return min(1.0, (end - max(begin, start)) / span)

    def window(self, seconds: float, queue: str | None = None) -> dict[str, Any]:
        """Figures over the last ``seconds`` for one queue (None: all queues)."""
        start = self.now - seconds
        counts = dict.fromkeys(COUNTS, 0.0)
        run, wait = Histogram(), Histogram()
        for minute, figures in self._by_queue.get(queue, ()):
            weight = self._weight(minute, start)
            if weight <= 0:
                continue
            for key, n in figures.counts.items():
                counts[key] = counts.get(key, 0.0) + n * weight
            run.merge(figures.run)
            wait.merge(figures.wait)
        finished = counts["completed"] + counts["failed"]
        per_minute = 60.0 / seconds
        return {
            **{k: round(v) for k, v in counts.items()},
            "enqueued_per_min": round(counts["enqueued"] * per_minute, 3),
            "completed_per_min": round(counts["completed"] * per_minute, 3),
            "failed_per_min": round(counts["failed"] * per_minute, 3),
            "success_rate": round(counts["completed"] / finished, 4) if finished else None,
            "failure_rate": round(counts["failed"] / finished, 4) if finished else None,
            "run_time": run.summary(),
            "wait_time": wait.summary(),
        }

    def figures(self, queue: str | None = None) -> dict[str, Any]:
        """``{"1m": {...}, "5m": {...}, "1h": {...}}`` for one queue or all of them."""
        return {label: self.window(seconds, queue) for label, seconds in WINDOWS}

    def task_totals(self) -> dict[tuple[str, str], TaskStats]:
        """All stored figures summed per (queue, task), regardless of time."""
        out: dict[tuple[str, str], TaskStats] = {}
        for (_, queue, task), figures in self.cells.items():
            out.setdefault((queue, task), TaskStats()).merge(figures)
        return out


def oldest_age(qs: QueueStats, now: float) -> float | None:
    """Seconds the oldest waiting job of a queue has been due (0 if it is not due yet)."""
    if qs.oldest_ready_at is None:
        return None
    return round(max(0.0, now - qs.oldest_ready_at.timestamp()), 3)


def add_history(report: dict[str, Any], driver: Driver,
                per_queue: Mapping[str, QueueStats]) -> dict[str, Any]:
    """Add ``oldest_pending_age`` and ``history`` to a ``QueueManager.stats()`` report."""
    history = History.load(driver)
    store_now = driver.now().timestamp()
    for name, entry in report["queues"].items():
        qs = per_queue.get(name)
        entry["oldest_pending_age"] = oldest_age(qs, store_now) if qs else None
        entry["history"] = history.figures(name)
    ages = [a for a in (entry["oldest_pending_age"] for entry in report["queues"].values())
            if a is not None]
    report["totals"]["oldest_pending_age"] = max(ages, default=None)
    report["totals"]["history"] = history.figures(None)
    report["history_queues"] = history.queues()
    return report


def waiting(qs: QueueStats) -> int:
    return qs.counts[State.PENDING] + qs.counts[State.RETRYING]
