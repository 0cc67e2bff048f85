"""Failed jobs grouped by their error: the exception class and message (the last line of the
stored exception) with numbers, ids, hex, quoted strings and long tokens replaced by
placeholders (:mod:`taskqueue.dashboard.error_patterns`), so ``card declined for customer 110``
and ``... 2471`` are one group, ``card declined for customer <n>``. Each group says how many
jobs share it, which tasks and queues they come from, the latest one and its message as an
example. Computed from the newest ``limit`` failed jobs matching the filter (one keyset walk,
newest first); the answer says when that limit cut the walk short.

Each group carries ``pattern``, which selects its members as the Jobs search's ``group``
filter (with ``state=failed``), so "retry this group" is an ordinary bulk retry on that filter
and reaches every member, also those past the grouping's limit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskqueue.dashboard.error_patterns import pattern
from taskqueue.dashboard.query import JobQuery, error_line
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager

PAGE = 1000


def group_failures(manager: QueueManager, query: JobQuery, limit: int) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    scanned, after, complete = 0, None, False
    criteria = replace(query.filter(states=(State.FAILED,)), newest_first=True)
    while scanned < limit:
        size = min(PAGE, limit - scanned)
        page = manager.search(replace(criteria, after_id=after, limit=size))
        for record in page:
            if query.keeps(record):
                _add(groups, record)
        scanned += len(page)
        if len(page) < size:
            complete = True
            break
        after = page[-1].id
    else:
        complete = not manager.search(replace(criteria, after_id=after, limit=1))
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["pattern"]))
    for group in ordered:
        group["names"] = sorted(group["names"])
        group["queues"] = sorted(group["queues"])
    return {"groups": ordered, "scanned": scanned, "complete": complete, "limit": limit}


def _add(groups: dict[str, dict[str, Any]], record: JobRecord) -> None:
    line = error_line(record.exception)
    key = pattern(line)
    group = groups.get(key)
    if group is None:
        kind, sep, message = key.partition(": ")
        classed = bool(sep) and " " not in kind
        group = groups[key] = {
            "pattern": key, "example": line, "exception_class": kind if classed else None,
            "message": message if classed else key, "count": 0,
            "names": set(), "queues": set(), "latest_id": record.id,
            "latest_at": (record.failed_at or record.updated_at).timestamp()}
    group["count"] += 1
    group["names"].add(record.name)
    group["queues"].add(record.queue_name)
