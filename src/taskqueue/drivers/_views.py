"""The dashboard's views as driver verbs (``sorted_search``, ``error_texts``, ``due``,
``count_due``): the SQL clauses the SQL drivers share, and the reading of every match in
Python that the files backend (and Redis, for sorting and grouping) does instead.

The SQL stores answer with one statement each: ``ORDER BY column, id DESC LIMIT/OFFSET``; one
``GROUP BY exception``; ``ORDER BY available_at, id`` over a partial index of the jobs waiting
for a due time (SQLite and PostgreSQL; MySQL, without partial indexes, reads its state index
and sorts).
The Python versions read every match of the filter (by id, a page at a time): exact, and as
slow as the number of matches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from taskqueue.drivers.base import SORT_COLUMNS, DueFilter, ErrorText, GraphNode, JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

Search = Callable[[JobFilter], list[JobRecord]]
PAGE = 1000


def sort_column(column: str) -> str:
    """The job field of a sortable column; ``ValueError`` for anything off the whitelist."""
    try:
        return SORT_COLUMNS[column]
    except KeyError:
        raise ValueError(f"cannot sort by {column!r}; columns: "
                         f"{', '.join(SORT_COLUMNS)}") from None


def check_due(criteria: DueFilter) -> State:
    state = State(criteria.state)
    if state not in (State.PENDING, State.RETRYING):
        raise ValueError(f"due() lists pending or retrying jobs, not {state.value}")
    return state


def ordered_texts(texts: list[ErrorText], limit: int) -> list[ErrorText]:
    """Most common first, then by text (no text first): the order every store answers in."""
    texts.sort(key=lambda t: (-t.count, t.exception is not None, t.exception or ""))
    return texts[:limit]


def merge_text_rows(rows: list[tuple[Any, ...]], limit: int,
                    to_dt: Callable[[Any], datetime | None]) -> list[ErrorText]:
    """Rows of (exception, name, queue, count, max id, latest time), one per text, task and
    queue, as one ``ErrorText`` per text."""
    found: dict[str | None, dict[str, Any]] = {}
    for exception, name, queue, count, latest_id, latest_at in rows:
        entry = found.setdefault(exception, {"count": 0, "id": "", "at": None,
                                             "names": set(), "queues": set()})
        entry["count"] += int(count)
        entry["id"] = max(entry["id"], latest_id)
        at = to_dt(latest_at)
        if at is not None and (entry["at"] is None or at > entry["at"]):
            entry["at"] = at
        entry["names"].add(name)
        entry["queues"].add(queue)
    return ordered_texts([ErrorText(text, e["count"], e["id"], e["at"], tuple(sorted(e["names"])),
                                    tuple(sorted(e["queues"])))
                          for text, e in found.items()], limit)


# -- SQL ----------------------------------------------------------------------------------------

#: The columns ``graph_nodes`` reads, in ``node_row``'s order.
NODE_COLUMNS = "id, name, state, queue_name, attempts, progress, dependencies"
_STATES = {s.value: s for s in State}


def node_row(row: tuple[Any, ...]) -> GraphNode:
    id_, name, state, queue, attempts, progress, deps = row
    return GraphNode(id_, name, _STATES[state], queue, int(attempts or 0),
                     None if progress is None else float(progress),
                     tuple(json.loads(deps)) if deps else ())


TEXT_COLUMNS = frozenset({"state", "queue_name", "name"})


def sorted_select(columns: str, table: str, where: str, column: str, descending: bool, ph: str,
                  binary: str = "{}", within: int | None = None, deferred: bool = True,
                  home: str = "job_queue") -> str:
    """``SELECT columns FROM table WHERE where ORDER BY column, id DESC LIMIT ph OFFSET ph`` for
    a whitelisted column; ``binary`` wraps a text column so it sorts by code point (as Python
    and SQLite do) whatever the store's collation (PostgreSQL: ``{} COLLATE "C"``; MySQL:
    ``BINARY {}``). ``within``: only the newest that many matches are sorted. ``deferred``: the
    sort picks the page's ids first and only those rows are read whole (a third of the time on
    SQLite: the sorter does not carry payloads); MySQL cannot take LIMIT inside IN (...).
    ``home``: the table the rows are read from (``table`` may carry an index hint)."""
    field = sort_column(column)
    key = binary.format(field) if field in TEXT_COLUMNS else field
    order = f" ORDER BY {key} {'DESC' if descending else 'ASC'}, id DESC"
    page = f"{order} LIMIT {ph} OFFSET {ph}"
    source = f"{table} WHERE {where}"
    if within is not None:
        picked = columns if not deferred else f"id, {field}"
        source = (f"(SELECT {picked} FROM {table} WHERE {where} ORDER BY id DESC "
                  f"LIMIT {int(within)}) AS newest")
    if not deferred:
        return f"SELECT {columns} FROM {source}{page}"
    return f"SELECT {columns} FROM {home} WHERE id IN (SELECT id FROM {source}{page}){order}"


def due_clause(criteria: DueFilter, now: Any, after_at: Any, ph: str,
               now_sql: str | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) of ``due``: its terms repeat the partial
    indexes' predicates (``state = 'pending' AND available_at > updated_at``: scheduled jobs,
    due later than their last change; or ``state = 'retrying'``) so the planner uses them.
    ``now`` and ``after_at`` are in the store's representation of times; ``after_at`` may be a
    (low, high) pair: the times that count as the cursor's own (SQLite's float seconds do not
    survive the round trip through a datetime exactly). ``now_sql``, an SQL expression,
    replaces ``now``."""
    state = check_due(criteria)
    params: list[Any] = []
    if state is State.PENDING:
        where = ["state = 'pending' AND available_at > updated_at AND "
                 f"available_at > {now_sql or ph}"]
        if now_sql is None:
            params.append(now)
    else:
        where = ["state = 'retrying'"]
    if criteria.queues:
        where.append(f"queue_name IN ({', '.join([ph] * len(criteria.queues))})")
        params.extend(criteria.queues)
    if criteria.after is not None:
        low, high = after_at if isinstance(after_at, tuple) else (after_at, after_at)
        where.append(f"available_at >= {ph} AND (available_at > {ph} OR id > {ph})")
        params.extend([low, high, criteria.after[1]])
    return " AND ".join(where), params


