"""The jobs list's extras: sorting by a column and a short preview of each job's arguments.

Sorting. ``created`` is the store's own order (ids are UUIDv7: time-sortable), paged by keyset
at any depth. The other columns of :data:`SORTS` (a whitelist; anything else is refused) are
sorted by the store (``Driver.sorted_search``: ``ORDER BY column, id DESC`` on the SQL stores),
paged by offset: every match when the filter matches at most :data:`SORT_ALL` jobs (counted,
or estimated where counting is slow), else the newest ``scan`` (10,000) of them, and the
answer says which. Filters the store cannot apply (argument values, a group pattern, an error
text shorter than a trigram) and a ``since`` bound are applied here instead, over the newest
``scan`` matches of the filter.

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
from taskqueue.drivers.base import SORT_COLUMNS, Driver, EstimatesCounts, JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.manager import WORKFLOW


def _sort_key(field: str) -> Callable[[JobRecord], Any]:
    if field == "state":
        return lambda r: r.state.value
    return lambda r: getattr(r, field)


SORTS: dict[str, Callable[[JobRecord], Any]] = {
    column: _sort_key(field) for column, field in SORT_COLUMNS.items()}
#: Every sortable column: ``created`` is the store's keyset order (the ``order`` parameter).
COLUMNS = ("created", *SORTS)
SCAN = 10_000
#: Filters matching at most this many jobs are sorted whole by the store; beyond, the store
#: sorts the newest ``SCAN`` of them (a sort reads every job it orders: 150,000 took seconds).
SORT_ALL = 50_000
CHUNK = 1000
PREVIEW_CHARS = 120


@dataclass
class SortedPage:
    jobs: list[JobRecord]
    next_offset: int | None
    #: How many matches were sorted: all of them (``complete``), or the newest that many.
    among: int
    complete: bool


def sorted_page(driver: Driver, query: JobQuery, column: str, descending: bool, offset: int,
                decode: Decode | None = None, max_decode: int = 2000,
                scan: int = SCAN) -> SortedPage:
    """One page of the matches of ``query`` ordered by ``column``, id newest first on ties."""
    if query.scans_here or query.since is not None:
        return _scanned_page(driver.search, query, column, descending, offset, decode,
                             max_decode, scan)
    criteria = replace(query.filter(after_id=query.start_id, limit=query.limit + 1),
                       offset=offset, newest_first=True)
    matches = _about(driver, criteria)
    every = matches <= SORT_ALL
    jobs = driver.sorted_search(criteria, column, descending, None if every else scan)
    end = offset + query.limit
    return SortedPage(jobs[:query.limit], end if len(jobs) > query.limit else None,
                      matches if every else scan, every)


def _about(driver: Driver, criteria: JobFilter) -> int:
    """How many jobs match: the store's estimate when counting would be slow, else a count."""
    estimate = driver.estimate_count(criteria) if isinstance(driver, EstimatesCounts) else None
    return estimate if estimate is not None else driver.count(criteria)


def _scanned_page(search: Search, query: JobQuery, column: str, descending: bool, offset: int,
                  decode: Decode | None, max_decode: int, scan: int) -> SortedPage:
    """The newest ``scan`` matches of ``query`` read and sorted here."""
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
