"""Moving a store to another backend: ``taskqueue transfer --from URL --to URL``.

Every job is copied as it is (state, attempts, timestamps, result, exception, dependencies,
idempotency key, lease), in id order and in pages, with ``Driver.restore``, which skips ids the
destination already has: an interrupted transfer is resumed by running it again. Then the small
durable entries are copied (paused queues, schedules, batch metadata) and the counts per queue
and state are compared. Stop the workers first: a job that changes state during the copy is
copied as it was when its page was read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskqueue.drivers import Driver, JobFilter
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.transfer")
FOREVER = 100 * 365 * 24 * 3600.0
#: Durable registry kinds copied along with the jobs (batch kinds are found from the jobs).
REGISTRY_KINDS = ("queue_paused", "schedule", "schedules", "alert_rules")


@dataclass
class TransferReport:
    copied: int = 0
    skipped: int = 0
    registry_entries: int = 0
    source_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    target_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """Every (queue, state) count of the source is matched in the destination."""
        return all(self.target_counts.get(q, {}).get(s, 0) >= n
                   for q, states in self.source_counts.items() for s, n in states.items())

    def to_dict(self) -> dict[str, Any]:
        return {"copied": self.copied, "skipped": self.skipped,
                "registry_entries": self.registry_entries, "verified": self.verified,
                "source": self.source_counts, "target": self.target_counts}


def transfer(source: Driver, target: Driver, page_size: int = 500,
             progress: Callable[[int], None] | None = None) -> TransferReport:
    """Copy every job and durable entry from ``source`` to ``target``; verify the counts."""
    report = TransferReport()
    batches: set[str] = set()
    after: str | None = None
    while True:
        page = source.search(JobFilter(newest_first=False, after_id=after, limit=page_size))
        if not page:
            break
        inserted = target.restore(page)
        report.copied += inserted
        report.skipped += len(page) - inserted
        batches.update(r.batch_id for r in page if r.batch_id)
        after = page[-1].id
        if progress:
            progress(len(page))
    kinds = [*REGISTRY_KINDS, *(f"batch:{b}" for b in sorted(batches))]
    for kind in kinds:
        for entry in source.registry_list(kind):
            key = str(entry.get("id") or entry.get("name") or entry.get("queue") or "")
            if key:
                target.registry_put(kind, key, entry, FOREVER)
                report.registry_entries += 1
    report.source_counts = counts(source)
    report.target_counts = counts(target)
    return report


def counts(driver: Driver) -> dict[str, dict[str, int]]:
    return {queue: {s.value: n for s, n in qs.counts.items() if n}
            for queue, qs in driver.stats().items()
            if any(qs.counts[s] for s in State)}
