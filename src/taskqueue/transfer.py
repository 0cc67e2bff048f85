"""Moving a store to another backend: ``taskqueue transfer --from URL --to URL``.

Every job is copied as it is (state, attempts, timestamps, result, exception, dependencies,
idempotency key, lease, attempt history), in id order and in pages, with ``Driver.restore``,
which skips ids the destination already has: an interrupted transfer is resumed by running it
again. Then every
durable registry entry is copied (:data:`DURABLE_KINDS`: paused queues, queue limits, schedules
and their last fire times, stopped recurring series, batch metadata, the plaintext migration
switch) and the counts per queue and state are compared. Entries that describe the running
system and expire on their own (:data:`EPHEMERAL_KINDS`: workers, nodes, statistics, alert
state, the audit log) are not. Every kind the code writes must be in one of the two tables
(``tests/integration/test_transfer.py`` scans the source). Stop the workers first: a job that
changes state during the copy is copied as it was when its page was read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from taskqueue.drivers import Driver, JobFilter
from taskqueue.jobs.model import ATTEMPT_HISTORY, JobRecord
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.transfer")
FOREVER = 100 * 365 * 24 * 3600.0
_Key = Callable[[dict[str, Any]], str]


def _field(name: str) -> _Key:
    return lambda entry: str(entry[name])


#: Durable registry kinds (written with a TTL of a century) and how each entry's key is found
#: from its data (``registry_list`` returns the data only).
DURABLE_KINDS: dict[str, _Key] = {
    "queue_paused": _field("queue"),           # manager.pause_queue
    "queue_limit": _field("queue"),            # scheduling.ratelimit.set_queue_limit
    "schedule": _field("name"),                # scheduling.schedules (definitions)
    "schedule_state": _field("name"),          # scheduling.schedules (last fire times)
    "series_stopped": _field("id"),            # workflows.recurring
    "plaintext_accepted": _field("id"),        # plaintext_switch
}
#: Durable kinds named per item: ``batch:<id>`` (workflows.batch), found from the jobs' batch ids.
DURABLE_PREFIXES: dict[str, _Key] = {"batch:": _field("id")}
#: Kinds not copied, and why: they describe the running system and expire by themselves.
EPHEMERAL_KINDS: dict[str, str] = {
    "worker": "live workers re-register on the new store",
    "node": "live nodes re-register on the new store",
    "worker_paused": "pauses name worker ids of processes that do not move to the new store",
    "scheduler": "the scheduler's status, republished every tick",
    "stats": "per-minute counters, kept for an hour",
    "dashboard_minute": "the dashboard's per-minute series, kept for an hour",
    "stats-minute": "per-task minutes of the last hour, merged, kept two hours",
    "stats-5min": "per-task 5-minute buckets, kept six hours",
    "stats-rollup": "which process folded the statistics last",
    "stats-hour": "per-task hour buckets, kept eight days; they describe the old store's runs",
    "alert_state": "firing alerts are re-evaluated on the new store",
    "alert_history": "notifications sent, kept for a limited time",
    "dashboard_session": "dashboard logins expire; people sign in again on the new store",
    "audit": "the dashboard's audit log, kept for a limited time (export it first if needed)",
}


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
        inserted = target.restore(with_history(source, page))
        report.copied += inserted
        report.skipped += len(page) - inserted
        batches.update(r.batch_id for r in page if r.batch_id)
        after = page[-1].id
        if progress:
            progress(len(page))
    kinds = {**DURABLE_KINDS, **{f"batch:{b}": DURABLE_PREFIXES["batch:"]
                                 for b in sorted(batches)}}
    for kind, key_of in kinds.items():
        for entry in source.registry_list(kind):
            try:
                key = key_of(entry)
            except KeyError:
                log.warning("not copying a %s entry without its key field: %r", kind, entry)
                continue
            target.registry_put(kind, key, entry, FOREVER)
            report.registry_entries += 1
    report.source_counts = counts(source)
    report.target_counts = counts(target)
    return report


def with_history(source: Driver, page: list[JobRecord]) -> list[JobRecord]:
    """The page's jobs, each carrying its attempt history (in ``extra``) for ``restore``. It is
    read only for jobs that may have one: not a job completed at its first attempt (most of a
    store), nor one that never ran and has no message."""
    out = []
    for record in page:
        never_failed = (record.state is State.COMPLETED and record.attempts <= 1) or (
            record.attempts == 0 and record.exception is None)
        history = [] if never_failed else source.attempt_history(record.id)
        out.append(replace(record, extra={**record.extra, ATTEMPT_HISTORY: [
            a.entry() for a in history]}) if history else record)
    return out


def counts(driver: Driver) -> dict[str, dict[str, int]]:
    return {queue: {s.value: n for s, n in qs.counts.items() if n}
            for queue, qs in driver.stats().items()
            if any(qs.counts[s] for s in State)}
