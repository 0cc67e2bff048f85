"""Health checks shared by ``taskqueue health``, the ``/health`` and ``/ready`` endpoints and
the dashboard.

Four checks, each a plain function returning a :class:`Check`:

* ``store``      the store answers (and how long it took);
* ``workers``    at least one worker is registered (workers refresh a registry entry at every
                 heartbeat; the entry vanishes one lease after the last one);
* ``heartbeats`` no registered worker's last heartbeat is older than ``stale_after``
                 (by default two missed heartbeats, i.e. two thirds of a lease);
* ``queues``     no queue is stuck: its oldest due job waited more than ``stuck_after`` seconds
                 while no live worker serves that queue (a queue paused on purpose is reported,
                 not failed).

Liveness (``/health``) only says the process answers; readiness (``/ready``) runs the store,
worker and heartbeat checks. Restarting a pod because the database is down would not help,
which is why the store is not part of liveness.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskqueue.drivers.base import Driver, QueueStats
from taskqueue.jobs.states import State

WORKER = "worker"
PAUSED = "queue_paused"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds; ``require_workers=False`` for a store that is only written to."""

    require_workers: bool = True
    stale_after: float = 20.0
    stuck_after: float = 300.0

    @classmethod
    def for_lease(cls, lease_seconds: float, **changes: Any) -> HealthPolicy:
        """Staleness tied to the heartbeat period (a third of the lease)."""
        return cls(**{"stale_after": lease_seconds * 2 / 3, **changes})


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "fail",
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, **c.data}
                           for c in self.checks]}


def check_store(driver: Driver) -> Check:
    started = time.perf_counter()
    try:
        driver.now()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return Check("store", False, f"{driver.name} store unreachable: {exc}")
    ms = (time.perf_counter() - started) * 1000
    return Check("store", True, f"{driver.name} answered in {ms:.1f} ms",
                 {"latency_ms": round(ms, 2)})


def fresh_workers(entries: Sequence[Mapping[str, Any]], policy: HealthPolicy,
                  now: float) -> list[Mapping[str, Any]]:
    return [e for e in entries if now - float(e.get("last_heartbeat", 0)) <= policy.stale_after]


def check_workers(entries: Sequence[Mapping[str, Any]], policy: HealthPolicy) -> Check:
    if entries:
        return Check("workers", True, f"{len(entries)} worker(s) registered",
                     {"count": len(entries)})
    if not policy.require_workers:
        return Check("workers", True, "no worker registered (not required)", {"count": 0})
    return Check("workers", False, "no live worker registered", {"count": 0})


def check_heartbeats(entries: Sequence[Mapping[str, Any]], policy: HealthPolicy,
                     now: float) -> Check:
    stale = [e for e in entries if e not in fresh_workers(entries, policy, now)]
    if not stale:
        return Check("heartbeats", True, f"all heartbeats within {policy.stale_after:.0f}s")
    ages = ", ".join(f"{e.get('id')} ({now - float(e.get('last_heartbeat', 0)):.0f}s ago)"
                     for e in stale[:5])
    return Check("heartbeats", False, f"{len(stale)} worker(s) stopped heart-beating: {ages}",
                 {"stale": [str(e.get("id")) for e in stale]})


def serving(entries: Sequence[Mapping[str, Any]], queue: str) -> bool:
    return any(queue in e.get("queues", ()) and queue not in e.get("paused_queues", ())
               for e in entries)


def check_queues(stats: Mapping[str, QueueStats], entries: Sequence[Mapping[str, Any]],
                 paused: set[str], policy: HealthPolicy, store_now: float) -> Check:
    stuck: list[str] = []
    held: list[str] = []
    for name, qs in sorted(stats.items()):
        if qs.oldest_ready_at is None or not (qs.counts[State.PENDING]
                                              + qs.counts[State.RETRYING]):
            continue
        age = store_now - qs.oldest_ready_at.timestamp()
        if age <= policy.stuck_after or serving(entries, name):
            continue
        (held if name in paused else stuck).append(f"{name} (oldest job due {age:.0f}s ago)")
    note = f"; paused on purpose: {', '.join(held)}" if held else ""
    if stuck:
        return Check("queues", False, "stuck, no live worker serves: " + ", ".join(stuck) + note,
                     {"stuck": stuck, "paused": held})
    return Check("queues", True, "no queue stuck" + note, {"paused": held})


def readiness(driver: Driver, policy: HealthPolicy | None = None) -> HealthReport:
    """Store reachable, workers registered, heartbeats fresh."""
    policy = policy or HealthPolicy()
    store = check_store(driver)
    if not store.ok:
        return HealthReport((store,))
    try:
        entries = driver.registry_list(WORKER)
    except Exception as exc:  # noqa: BLE001 - the store failing mid-check is a failed check
        return HealthReport((store, Check("workers", False, f"could not list workers: {exc}")))
    return HealthReport((store, check_workers(entries, policy),
                         check_heartbeats(entries, policy, time.time())))


def full_check(driver: Driver, policy: HealthPolicy | None = None) -> HealthReport:
    """Everything ``taskqueue health`` reports: readiness plus stuck queues."""
    policy = policy or HealthPolicy()
    ready = readiness(driver, policy)
    if not ready.checks[0].ok:
        return ready
    try:
        entries = fresh_workers(driver.registry_list(WORKER), policy, time.time())
        paused = {str(e.get("queue")) for e in driver.registry_list(PAUSED)}
        queues = check_queues(driver.stats(), entries, paused, policy,
                              driver.now().timestamp())
    except Exception as exc:  # noqa: BLE001 - a store failing mid-check is a failed check
        queues = Check("queues", False, f"could not read queue statistics: {exc}")
    return HealthReport((*ready.checks, queues))
