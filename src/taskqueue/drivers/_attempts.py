"""The attempt history every driver keeps on the job (a JSON array of entries), shared parts.

An entry is ``{"attempt", "worker", "started_at", "ended_at", "outcome", "error"}`` with times
as Unix epoch seconds. Entries are appended by the settle statements themselves (``fail``, the
lease rescuers, and ``complete`` when a history exists), so keeping it costs no round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskqueue.jobs.model import ATTEMPT_HISTORY, Attempt, JobRecord

#: Characters of an error kept per attempt: the end of a long traceback, where the error is.
ERROR_CHARS = 2000


def clip(error: str | None) -> str | None:
    """The part of an error text kept in the history."""
    if error is None or len(error) <= ERROR_CHARS:
        return error
    return "…" + error[-(ERROR_CHARS - 1):]


def entry(number: int, worker: str | None, started_at: float | None, ended_at: float,
          outcome: str, error: str | None) -> dict[str, Any]:
    """One entry, for drivers that append in Python (files, Redis builds it in Lua)."""
    return {"attempt": number, "worker": worker, "started_at": started_at,
            "ended_at": ended_at, "outcome": outcome, "error": clip(error)}


def restored(record: JobRecord) -> str | None:
    """The history ``restore`` stores for ``record`` (JSON text), if it carries one."""
    found = record.extra.get(ATTEMPT_HISTORY)
    return json.dumps(found) if found else None


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def parse(raw: str | bytes | Sequence[dict[str, Any]] | None) -> list[Attempt]:
    """Attempts from a stored history (JSON text, or already decoded)."""
    if not raw:
        return []
    try:
        entries = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError as exc:  # another program's garbage: say so, do not fail the reader
        return [_unreadable(exc)]
    if not isinstance(entries, list):
        return [_unreadable(ValueError("not a JSON list"))]
    found: list[Attempt] = []
    for e in entries:
        if isinstance(e, dict):
            try:
                found.append(Attempt(int(e.get("attempt") or 0), e.get("worker"),
                                     _time(e.get("started_at")), _time(e.get("ended_at")),
                                     str(e.get("outcome") or "?"), e.get("error")))
            except (TypeError, ValueError, OverflowError, OSError) as exc:
                found.append(_unreadable(exc))
    return found


def _unreadable(exc: Exception) -> Attempt:
    """What stands for history that cannot be decoded (an entry, or the whole field)."""
    return Attempt(0, None, None, None, "unreadable", f"attempt_history cannot be decoded: {exc}")
