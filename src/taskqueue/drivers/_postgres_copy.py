"""The PostgreSQL driver's bulk push as binary COPY data, formatted here (private to
``postgres``).

A row of ``copy_jobs`` is the field count, then each field as its length and its bytes (-1 for
NULL), in the order of the statement's column list: the id and the payload, which every job has
of its own, then the nine columns a batch's jobs usually share (a task's queue, name, priority,
limits, tags, batch and idempotency mode). Those nine are formatted once per distinct set and
the row is the id, the payload and that shared tail: about a fifth of the client's work of
psycopg's ``write_row`` (which dumps each of the eleven values through its type's dumper).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from taskqueue.drivers import _sql
from taskqueue.errors import DriverError
from taskqueue.jobs.model import NewJob

#: The file header of a binary COPY (signature, flags, header extension length) and its end.
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
#: Rows are sent in pieces of about this many bytes, so the server inserts the first rows
#: while the client formats the next.
PIECE = 64 * 1024

_row_head = struct.Struct(">hi").pack  # the field count, the first field's length
_NULL = struct.pack(">i", -1)
_int4 = struct.Struct(">i").pack
_int4_field = struct.Struct(">ii").pack
_float8_field = struct.Struct(">id").pack


def pieces(jobs: Sequence[NewJob]) -> Iterator[bytes]:
    """The COPY data of ``jobs`` (header and trailer included), in pieces of about ``PIECE``
    bytes."""
    tails: dict[tuple[object, ...], bytes] = {}
    out = bytearray(HEADER)
    for job in jobs:
        shared = (job.queue_name, job.name, job.priority, job.max_attempts,
                  job.timeout_seconds, job.tags, job.batch_id, job.idempotency_mode,
                  job.idempotency_window)
        tail = tails.get(shared)
        if tail is None:
            tail = tails[shared] = _tail(job)
        job_id = job.id.encode()
        payload = job.payload
        out += _row_head(11, len(job_id))
        out += job_id
        out += _int4(len(payload))
        out += payload
        out += tail
        if len(out) >= PIECE:
            yield bytes(out)
            out.clear()
    out += TRAILER
    yield bytes(out)


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
