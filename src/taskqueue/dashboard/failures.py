"""Failed jobs grouped by their error: the exception class and message (the last line of the
stored exception), with how many jobs share it, which tasks and queues they come from, and the
latest one. Computed from the newest ``limit`` failed jobs matching the filter (one keyset walk,
newest first); the answer says when that limit cut the walk short.

Each group carries ``error``, the text that selects it as the Jobs search's ``error`` filter
(with ``state=failed``), so "retry this group" is an ordinary bulk retry on that filter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskqueue.dashboard.query import JobQuery
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager

PAGE = 1000


def error_line(exception: str | None) -> str:
    """The exception's last non-empty line (``ValueError: boom``), or a placeholder."""
    lines = [line.strip() for line in (exception or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no exception text)"


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
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["error"]))
    for group in ordered:
        group["names"] = sorted(group["names"])
        group["queues"] = sorted(group["queues"])
    return {"groups": ordered, "scanned": scanned, "complete": complete, "limit": limit}


def _add(groups: dict[str, dict[str, Any]], record: JobRecord) -> None:
    line = error_line(record.exception)
    kind, sep, message = line.partition(": ")
    group = groups.get(line)
    if group is None:
        group = groups[line] = {
            "error": line, "exception_class": kind if sep and " " not in kind else None,
            "message": message if sep and " " not in kind else line, "count": 0,
            "names": set(), "queues": set(), "latest_id": record.id,
            "latest_at": (record.failed_at or record.updated_at).timestamp()}
    group["count"] += 1
    group["names"].add(record.name)
    group["queues"].add(record.queue_name)
