"""Failed jobs grouped by their error: the exception class and message (the last line of the
stored exception) with numbers, ids, hex, quoted strings and long tokens replaced by
placeholders (:mod:`taskqueue.dashboard.error_patterns`), so ``card declined for customer 110``
and ``... 2471`` are one group, ``card declined for customer <n>``. Each group says how many
jobs share it, which tasks and queues they come from, the latest one and its message as an
example.

The store counts the failed jobs matching the filter per distinct exception text in one
statement (``Driver.error_texts``: a GROUP BY on the SQL stores); the texts are merged here by
their pattern, which is a function of the text, so every failed job is counted in exactly the
group whose ``group`` filter selects it. At most ``limit`` distinct texts are read, the most
common first; the answer says when that limit left rarer texts out (messages that embed a
unique value, such as a full URL, make one text per job).

Each group carries ``pattern``, which selects its members as the Jobs search's ``group``
filter (with ``state=failed``), so "retry this group" is an ordinary bulk retry on that filter
and reaches every member.
"""

from __future__ import annotations

from typing import Any

from taskqueue.dashboard.error_patterns import pattern
from taskqueue.dashboard.query import JobQuery, error_line
from taskqueue.drivers.base import ErrorText
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager

#: Distinct exception texts read at most by default.
TEXTS = 10_000


def group_failures(manager: QueueManager, query: JobQuery, limit: int = TEXTS) -> dict[str, Any]:
    texts = manager.driver.error_texts(query.filter(states=(State.FAILED,)), limit)
    groups: dict[str, dict[str, Any]] = {}
    for text in texts:
        if query.keeps_text(text.exception):
            _add(groups, text)
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["pattern"]))
    for group in ordered:
        group["names"] = sorted(group["names"])
        group["queues"] = sorted(group["queues"])
    return {"groups": ordered, "scanned": sum(t.count for t in texts),
            "texts": len(texts), "complete": len(texts) < limit, "limit": limit}


def _add(groups: dict[str, dict[str, Any]], text: ErrorText) -> None:
    line = error_line(text.exception)
    key = pattern(line)
    at = text.latest_at.timestamp() if text.latest_at else None
    group = groups.get(key)
    if group is None:
        kind, sep, message = key.partition(": ")
        classed = bool(sep) and " " not in kind
        group = groups[key] = {
            "pattern": key, "example": line, "exception_class": kind if classed else None,
            "message": message if classed else key, "count": 0,
            "names": set(), "queues": set(), "latest_id": text.latest_id, "latest_at": at}
    elif text.latest_id > group["latest_id"]:
        group["example"], group["latest_id"] = line, text.latest_id
    if at is not None and (group["latest_at"] is None or at > group["latest_at"]):
        group["latest_at"] = at
    group["count"] += text.count
    group["names"].update(text.names)
    group["queues"].update(text.queues)
