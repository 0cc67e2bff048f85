"""The scheduler service: a leader-elected loop that enqueues each due run of every schedule.

Any number of schedulers may run (``taskqueue schedule:run``, ``taskqueue work --scheduler``);
they compete for the store lock ``scheduler`` (TTL ``lock_ttl``, 10 s by default, renewed at
every tick). Only the holder enqueues; the others stand by and check each tick, so when the
leader dies one of them takes over within one TTL (plus a tick). A stopping leader releases
the lock, so a planned handover is immediate.

Exactly once: each due fire time is pushed with the idempotency key
``schedule:<name>:<fire time ISO, UTC>``. A duplicate key returns the existing job, so a
leader that crashed between pushing and recording, two leaders overlapping after a long pause,
or a run recomputed after a failover never enqueue a fire time twice.

Which fire times are due at ``now`` (the store's clock), counting from the later of the
schedule's last handled fire time and its ``since`` (creation or resume):

* fire times in the last ``grace`` seconds (60 by default) are on time: always enqueued, so
  a failover or a slow tick loses nothing;
* older ones were missed (no scheduler was up): the schedule's policy decides: ``skip`` them,
  run the latest ``once``, or run ``all`` of them (the latest :data:`MAX_CATCH_UP`).

A schedule's conditions are checked before its runs are enqueued; when one is false the runs
are skipped (and logged), not postponed. Paused schedules are passed over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from taskqueue.drivers.base import Driver
from taskqueue.errors import DriverError, TaskQueueError
from taskqueue.jobs.definition import REGISTRY, Call, JobClass
from taskqueue.jobs.ids import uuid7
from taskqueue.scheduling.conditions import Probe, first_unmet
from taskqueue.scheduling.schedules import MAX_CATCH_UP, Schedule, ScheduleStore
from taskqueue.scheduling.timing import fire_times_between, latest_fire_times

log = logging.getLogger("taskqueue.scheduler")

LOCK_NAME = "scheduler"
STATUS_KIND = "scheduler"


class Enqueues(Protocol):
    """What the scheduler needs of a client: its store, and push."""

    driver: Driver

    def push(self, job: Call, **options: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class Fired:
    """One fire time handled: the job enqueued for it, or why it was skipped."""

    schedule: str
    fire: datetime
    job_id: str | None = None
    skipped: str | None = None


@dataclass
class Tick:
    """What one ``run_once`` did (the test hook: no sleeps needed to observe the service)."""

    leader: bool
    now: datetime
    fired: list[Fired] = field(default_factory=list)
    next_due: datetime | None = None


def due_runs(schedule: Schedule, now: datetime,
             grace: float) -> tuple[list[datetime], list[datetime]]:
    """(fire times to enqueue, missed fire times skipped by the policy), oldest first."""
    start = max(schedule.since, schedule.last_fire or schedule.since)
    if start >= now:
        return [], []
    cutoff = now - timedelta(seconds=grace)
    on_time = fire_times_between(schedule.cron, schedule.timezone, max(start, cutoff), now,
                                 MAX_CATCH_UP, schedule.period)
    missed: list[datetime] = []
    skipped: list[datetime] = []
    if start < cutoff:
        count = MAX_CATCH_UP if schedule.missed == "all" else 1
        latest = latest_fire_times(schedule.cron, schedule.timezone, start, cutoff, count,
                                   schedule.period)
        missed, skipped = (latest, []) if schedule.missed != "skip" else ([], latest)
    return (missed + on_time)[-MAX_CATCH_UP:], skipped


class Scheduler:
    """Leader-elected: ``run_once()`` is one deterministic tick, ``run(stop)`` loops."""

    def __init__(self, manager: Enqueues, *, lock_ttl: float = 10.0, tick: float = 1.0,
                 grace: float = 60.0, owner: str | None = None) -> None:
        if tick >= lock_ttl / 2:
            raise TaskQueueError(f"the tick ({tick}s) must be under half the lock TTL "
                                 f"({lock_ttl}s) so the leader renews in time")
        self.manager = manager
        self.driver = manager.driver
        self.store = ScheduleStore(manager.driver)
        self.lock_ttl = lock_ttl
        self.tick = tick
        self.grace = grace
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid7()[-6:]}"
        self.leader = False
        self.leader_since: datetime | None = None
        self._probe: Probe | None = None

    # -- one tick -------------------------------------------------------------------------------
    def run_once(self) -> Tick:
        """Take or renew the lock; as leader, enqueue every due run and record it."""
        now = self.driver.now()
        self._set_leader(self.driver.lock_acquire(LOCK_NAME, self.owner, self.lock_ttl), now)
        self._publish_status()
        tick = Tick(self.leader, now)
        if not self.leader:
            return tick
        for schedule in self.store.list():
            if schedule.paused:
                continue
            try:
                tick.fired += self._fire(schedule, now)
                upcoming = schedule.next_runs(1, now)[0]
            except DriverError:
                raise  # the loop backs off and retries the whole tick
            except Exception:  # noqa: BLE001 - one broken schedule must not stop the others
                log.exception("schedule %s: could not be processed", schedule.name)
                continue
            tick.next_due = min(filter(None, (tick.next_due, upcoming)))
        return tick

    def _set_leader(self, leader: bool, now: datetime) -> None:
        if leader and not self.leader:
            log.info("scheduler %s is now the leader", self.owner)
            self.leader_since = now
        elif self.leader and not leader:
            log.warning("scheduler %s lost the leader lock; standing by", self.owner)
            self.leader_since = None
        self.leader = leader

    def _fire(self, schedule: Schedule, now: datetime) -> list[Fired]:
        runs, skipped = due_runs(schedule, now, self.grace)
        if skipped:
            log.info("schedule %s: skipping runs missed while no scheduler ran (policy skip), "
                     "the latest at %s", schedule.name, skipped[-1].isoformat())
        if not runs:
            if skipped:
                self.store.record_fire(schedule.name, skipped[-1])
            return []
        fired = self._check(schedule, runs) or [self._enqueue(schedule, fire) for fire in runs]
        self.store.record_fire(schedule.name, max([runs[-1], *skipped]))
        return fired

    def _check(self, schedule: Schedule, runs: list[datetime]) -> list[Fired]:
        """Skip the runs (returned, with the reason) when a condition is false."""
        if not schedule.conditions:
            return []
        self._probe = self._probe or Probe(self.driver)
        unmet = first_unmet(schedule.conditions, self._probe)
        if unmet is None:
            return []
        reason = f"condition '{unmet[0]}' not met: {unmet[1].detail}"
        for fire in runs:
            log.info("schedule %s: skipped the run at %s: %s", schedule.name,
                     fire.isoformat(), reason)
        return [Fired(schedule.name, fire, skipped=reason) for fire in runs]

    def _enqueue(self, schedule: Schedule, fire: datetime) -> Fired:
        job_id = self.manager.push(schedule_call(schedule),
                                   idempotency_key=schedule.idempotency_key(fire))
        log.debug("schedule %s: enqueued the run at %s as %s", schedule.name,
                  fire.isoformat(), job_id)
        return Fired(schedule.name, fire, job_id=str(job_id))

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; store outages are retried with backoff. Releases the
        lock on the way out so a standby takes over at once."""
        failures = 0
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    tick = self.run_once()
                    failures = 0
                except DriverError as exc:
                    failures += 1
                    log.warning("scheduler: store error (%s); retrying", exc)
                    stop.wait(min(self.lock_ttl / 3, 0.2 * 2 ** min(failures, 6)))
                    continue
                stop.wait(self._pause(tick, time.monotonic() - started))
        finally:
            self.close()

    def _pause(self, tick: Tick, spent: float) -> float:
        """Until the next fire time (to enqueue it on the dot), at most one tick."""
        if not tick.leader or tick.next_due is None:
            return self.tick
        until_due = (tick.next_due - tick.now).total_seconds() - spent + 0.002
        return min(self.tick, max(0.005, until_due))

    def close(self) -> None:
        """Give up the lock (if held) and the status entry."""
        try:
            if self.leader:
                self.driver.lock_release(LOCK_NAME, self.owner)
            self.driver.registry_remove(STATUS_KIND, self.owner)
        except DriverError as exc:
            log.warning("scheduler: could not release the lock cleanly: %s", exc)
        self.leader = False

    def _publish_status(self) -> None:
        self.driver.registry_put(STATUS_KIND, self.owner, {
            "id": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
            "leader": self.leader, "ticked_at": time.time(),
            "leader_since": self.leader_since.isoformat() if self.leader_since else None,
        }, max(3 * self.tick, self.lock_ttl))


