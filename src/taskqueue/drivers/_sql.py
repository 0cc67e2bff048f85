"""Shared by the SQL drivers: the named-query loader, the column list, row mapping, filters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from taskqueue.drivers.base import JobFilter
from taskqueue.drivers.queries import read_text
from taskqueue.jobs.model import JobRecord, record_from_values
from taskqueue.jobs.states import State
from taskqueue.jobs.unreadable import lenient_record

T = TypeVar("T")

#: Columns read back into a JobRecord, in this order.
COLUMNS: tuple[str, ...] = (
    "id", "queue_name", "name", "payload", "state", "priority", "attempts", "max_attempts",
    "timeout_seconds", "delay_seconds", "available_at", "created_at", "updated_at",
    "dependencies", "tags", "started_at", "completed_at", "failed_at", "exception", "result",
    "progress", "idempotency_key", "batch_id", "lease_owner", "lease_expires_at", "lease_epoch",
)
SELECT_COLUMNS = ", ".join(COLUMNS)
_TIME_COLUMNS = frozenset(
    {"available_at", "created_at", "updated_at", "started_at", "completed_at", "failed_at",
     "lease_expires_at"}
)
_NAME_RE = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)


@cache
def load_queries(filename: str) -> dict[str, str]:
    """Parse ``queries/<filename>`` into {name: sql}. Blocks start with ``-- name: <name>``;
    the comment lines right after the name describe the query."""
    text = read_text(filename)
    parts = _NAME_RE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def epoch_to_dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def dt_identity(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def json_list(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value else ()


def encode_list(values: Sequence[str]) -> str | None:
    return json.dumps(list(values)) if values else None


#: State by its stored name (faster than ``State(name)`` on the hot paths).
STATES = {s.value: s for s in State}


def _payload_bytes(payload: Any) -> bytes:
    """A payload column that is not ``bytes``: a memoryview (some clients), or TEXT that another
    program wrote into SQLite's untyped column. Text becomes its UTF-8 bytes, so the worker's
    decoder refuses it and the job is dead-lettered with the reason (``bytes(str)`` raised
    inside every reservation that took the row)."""
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) \
        else bytes(payload or b"")


def row_to_record(
    row: Sequence[Any], to_dt: Callable[[Any], datetime | None] = epoch_to_dt
) -> JobRecord:
    """Map a row selected with SELECT_COLUMNS to a JobRecord (a hot path: one per job). A row
    with a column that cannot be decoded (bad JSON in ``tags`` written by another program, …)
    is mapped field by field instead, the failures named (``jobs/unreadable.py``)."""
    (id_, queue, name, payload, state, priority, attempts, max_attempts, timeout, delay,
     available, created, updated, deps, tags, started, completed, failed, exception, result,
     progress, key, batch, owner, expires, epoch) = row
    try:
        return record_from_values((
            id_, queue, name, payload if type(payload) is bytes else _payload_bytes(payload),
            STATES[state], priority, attempts, max_attempts,
            timeout, float(delay or 0), to_dt(available), to_dt(created), to_dt(updated),
            json_list(deps), json_list(tags), to_dt(started), to_dt(completed), to_dt(failed),
            exception, result, None if progress is None else float(progress), key, batch, owner,
            to_dt(expires), epoch, {}))
    except Exception:  # noqa: BLE001 - garbage in one row must not fail the whole read
        return _lenient_row(row, to_dt)


def _lenient_row(row: Sequence[Any], to_dt: Callable[[Any], datetime | None]) -> JobRecord:
    (id_, queue, name, payload, state, priority, attempts, max_attempts, timeout, delay,
     available, created, updated, deps, tags, started, completed, failed, exception, result,
     progress, key, batch, owner, expires, epoch) = row

    def same(value: Any) -> Callable[[], Any]:
        return lambda: value

    def time(value: Any) -> Callable[[], Any]:
        return lambda: to_dt(value)

    def required_time(value: Any) -> Callable[[], Any]:
        def convert() -> datetime:
            found = to_dt(value)
            if found is None:
                raise ValueError("missing")
            return found
        return convert

    return lenient_record((
        same(id_), same(queue), same(name), lambda: _payload_bytes(payload),
        lambda: STATES[state], same(priority), same(attempts), same(max_attempts),
        same(timeout), lambda: float(delay or 0), required_time(available),
        required_time(created), required_time(updated), lambda: _str_list(deps),
        lambda: _str_list(tags), time(started), time(completed), time(failed), same(exception),
        same(result), lambda: None if progress is None else float(progress), same(key),
        same(batch), same(owner), time(expires), same(epoch)))


def _str_list(value: Any) -> tuple[str, ...]:
    found = json_list(value)
    if not all(isinstance(item, str) for item in found):
        raise ValueError(f"not a JSON list of strings: {value!r:.80}")
    return found


def record_to_row(rec: JobRecord, from_dt: Callable[[datetime | None], Any]) -> tuple[Any, ...]:
    """The values of COLUMNS for a record (inverse of row_to_record)."""
    out: list[Any] = []
    for col in COLUMNS:
        value = getattr(rec, col)
        if col in _TIME_COLUMNS:
            value = from_dt(value)
        elif col in ("dependencies", "tags"):
            value = encode_list(value)
        elif col == "state":
            value = State(value).value
        out.append(value)
    return tuple(out)


def like_literal(value: str) -> str:
    """Escape a value for ``LIKE … ESCAPE '!'``: ``%`` and ``_`` match themselves, and a
    backslash is an ordinary character (it is LIKE's default escape on PostgreSQL/MySQL)."""
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def filter_clause(criteria: JobFilter, ph: str = "?") -> tuple[str, list[Any]]:
    """A WHERE clause (without the keyword; "1=1" when empty) and its parameters."""
    where: list[str] = []
    params: list[Any] = []

    def any_of(column: str, values: Sequence[Any]) -> None:
        if values:
            where.append(f"{column} IN ({', '.join([ph] * len(values))})")
            params.extend(values)

    any_of("queue_name", criteria.queues)
    any_of("state", [State(s).value for s in criteria.states])
    any_of("name", criteria.names)
    any_of("id", criteria.ids)
    if criteria.tag is not None:
        where.append(f"tags LIKE {ph} ESCAPE '!'")
        params.append("%" + like_literal(json.dumps(criteria.tag)) + "%")
    if criteria.batch_id is not None:
        where.append(f"batch_id = {ph}")
        params.append(criteria.batch_id)
    if criteria.after_id is not None:
        where.append(f"id {'<' if criteria.newest_first else '>'} {ph}")
        params.append(criteria.after_id)
    if criteria.exception_contains:
        where.append(f"exception LIKE {ph} ESCAPE '!'")
        params.append("%" + like_literal(criteria.exception_contains) + "%")
    return (" AND ".join(where) or "1=1"), params


def order_limit(criteria: JobFilter, ph: str = "?") -> tuple[str, list[Any]]:
    direction = "DESC" if criteria.newest_first else "ASC"
    return f" ORDER BY id {direction} LIMIT {ph} OFFSET {ph}", [criteria.limit, criteria.offset]


def chunks(items: list[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def dependents(read: Callable[[str, tuple[Any, ...]], list[Any]], job_ids: Sequence[str],
               ph: str = "?") -> list[str]:
    """The ``dependents`` verb of SQLite and MySQL: ``job_dependencies`` by parent (its primary
    key), 500 ids per statement; ``read(query, params)`` returns the rows."""
    found: set[str] = set()
    for chunk in chunks(list(job_ids), 500):
        query = ("SELECT job_id FROM job_dependencies WHERE depends_on IN "
                 f"({placeholders(len(chunk), ph)})")
        found.update(row[0] for row in read(query, tuple(chunk)))
    return sorted(found)


def placeholders(count: int, ph: str = "?") -> str:
    return ", ".join([ph] * count)
