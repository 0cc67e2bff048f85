"""The jobs list's extras: sorting by a column and a short preview of each job's arguments.

Sorting. ``created`` is the store's own order (ids are UUIDv7: time-sortable), paged by keyset
at any depth. The other columns of :data:`SORTS` (a whitelist; anything else is refused) are
sorted by the dashboard over the newest ``scan`` matches of the filter (10,000 by default),
paged by offset, and the answer says how many it sorted and whether that was all of them: the
driver protocol pages by id only, so a store-side order on another column would need a new
driver verb on every backend.

Preview. For accounts that may read payloads, each row carries ``args_preview``: positional
arguments by parameter name when the task is imported here, then keyword arguments, as
``name=value`` pairs cut to :data:`PREVIEW_CHARS`. Accounts without payload access get none
(their rows show tags and errors, which are not read from the payload).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from taskqueue.dashboard.query import Decode, JobQuery, Search, find_page
from taskqueue.dashboard.signatures import named_positionals
from taskqueue.jobs.model import JobRecord
from taskqueue.manager import WORKFLOW

SORTS: dict[str, Callable[[JobRecord], Any]] = {
    "priority": lambda r: r.priority,
    "attempts": lambda r: r.attempts,
    "updated": lambda r: r.updated_at,
    "state": lambda r: r.state.value,
    "queue": lambda r: r.queue_name,
    "name": lambda r: r.name,
}
#: Every sortable column: ``created`` is the store's keyset order (the ``order`` parameter).
COLUMNS = ("created", *SORTS)
SCAN = 10_000
CHUNK = 1000
PREVIEW_CHARS = 120


@dataclass
class SortedPage:
    jobs: list[JobRecord]
    next_offset: int | None
    among: int
    complete: bool


def sorted_page(search: Search, query: JobQuery, column: str, descending: bool, offset: int,
                decode: Decode | None = None, max_decode: int = 2000,
                scan: int = SCAN) -> SortedPage:
    """One page of the newest ``scan`` matches of ``query``, ordered by ``column``."""
    key = SORTS[column]
    found: list[JobRecord] = []
    cursor, complete = query.cursor, False
    while len(found) < scan:
        page = find_page(search, replace(query, cursor=cursor, limit=min(CHUNK, scan - len(found)),
                                         newest_first=True), decode, max_decode)
        found.extend(page.jobs)
        if page.next_cursor is None:
            complete = not page.partial
            break
        cursor = page.next_cursor
    # id as the tie-breaker keeps the order total, so offsets page without gaps or repeats
    found.sort(key=lambda r: r.id, reverse=True)
    found.sort(key=key, reverse=descending)
    end = offset + query.limit
    return SortedPage(found[offset:end], end if end < len(found) else None, len(found),
                      complete)


def args_preview(record: JobRecord, decode: Decode) -> str | None:
    """``user_id=42, template='welcome'``; None when the payload cannot be decoded."""
    try:
        body = decode(record)
    except Exception:  # noqa: BLE001 - no key, corrupt: the row simply has no preview
        return None
    parts = _parts(record.name, body)
    text = ", ".join(parts)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def _parts(task: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [_value(body)]
    named = named_positionals(task, body)
    args = body.get("args")
    parts: list[str] = []
    if named:
        parts += [f"{k}={_value(v)}" for k, v in named.items()]
        args = args[len(named):] if isinstance(args, list) else None
    if isinstance(args, list):
        parts += [_value(v) for v in args]
    for key in ("kwargs", "data"):
        if isinstance(body.get(key), dict):
            parts += [f"{k}={_value(v)}" for k, v in body[key].items() if k != WORKFLOW]
    if not parts and not any(k in body for k in ("args", "kwargs", "data")):
        parts = [f"{k}={_value(v)}" for k, v in body.items() if k != WORKFLOW]
    return parts


def _value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