def schedule_call(schedule: Schedule) -> Call:
    """The enqueue request for one run: the task's own defaults (when this process imported
    it; ``every``, the workflow option that re-enqueues a job after each run, excluded), the
    schedule's options over them, and a ``schedule:<name>`` tag."""
    runnable = REGISTRY.get(schedule.task)
    defaults = {k: v for k, v in (runnable.defaults if runnable else {}).items() if k != "every"}
    options = {**defaults, **schedule.options}
    options["tags"] = [*options.get("tags", ()), f"schedule:{schedule.name}"]
    if isinstance(runnable, JobClass):
        return Call(schedule.task, {"data": dict(schedule.kwargs)}, options)
    body: dict[str, object] = {"args": list(schedule.args)}
    if schedule.kwargs:
        body["kwargs"] = dict(schedule.kwargs)
    return Call(schedule.task, body, options)


def start_scheduler_thread(manager: Enqueues, stop_event: threading.Event, *,
                           lock_ttl: float = 10.0, tick: float = 1.0,
                           grace: float = 60.0) -> threading.Thread:
    """Run a :class:`Scheduler` in a daemon thread until ``stop_event`` is set (for
    ``taskqueue work --scheduler``). The thread releases the leader lock when it stops."""
    scheduler = Scheduler(manager, lock_ttl=lock_ttl, tick=tick, grace=grace)
    thread = threading.Thread(target=scheduler.run, args=(stop_event,), daemon=True,
                              name="taskqueue-scheduler")
    thread.start()
    return thread
