"""The alert rules: each reads one :class:`Snapshot` of the store and returns what fires.

``queue`` is a queue name or ``"*"`` for every queue (every queue the store or the stored
statistics know). A rule returns only firing findings; the alert service resolves the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from taskqueue.drivers.base import Driver, JobFilter, QueueStats
from taskqueue.jobs.states import State
from taskqueue.observability import health
from taskqueue.observability.stats import History, oldest_age


@dataclass
class Snapshot:
    """What every rule looks at, read from the store once per evaluation."""

    driver: Driver
    stats: dict[str, QueueStats]
    workers: list[dict[str, Any]]
    history: History
    store_now: float
    now: float

    @classmethod
    def read(cls, driver: Driver) -> Snapshot:
        now = time.time()
        return cls(driver, driver.stats(), driver.registry_list(health.WORKER),
                   History.load(driver, now), driver.now().timestamp(), now)

    def queues(self, selector: str) -> list[str]:
        known = set(self.stats) | set(self.history.queues())
        return sorted(known) if selector == "*" else [selector]


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    subject: str
    value: float | None
    message: str

    @property
    def alert(self) -> str:
        return f"{self.rule.name}|{self.subject}"


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Base of the rules: a name, which queue(s), a severity and which channels to tell."""

    kind: ClassVar[str] = ""
    name: str = ""
    queue: str = "*"
    severity: str = "warning"
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind}:{self.queue}")

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        raise NotImplementedError  # abstract: every rule kind implements its own check

    def found(self, subject: str, value: float | None, message: str) -> Finding:
        return Finding(self, subject, value, message)


@dataclass(frozen=True, kw_only=True)
class FailureRate(Rule):
    kind: ClassVar[str] = "failure_rate"
    threshold: float = 10.0          # percent
    window: float = 300.0
    min_jobs: int = 5
    include_retries: bool = False

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for queue in snap.queues(self.queue):
            figures = snap.history.window(self.window, queue)
            bad = figures["failed"] + (figures["retried"] if self.include_retries else 0)
            total = figures["completed"] + bad
            if total >= self.min_jobs and 100.0 * bad / total > self.threshold:
                rate = 100.0 * bad / total
                out.append(self.found(queue, rate, (
                    f"{queue}: {rate:.1f}% of {total} jobs failed in the last "
                    f"{_human(self.window)} (threshold {self.threshold:g}%)")))
        return out


@dataclass(frozen=True, kw_only=True)
class QueueDepth(Rule):
    kind: ClassVar[str] = "queue_depth"
    threshold: int = 1000
    states: tuple[str, ...] = ("pending", "retrying")

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for queue in snap.queues(self.queue):
            qs = snap.stats.get(queue)
            depth = sum(qs.counts[State(s)] for s in self.states) if qs else 0
            if depth > self.threshold:
                out.append(self.found(queue, depth, (
                    f"{queue}: {depth} jobs {'/'.join(self.states)} "
                    f"(threshold {self.threshold})")))
        return out


@dataclass(frozen=True, kw_only=True)
class OldestJob(Rule):
    kind: ClassVar[str] = "oldest_job"
    max_age: float = 600.0

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for queue in snap.queues(self.queue):
            qs = snap.stats.get(queue)
            age = oldest_age(qs, snap.store_now) if qs else None
            if age is not None and age > self.max_age:
                out.append(self.found(queue, age, (
                    f"{queue}: the oldest due job has waited {_human(age)} "
                    f"(threshold {_human(self.max_age)})")))
        return out


@dataclass(frozen=True, kw_only=True)
class NoWorker(Rule):
    kind: ClassVar[str] = "no_worker"

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for queue in snap.queues(self.queue):
            qs = snap.stats.get(queue)
            waiting = (qs.counts[State.PENDING] + qs.counts[State.RETRYING]) if qs else 0
            if not waiting:  # nothing to do there: an idle queue needs no worker
                continue
            if not health.serving(snap.workers, queue):
                out.append(self.found(queue, waiting, (
                    f"{queue}: no live worker serves this queue ({waiting} jobs waiting)")))
        return out


@dataclass(frozen=True, kw_only=True)
class WorkerMemory(Rule):
    kind: ClassVar[str] = "worker_memory"
    max_mb: float = 500.0

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for worker in snap.workers:
            rss = float(worker.get("rss_mb") or 0.0)
            queues = worker.get("queues") or ()
            if rss > self.max_mb and (self.queue == "*" or self.queue in queues):
                out.append(self.found(str(worker.get("id")), rss, (
                    f"worker {worker.get('id')} uses {rss:.0f} MB "
                    f"(threshold {self.max_mb:g} MB)")))
        return out


@dataclass(frozen=True, kw_only=True)
class DeadLetter(Rule):
    kind: ClassVar[str] = "dead_letter"
    threshold: int = 0
    window: float = 300.0

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        out = []
        for queue in snap.queues(self.queue):
            failed = snap.history.window(self.window, queue)["failed"]
            if failed > self.threshold:
                latest = snap.driver.search(JobFilter(queues=(queue,), states=(State.FAILED,),
                                                      limit=3))
                names = ", ".join(f"{r.id} ({r.name})" for r in latest)
                out.append(self.found(queue, failed, (
                    f"{queue}: {failed} job(s) failed into the dead letter queue in the last "
                    f"{_human(self.window)}" + (f"; latest: {names}" if names else ""))))
        return out


RULES: dict[str, type[Rule]] = {cls.kind: cls for cls in (
    FailureRate, QueueDepth, OldestJob, NoWorker, WorkerMemory, DeadLetter)}


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:.0f}s"
