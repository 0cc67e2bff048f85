"""Stored jobs with a field that cannot be decoded (garbage another program wrote into a
column, a hash field or a record): such a job must fail alone, never crash the worker that
reserved it or the listing that shows it.

The drivers map rows on a fast path; when that raises, they map the row again with
:func:`lenient_record`, which decodes each field on its own, puts a neutral value in place of
each that fails, and names those fields in ``record.extra[UNREADABLE]``. The client's
``decode`` refuses such a record with a :class:`~taskqueue.errors.PayloadError` naming the
fields, so the worker dead-letters the job with that reason, as for an undecodable payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from taskqueue.jobs.model import JobRecord, record_from_values
from taskqueue.jobs.states import State

#: The key of ``JobRecord.extra`` naming the fields of a job that could not be decoded.
UNREADABLE = "unreadable"

_NAMES = tuple(f.name for f in fields(JobRecord) if f.name != "extra")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: What stands in for a field that cannot be decoded.
_NEUTRAL: dict[str, Any] = {
    "id": "", "queue_name": "", "name": "", "payload": b"", "state": State.FAILED,
    "priority": 0, "attempts": 0, "max_attempts": 1, "timeout_seconds": 0,
    "delay_seconds": 0.0, "available_at": _EPOCH, "created_at": _EPOCH, "updated_at": _EPOCH,
    "dependencies": (), "tags": (), "lease_epoch": 0,
}


def lenient_record(converters: Sequence[Callable[[], Any]]) -> JobRecord:
    """A JobRecord from one converter per field (JobRecord's order, ``extra`` excepted): each
    is called on its own; one that raises leaves a neutral value and its field's name, with
    the error, in ``extra[UNREADABLE]``."""
    values: list[Any] = []
    problems: list[str] = []
    for name, convert in zip(_NAMES, converters, strict=True):
        try:
            values.append(convert())
        except Exception as exc:  # noqa: BLE001 - any garbage: the job fails, not the caller
            values.append(_NEUTRAL.get(name))
            problems.append(f"{name} ({type(exc).__name__}: {exc})")
    extra: dict[str, object] = {UNREADABLE: "; ".join(problems)} if problems else {}
    return record_from_values((*values, extra))


def unreadable(record: JobRecord) -> str | None:
    """What could not be decoded in ``record`` ("tags (JSONDecodeError: …)"), or None."""
    found = record.extra.get(UNREADABLE) if record.extra else None
    return str(found) if found else None
