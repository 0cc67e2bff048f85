"""The audit log: every action taken through the dashboard, who took it and on how many jobs.

Entries live in the driver's registry (kind ``audit``, one entry per action, a long TTL: a year
by default), so every dashboard instance writes to and reads from the same log, on every
backend. Each entry is also logged to ``taskqueue.dashboard.audit``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from taskqueue.drivers.base import Driver

KIND = "audit"
log = logging.getLogger("taskqueue.dashboard.audit")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    role: str
    action: str
    #: What was acted on: a job id, "queue:emails", "filter: state=failed ...", ...
    target: str
    #: How many jobs the action changed (0 for actions on queues, workers, schedules).
    count: int = 0
    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    client: str | None = None
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, driver: Driver, ttl_seconds: float = 365 * 24 * 3600.0) -> None:
        self.driver = driver
        self.ttl = ttl_seconds

    def record(self, actor: str, role: str, action: str, target: str, *, count: int = 0,
               outcome: str = "ok", detail: dict[str, Any] | None = None,
               client: str | None = None) -> AuditEntry:
        at = time.time()
        entry = AuditEntry(at, actor, role, action, target, count, outcome, detail or {},
                           client, f"{at:017.6f}-{uuid.uuid4().hex[:8]}")
        self.driver.registry_put(KIND, entry.id, entry.to_dict(), ttl_seconds=self.ttl)
        log.info("%s %s %s (%d jobs): %s", actor, action, target, count, outcome,
                 extra={"audit": entry.to_dict()})
        return entry

    def entries(self, *, limit: int = 200, actor: str | None = None,
                action: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """Newest first, optionally only one actor's / one action's / mentioning a target."""
        found = []
        for raw in self.driver.registry_list(KIND):
            if actor and raw.get("actor") != actor:
                continue
            if action and raw.get("action") != action:
                continue
            if target and target not in str(raw.get("target", "")):
                continue
            found.append(raw)
        found.sort(key=lambda e: float(e.get("at", 0)), reverse=True)
        return found[:limit]