# -- every match read in Python (files; Redis for sorting and grouping) ------------------------

def matches(search: Search, criteria: JobFilter) -> Iterator[JobRecord]:
    """Every job matching ``criteria`` (its limit, offset and order ignored), newest first."""
    page = replace(criteria, limit=PAGE, offset=0, newest_first=True)
    while True:
        batch = search(page)
        yield from batch
        if len(batch) < PAGE:
            return
        page = replace(page, after_id=batch[-1].id)


class ReadsEveryMatch:
    """``sorted_search``, ``error_texts`` and ``graph_nodes`` for a store without an index to
    answer them (files, Redis): every match of the filter is read through ``search`` and
    sorted or counted here."""

    def search(self, criteria: JobFilter) -> list[JobRecord]:
        raise NotImplementedError

    def sorted_search(self, criteria: JobFilter, column: str, descending: bool,
                      within: int | None = None) -> list[JobRecord]:
        return sorted_by_scan(self.search, criteria, column, descending, within)

    def error_texts(self, criteria: JobFilter, limit: int) -> list[ErrorText]:
        return error_texts_by_scan(self.search, criteria, limit)

    def graph_nodes(self, criteria: JobFilter) -> list[GraphNode]:
        return [GraphNode.of(record) for record in self.search(criteria)]


def sorted_by_scan(search: Search, criteria: JobFilter, column: str, descending: bool,
                   within: int | None = None) -> list[JobRecord]:
    field = sort_column(column)
    found: list[JobRecord] = []  # newest first: the tie-break order
    for record in matches(search, criteria):
        if within is not None and len(found) >= within:
            break
        found.append(record)
    # a reversed stable sort keeps ties in their order: ORDER BY column, id DESC either way
    found.sort(key=lambda r: _value(r, field), reverse=descending)
    return found[criteria.offset:criteria.offset + criteria.limit]


def _value(record: JobRecord, field: str) -> Any:
    value = getattr(record, field)
    return value.value if isinstance(value, State) else value


def error_texts_by_scan(search: Search, criteria: JobFilter, limit: int) -> list[ErrorText]:
    rows = [(r.exception, r.name, r.queue_name, 1, r.id, r.failed_at or r.updated_at)
            for r in matches(search, criteria)]
    return merge_text_rows(rows, limit, lambda at: at)


def due_by_scan(search: Search, now: datetime, criteria: DueFilter) -> list[JobRecord]:
    found = _waiting(search, now, criteria)
    if criteria.after is not None:
        found = [r for r in found if (r.available_at, r.id) > criteria.after]
    return found[:criteria.limit]


def count_due_by_scan(search: Search, now: datetime, criteria: DueFilter) -> int:
    return len(_waiting(search, now, criteria))


def _waiting(search: Search, now: datetime, criteria: DueFilter) -> list[JobRecord]:
    state = check_due(criteria)
    found = [r for r in matches(search, JobFilter(queues=criteria.queues, states=(state,)))
             if state is State.RETRYING or r.available_at > now]
    found.sort(key=lambda r: (r.available_at, r.id))
    return found
