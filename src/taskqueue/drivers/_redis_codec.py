"""The Redis driver's job-hash codec: records to hash fields and back, and the fast mapping of
the rows that ``reserve`` answers (see ``take`` in ``redis_common.lua``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson

from taskqueue.drivers import _attempts
from taskqueue.jobs.model import JobRecord, NewJob, record_from_values
from taskqueue.jobs.states import State
from taskqueue.jobs.unreadable import lenient_record

#: The fields of a job hash (the ``job_queue`` column names), in JobRecord's order. A reserve
#: row (``take`` in ``redis_common.lua``) has them in this order.
FIELDS: tuple[str, ...] = (
    "id", "queue_name", "name", "payload", "state", "priority", "attempts", "max_attempts",
    "timeout_seconds", "delay_seconds", "available_at", "created_at", "updated_at",
    "dependencies", "tags", "started_at", "completed_at", "failed_at", "exception", "result",
    "progress", "idempotency_key", "batch_id", "lease_owner", "lease_expires_at", "lease_epoch",
)
_TIMES = frozenset({"available_at", "created_at", "updated_at", "started_at", "completed_at",
                    "failed_at", "lease_expires_at"})
_INTS = frozenset({"priority", "attempts", "max_attempts", "timeout_seconds", "lease_epoch"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_STATES = {s.value.encode(): s for s in State}


def to_us(value: datetime) -> int:
    """A datetime as integer microseconds since the Unix epoch (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _US


def from_us(value: bytes | str | int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def text(value: Any) -> str:
    """A reply item as str (replies are bytes; the client does not decode them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _list(values: Iterable[str]) -> str | None:
    items = list(values)
    return json.dumps(items) if items else None


def new_job_fields(job: NewJob) -> dict[str, str]:
    """The hash fields a producer supplies, but the payload, as strings; the push script adds
    state, counters and times."""
    fields: dict[str, str | None] = {
        "id": job.id, "queue_name": job.queue_name, "name": job.name,
        "priority": str(int(job.priority)), "max_attempts": str(int(job.max_attempts)),
        "timeout_seconds": str(int(job.timeout_seconds)),
        "delay_seconds": repr(float(job.delay_seconds)),
        "dependencies": _list(job.dependencies), "tags": _list(job.tags),
        "idempotency_key": job.idempotency_key, "batch_id": job.batch_id,
    }
    # How long the key blocks duplicates; absent means "exists" (also for jobs stored before
    # the modes existed), so only the other modes are written.
    if job.idempotency_key is not None and job.idempotency_mode != "exists":
        fields["idempotency_mode"] = job.idempotency_mode
        if job.idempotency_mode == "window":
            fields["idempotency_window"] = repr(float(job.idempotency_window))
    return {k: v for k, v in fields.items() if v is not None}


def push_args(job: NewJob, local: list[str], remote: list[str]) -> list[Any]:
    """ARGV items for one new job (``redis_push.lua``): a JSON array of its fields and, when it
    has any, its same-queue and other-queue dependencies; then the payload. Two arguments
    instead of one per field: packing arguments is most of a producer's CPU per push."""
    doc: list[Any] = [new_job_fields(job)]
    if local or remote:
        doc += [local, remote]
    return [orjson.dumps(doc), job.payload]


def push_one_args(job: NewJob) -> list[Any]:
    """ARGV items of ``redis_push_one.lua`` for one job without dependencies: id, name,
    payload, priority, delay and idempotency key ('' for none), then the other fields that
    ``new_job_fields`` would give, as field/value pairs (the same strings)."""
    key = job.idempotency_key
    priority, delay = str(int(job.priority)), repr(float(job.delay_seconds))
    out: list[Any] = [job.id, job.name, job.payload, priority, delay, key or "",
                      "queue_name", job.queue_name, "max_attempts", str(int(job.max_attempts)),
                      "timeout_seconds", str(int(job.timeout_seconds))]
    if job.tags:
        out += ("tags", json.dumps(list(job.tags)))
    if job.batch_id is not None:
        out += ("batch_id", job.batch_id)
    if key is not None:
        out += ("idempotency_key", key)
        if job.idempotency_mode != "exists":
            out += ("idempotency_mode", job.idempotency_mode)
            if job.idempotency_mode == "window":
                out += ("idempotency_window", repr(float(job.idempotency_window)))
    return out


def record_fields(rec: JobRecord) -> dict[str, Any]:
    """Every stored field of a complete record (restore)."""
    fields: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(rec, name)
        if name in _TIMES:
            value = None if value is None else to_us(value)
        elif name in ("dependencies", "tags"):
            value = _list(value)
        elif name == "state":
            value = State(value).value
        elif name in ("delay_seconds", "progress") and value is not None:
            value = repr(float(value))
        if value is not None:
            fields[name] = value
    if (history := _attempts.restored(rec)) is not None:
        fields["attempt_history"] = history
    return fields


def encode_record(fields: Mapping[str, Any], local: list[str], remote: list[str]) -> list[Any]:
    """ARGV items for one record: count, field/value pairs, same-queue and other-queue deps."""
    out: list[Any] = [len(fields)]
    for name, value in fields.items():
        out += [name, value]
    return out + [json.dumps(local) if local else "[]", json.dumps(remote) if remote else "[]"]


def decode_job(raw: Mapping[Any, Any] | list[Any]) -> JobRecord | None:
    """A JobRecord from HGETALL output (a mapping, or a flat list of field/value pairs)."""
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    if not raw:
        return None
    data: dict[str, Any] = {text(k): v for k, v in raw.items()}
    try:
        return _decode_fast(data)
    except Exception:  # noqa: BLE001 - a field another program filled with garbage
        return lenient_record([partial(_field, name, data.get(name)) for name in FIELDS])


def _decode_fast(data: dict[str, Any]) -> JobRecord:
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is None or name == "payload":
            out[name] = value
        elif name in _TIMES:
            out[name] = from_us(value)
        elif name in _INTS:
            out[name] = int(value)
        elif name in ("delay_seconds", "progress"):
            out[name] = float(value)
        elif name in ("dependencies", "tags"):
            out[name] = tuple(json.loads(value))
        else:
            out[name] = text(value)
    out["payload"] = bytes(out["payload"] or b"")
    out["state"] = State(out["state"])
    out["delay_seconds"] = out["delay_seconds"] or 0.0
    out["lease_epoch"] = out["lease_epoch"] or 0
    for name in ("dependencies", "tags"):
        out[name] = out[name] or ()
    return JobRecord(**out)


def _field(name: str, value: Any) -> Any:
    """One hash field of a job, decoded (raises on garbage: ``lenient_record`` names it)."""
    if name == "payload":
        return bytes(value or b"")
    if name == "state":
        return State(text(value))
    if value is None:
        return _ABSENT.get(name)
    if name in _TIMES:
        return from_us(value)
    if name in _INTS:
        return int(value)
    if name in ("delay_seconds", "progress"):
        return float(value)
    if name in ("dependencies", "tags"):
        items = json.loads(value)
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"not a JSON list of strings: {text(value)!r:.80}")
        return tuple(items)
    return text(value)


#: The value of a field absent from a job hash (None for the others).
_ABSENT: dict[str, Any] = {"delay_seconds": 0.0, "lease_epoch": 0, "dependencies": (),
                           "tags": ()}


class RowDecoder:
    """JobRecords from reserve rows: ``FIELDS`` by position, times and counters already
    integers, absent fields None. The rows of one reply share most of their times (the
    script's clock, the lease, a producer's batch), so each distinct time is converted once."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: dict[int, datetime] = {}

    def time(self, us: int) -> datetime:
        found = self._times.get(us)
        if found is None:
            found = self._times[us] = _EPOCH + timedelta(microseconds=us)
        return found

    def maybe_time(self, us: int | None) -> datetime | None:
        return None if us is None else self.time(us)

    def __call__(self, r: list[Any]) -> JobRecord:
        try:
            return self._fast(r)
        except Exception:  # noqa: BLE001 - a field another program filled with garbage
            return self._lenient(r)

    def _lenient(self, r: list[Any]) -> JobRecord:
        """A row mapped field by field, the ones that fail named (``jobs/unreadable.py``)."""
        def field(i: int, name: str) -> Callable[[], Any]:
            value = r[i]
            if name in _TIMES:  # reserve rows carry times as integers already
                return lambda: None if value is None else self.time(int(value))
            if name in _INTS:
                return lambda: 0 if value is None and name == "lease_epoch" else int(value)
            return partial(_field, name, value)
        return lenient_record([field(i, name) for i, name in enumerate(FIELDS)])

    def _fast(self, r: list[Any]) -> JobRecord:
        time, maybe = self.time, self.maybe_time
        return record_from_values((  # JobRecord's fields, in order
            r[0].decode(), r[1].decode(), r[2].decode(), r[3] or b"", _STATES[r[4]], r[5], r[6],
            r[7], r[8], float(r[9]) if r[9] else 0.0, time(r[10]), time(r[11]), time(r[12]),
            tuple(json.loads(r[13])) if r[13] else (), tuple(json.loads(r[14])) if r[14] else (),
            maybe(r[15]), maybe(r[16]), maybe(r[17]),
            None if r[18] is None else r[18].decode(), None if r[19] is None else r[19].decode(),
            None if r[20] is None else float(r[20]), None if r[21] is None else r[21].decode(),
            None if r[22] is None else r[22].decode(), None if r[23] is None else r[23].decode(),
            maybe(r[24]), r[25], {}))


def decode_rows(rows: Iterable[list[Any]]) -> list[JobRecord]:
    """JobRecords from the rows of reserve replies (``split_reserve`` takes a reply apart)."""
    decode = RowDecoder()
    return [decode(r) for r in rows]


#: ``split_reserve``'s answer for a reply that does not tell when the next delayed job is due.
UNTOLD = -1 << 63


def split_reserve(reply: list[Any]) -> tuple[list[Any], int | None]:
    """A reserve reply's rows, and what an empty one tells (``next_due`` in
    ``redis_common.lua``): microseconds until the queue's earliest delayed job falls due, None
    when no job waits for a time; ``UNTOLD`` when the reply has rows."""
    if len(reply) == 1 and not isinstance(reply[0], list):
        return [], None if reply[0] is None else int(reply[0])
    return reply, UNTOLD
