"""The PostgreSQL driver's bulk push as binary COPY data, formatted here (private to
``postgres``).

A row of ``copy_jobs`` is the field count, then each field as its length and its bytes (-1 for
NULL), in the order of the statement's column list: the id and the payload, which every job has
of its own, then the nine columns the jobs of a run share (a task's queue, name, priority,
limits, tags, batch and idempotency mode). The jobs come in runs (``JobRun``: jobs equal but
for their ids and payloads), so that shared tail is formatted once per run, and a run's rows
are written as five columns of one list joined once: about a tenth of the client's work of
psycopg's ``write_row`` (which dumps each of the eleven values through its type's dumper).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from taskqueue.drivers import _sql
from taskqueue.errors import DriverError
from taskqueue.jobs.model import JobRun, NewJob

#: The file header of a binary COPY (signature, flags, header extension length) and its end.
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"

_row_head = struct.Struct(">hi").pack  # the field count, the first field's length
_NULL = struct.pack(">i", -1)
_int4 = struct.Struct(">i").pack
_int4_field = struct.Struct(">ii").pack
_float8_field = struct.Struct(">id").pack
#: The head of a row whose id is a UUID's 36 characters (every id ``uuid7`` makes).
_UUID_ROW_HEAD = _row_head(11, 36)


class CopyRows:
    """The COPY data of a batch, a run of jobs at a time: ``rows`` of each run in turn (the
    first with the header), then ``TRAILER``. Keeps the ids of the jobs formatted, in order,
    and the queues they go to."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._queues: set[str] = set()
        self._head = HEADER

    @property
    def queues(self) -> list[str]:
        return sorted(self._queues)

    def rows(self, run: JobRun) -> bytes:
        ids, payloads = run.ids, run.payloads
        self.ids += ids
        self._queues.add(run.template.queue_name)
        count = len(ids)
        parts: list[bytes] = [_UUID_ROW_HEAD, b"", b"", b"", _tail(run.template)] * count
        encoded = list(map(str.encode, ids))
        if set(map(len, encoded)) != {36}:  # not all UUIDs: each row its own head
            parts[0::5] = [_row_head(11, len(job_id)) for job_id in encoded]
        parts[1::5] = encoded
        parts[2::5] = map(_int4, map(len, payloads))
        parts[3::5] = payloads
        head, self._head = self._head, b""
        return head + b"".join(parts)


def runs_of(jobs: Sequence[NewJob], size: int) -> Iterator[JobRun]:
    """``jobs`` as runs of at most ``size`` consecutive jobs equal but for their ids and
    payloads."""
    start = 0
    while start < len(jobs):
        template = jobs[start]
        shared = _shared(template)
        end = start + 1
        while end < len(jobs) and end - start < size and _shared(jobs[end]) == shared:
            end += 1
        part = jobs[start:end]
        yield JobRun(template, [job.id for job in part], [job.payload for job in part])
        start = end


def _shared(job: NewJob) -> tuple[object, ...]:
    """What the jobs of a run have in common: every field but the id and the payload."""
    return (job.queue_name, job.name, job.priority, job.max_attempts, job.timeout_seconds,
            job.delay_seconds, job.dependencies, job.tags, job.idempotency_key, job.batch_id,
            job.idempotency_mode, job.idempotency_window)


def _tail(job: NewJob) -> bytes:
    """The fields after the id and the payload, as ``copy_jobs`` lists them."""
    try:
        return b"".join((
            _text(job.queue_name), _text(job.name),
            _int4_field(4, job.priority), _int4_field(4, job.max_attempts),
            _int4_field(4, job.timeout_seconds),
            _text(_sql.encode_list(job.tags)), _text(job.batch_id),
            _text(job.idempotency_mode), _float8_field(8, float(job.idempotency_window))))
    except struct.error as exc:  # an int beyond int4, as the column would refuse it
        raise DriverError(f"postgres: job {job.id}: a value is out of range ({exc})") from None


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _int4(len(data)) + data
