"""The files backend's on-disk job record: one JSON object per job, payload in base64.

A record is kept as a plain dict (``Rec``) while the driver changes it, so a settle call can
rewrite a few keys and dump it again. Times are Unix epoch seconds (floats) from the host
clock. :func:`decode` is strict: anything that is not a complete, well-typed record raises
:class:`CorruptRecord`, which the driver answers by moving the file aside.

Fields added after the first release (:data:`_ADDED`) are internal to the driver and may be
missing: a record written before them reads with their defaults (idempotency mode "exists",
no window, no dependency released by policy), and is written back with them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from taskqueue.drivers import _attempts
from taskqueue.jobs.model import ATTEMPT_HISTORY, JobRecord, NewJob
from taskqueue.jobs.states import State

Rec = dict[str, Any]

#: Bumped if the record layout ever changes incompatibly.
RECORD_VERSION = 1

_TIMES = ("available_at", "created_at", "updated_at", "started_at", "completed_at",
          "failed_at", "lease_expires_at")
_OPTIONAL_TIMES = frozenset(_TIMES) - {"available_at", "created_at", "updated_at"}
_STATE_VALUES = frozenset(s.value for s in State)


class CorruptRecord(ValueError):
    """A job file that cannot be read back as a record (bad JSON, missing or mistyped fields)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _opt(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


#: Every key a record must have, with the check its value must pass.
_SCHEMA: dict[str, Callable[[object], bool]] = {
    "id": _is_str, "queue_name": _is_str, "name": _is_str, "payload": _is_str,
    "state": lambda v: v in _STATE_VALUES, "priority": _is_int, "attempts": _is_int,
    "max_attempts": _is_int, "timeout_seconds": _is_int, "delay_seconds": _is_num,
    "dependencies": _is_str_list, "tags": _is_str_list, "exception": _opt(_is_str),
    "result": _opt(_is_str), "progress": _opt(_is_num), "idempotency_key": _opt(_is_str),
    "batch_id": _opt(_is_str), "lease_owner": _opt(_is_str), "lease_epoch": _is_int,
    **{t: (_opt(_is_num) if t in _OPTIONAL_TIMES else _is_num) for t in _TIMES},
}


#: Later fields, each with a factory of the default a record without it reads as, and its
#: check. They are the driver's own bookkeeping, not part of ``JobRecord``. ``satisfied_deps``
#: lists the dependencies counted as met although they did not complete (``dependency_failed``).
_ADDED: dict[str, tuple[Callable[[], object], Callable[[object], bool]]] = {
    "idempotency_mode": (lambda: "exists", _is_str),
    "idempotency_window": (float, _is_num),
    "idempotency_expires_at": (lambda: None, _opt(_is_num)),
    "satisfied_deps": (list, _is_str_list),
    "attempt_history": (lambda: None, _opt(lambda v: isinstance(v, list))),
}


_NONE, _INT, _NUM, _STR = type(None), frozenset({int}), frozenset({int, float}), frozenset({str})
_LIST = frozenset({list})


_FAST_KINDS = {
    **dict.fromkeys(("priority", "attempts", "max_attempts", "timeout_seconds", "lease_epoch"),
                    _INT),
    **dict.fromkeys(("delay_seconds", "progress", "idempotency_window",
                     "idempotency_expires_at", *_TIMES), _NUM),
    **dict.fromkeys(("dependencies", "tags", "satisfied_deps", "attempt_history"), _LIST),
}


def _fast_types(key: str, check: Callable[[object], bool]) -> frozenset[type]:
    """The exact types (as JSON decodes them) the fast path accepts for a field: never more
    than its full check accepts (a unit test holds the two together)."""
    base = _FAST_KINDS.get(key, _STR)
    return base | {_NONE} if check(None) else base


#: (key, accepted exact types) for every field; lists and states are checked further.
_FAST: tuple[tuple[str, frozenset[type]], ...] = tuple(
    (key, _fast_types(key, check))
    for key, check in [*_SCHEMA.items(), *((k, c) for k, (_d, c) in _ADDED.items())])


def _valid_fast(rec: Rec) -> bool:
    """True when a record is certainly well-formed (the common case, checked quickly);
    False sends it through the full checks, which name what is wrong."""
    try:
        for key, types in _FAST:
            if type(rec[key]) not in types:
                return False
    except KeyError:
        return False
    return (rec["state"] in _STATE_VALUES
            and all(type(v) is str for key in ("dependencies", "tags", "satisfied_deps")
                    for v in rec[key]))


def encode(rec: Rec) -> bytes:
    """The bytes written to disk for a record."""
    return orjson.dumps(rec)


def decode(data: bytes, expected_id: str | None = None) -> Rec:
    """Parse and validate a record; raise CorruptRecord with a readable reason if it is bad."""
    try:
        rec = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptRecord(f"not valid JSON ({exc})") from exc
    if not isinstance(rec, dict):
        raise CorruptRecord("not a JSON object")
    if len(rec) < len(_FAST) or not _valid_fast(rec):
        _check_slow(rec)
    try:
        base64.b64decode(rec["payload"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptRecord(f"payload is not valid base64 ({exc})") from exc
    if expected_id is not None and rec["id"] != expected_id:
        raise CorruptRecord(f"record id {rec['id']!r} does not match its file name")
    return rec


def _check_slow(rec: Rec) -> None:
    """Fill in later fields' defaults; raise CorruptRecord naming what is missing or wrong."""
    missing = [key for key in _SCHEMA if key not in rec]
    if missing:
        raise CorruptRecord(f"missing fields: {', '.join(missing)}")
    for key, (default, _check) in _ADDED.items():
        if key not in rec:
            rec[key] = default()
    bad = [key for key, check in _SCHEMA.items() if not check(rec[key])]
    bad += [key for key, (_default, check) in _ADDED.items() if not check(rec[key])]
    if bad:
        raise CorruptRecord(f"fields of the wrong type: {', '.join(bad)}")


def new_record(job: NewJob, now: float) -> Rec:
    """The record of a freshly pushed job (pending, due after its delay)."""
    return {
        "v": RECORD_VERSION, "id": job.id, "queue_name": job.queue_name, "name": job.name,
        "payload": payload_text(job.payload), "state": State.PENDING.value,
        "priority": job.priority, "attempts": 0, "max_attempts": job.max_attempts,
        "timeout_seconds": job.timeout_seconds, "delay_seconds": float(job.delay_seconds),
        "available_at": now + job.delay_seconds, "created_at": now, "updated_at": now,
        "dependencies": list(job.dependencies), "tags": list(job.tags), "started_at": None,
        "completed_at": None, "failed_at": None, "exception": None, "result": None,
        "progress": None, "idempotency_key": job.idempotency_key, "batch_id": job.batch_id,
        "lease_owner": None, "lease_expires_at": None, "lease_epoch": 0,
        "idempotency_mode": job.idempotency_mode,
        "idempotency_window": float(job.idempotency_window),
        "idempotency_expires_at": None, "satisfied_deps": [], "attempt_history": None,
    }


def from_job_record(job: JobRecord) -> Rec:
    """A complete record copied from another store (``restore``)."""
    rec: Rec = {"v": RECORD_VERSION}
    for key in _SCHEMA:
        value = getattr(job, key)
        if key in _TIMES:
            value = None if value is None else value.timestamp()
        elif key == "payload":
            value = payload_text(value)
        elif key in ("dependencies", "tags"):
            value = list(value)
        elif key == "state":
            value = State(value).value
        elif key in ("delay_seconds", "progress") and value is not None:
            value = float(value)
        rec[key] = value
    for key, (default, _check) in _ADDED.items():  # a copied key blocks as mode "exists"
        rec[key] = default()
    history = job.extra.get(ATTEMPT_HISTORY)
    rec["attempt_history"] = list(history) if isinstance(history, list) and history else None
    return rec


def to_job_record(rec: Rec) -> JobRecord:
    """The public, immutable view of a record."""
    fields = {key: rec[key] for key in _SCHEMA}
    for key in _TIMES:
        value = fields[key]
        fields[key] = None if value is None else datetime.fromtimestamp(value, UTC)
    fields["payload"] = base64.b64decode(rec["payload"])
    fields["state"] = State(rec["state"])
    fields["dependencies"] = tuple(rec["dependencies"])
    fields["tags"] = tuple(rec["tags"])
    fields["delay_seconds"] = float(rec["delay_seconds"])
    if fields["progress"] is not None:
        fields["progress"] = float(fields["progress"])
    return JobRecord(**fields)


def finished_at(rec: Rec) -> float | None:
    """When a finished job finished (the time pruning measures from), else None."""
    state = rec["state"]
    if state == State.COMPLETED:
        return float(rec["completed_at"] or rec["updated_at"])
    if state in (State.FAILED, State.CANCELLED):
        return float(rec["failed_at"] or rec["updated_at"])
    return None


def add_attempt(rec: Rec, now: float, outcome: str, error: str | None) -> None:
    """Append the attempt that ends now to the record's attempt history."""
    entry = _attempts.entry(rec["attempts"], rec["lease_owner"], rec["started_at"], now,
                            outcome, error)
    rec["attempt_history"] = [*(rec["attempt_history"] or []), entry]


def key_on_start(rec: Rec) -> None:
    """A job being reserved stops blocking duplicates in modes "started" and "debounce"."""
    if rec["idempotency_mode"] in ("started", "debounce"):
        rec["idempotency_key"] = None


def key_on_finish(rec: Rec, now: float) -> None:
    """A job that finished for good (completed, failed without retry, cancelled) frees its key
    in mode "finished", and starts the key's window in mode "window"."""
    if rec["idempotency_mode"] == "finished":
        rec["idempotency_key"] = None
    elif rec["idempotency_mode"] == "window":
        rec["idempotency_expires_at"] = now + float(rec["idempotency_window"])


def key_let_go(rec: Rec, key: str, now: float) -> bool:
    """Whether a record no longer blocks ``key``: it does not name it (freed), or its window
    after finishing has passed."""
    expires = rec["idempotency_expires_at"]
    return rec["idempotency_key"] != key or (expires is not None and expires <= now)


def payload_text(payload: bytes) -> str:
    """A payload as it is stored in a record (base64)."""
    return base64.b64encode(payload).decode("ascii")
