"""The job record: the same fields on every backend (the ``job_queue`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

from taskqueue.jobs.states import State

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT = 60


class LeaseToken(NamedTuple):
    """Proof of ownership: a settle call is accepted only while the job still has this epoch."""

    job_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a producer hands to ``Driver.push``: a job before the store has seen it."""

    id: str
    name: str
    payload: bytes
    queue_name: str = DEFAULT_QUEUE
    priority: int = 5
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout_seconds: int = DEFAULT_TIMEOUT
    delay_seconds: float = 0.0
    dependencies: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    batch_id: str | None = None
    #: How long the idempotency key blocks duplicates: "exists" (while the job exists),
    #: "started" (until reserved), "finished" (until completed/failed/cancelled), "window"
    #: (until ``idempotency_window`` seconds after it finished), "debounce" (until reserved; a
    #: duplicate pushed meanwhile replaces the pending job's arguments).
    idempotency_mode: str = "exists"
    idempotency_window: float = 0.0


IDEMPOTENCY_MODES = ("exists", "started", "finished", "window", "debounce")

_NEW_JOB_SETTERS = {f.name: NewJob.__dict__[f.name].__set__ for f in fields(NewJob)}


def jobs_like(template: NewJob, ids: Sequence[str], payloads: Sequence[bytes]) -> list[NewJob]:
    """Jobs equal to ``template`` but for their ids and payloads (one of each per job): a
    batch of one task with the same options. Each job's slots are filled directly, not
    through the frozen ``__init__``'s ``object.__setattr__`` per field (under half the
    time); the template's values were checked when it was made."""
    setters = _NEW_JOB_SETTERS
    set_id, set_payload = setters["id"], setters["payload"]
    shared = [(setter, getattr(template, name)) for name, setter in setters.items()
              if name not in ("id", "payload")]
    new = object.__new__
    out: list[NewJob] = []
    for job_id, payload in zip(ids, payloads, strict=True):
        job = new(NewJob)
        set_id(job, job_id)
        set_payload(job, payload)
        for setter, value in shared:
            setter(job, value)
        out.append(job)
    return out


@dataclass(frozen=True, slots=True)
class JobRun:
    """Jobs equal to ``template`` but for their ids and payloads (one of each per job, in
    order): consecutive jobs of one task with the same options, as ``push_many`` makes them.
    A store that writes them as they are (PostgreSQL's COPY) formats the shared part once and
    never makes a ``NewJob`` per job."""

    template: NewJob
    ids: list[str]
    payloads: list[bytes]

    def jobs(self) -> list[NewJob]:
        return jobs_like(self.template, self.ids, self.payloads)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored. Timestamps are timezone-aware UTC datetimes."""

    id: str
    queue_name: str
    name: str
    payload: bytes
    state: State
    priority: int
    attempts: int
    max_attempts: int
    timeout_seconds: int
    delay_seconds: float
    available_at: datetime
    created_at: datetime
    updated_at: datetime
    dependencies: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    exception: str | None = None
    result: str | None = None
    progress: float | None = None
    idempotency_key: str | None = None
    batch_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    lease_epoch: int = 0
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def token(self) -> LeaseToken:
        return LeaseToken(self.id, self.lease_epoch)

    def to_dict(self, *, with_payload: bool = False) -> dict[str, object]:
        """A JSON-friendly view (datetimes as ISO 8601), used by the CLI and the dashboard."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            if name in ("payload", "extra"):
                continue
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, State):
                value = value.value
            out[name] = value
        out["payload_bytes"] = len(self.payload)
        if with_payload:
            out["payload"] = self.payload.hex()
        return out


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job, as its attempt history keeps it. ``outcome`` is what the run led to:
    ``retrying`` or ``failed`` (with the ``error``), ``completed``, or ``running`` (the attempt
    in progress, added when the history is read)."""

    number: int
    worker: str | None
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str
    error: str | None = None

    def entry(self) -> dict[str, Any]:
        """The form a store keeps it in (times as epoch seconds); ``restore`` takes a list of
        them in ``JobRecord.extra[ATTEMPT_HISTORY]``."""
        return {"attempt": self.number, "worker": self.worker,
                "started_at": self.started_at.timestamp() if self.started_at else None,
                "ended_at": self.ended_at.timestamp() if self.ended_at else None,
                "outcome": self.outcome, "error": self.error}

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.number, "worker": self.worker,
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "outcome": self.outcome, "error": self.error}


#: The key of ``JobRecord.extra`` that carries a job's attempt history into ``restore``.
ATTEMPT_HISTORY = "attempt_history"


def attempts_of(record: JobRecord, stored: Sequence[Attempt]) -> list[Attempt]:
    """Every attempt of a job, oldest first: those the store kept (failed or lost ones, and the
    completion that closed them) and the one the job record itself describes when the store
    keeps no entry for it: the attempt running now, or a success at the first try."""
    attempts = list(stored)
    if record.state is State.PROCESSING and record.attempts:
        attempts.append(Attempt(record.attempts, record.lease_owner, record.started_at, None,
                                "running"))
    elif record.state is State.COMPLETED and not (attempts and attempts[-1].outcome == "completed"):
        attempts.append(Attempt(record.attempts, None, record.started_at, record.completed_at,
                                "completed"))
    return attempts


_SETTERS = tuple(JobRecord.__dict__[f.name].__set__ for f in fields(JobRecord))


def record_from_values(values: Sequence[object]) -> JobRecord:
    """A JobRecord from all its field values in declaration order (``extra`` last), for the
    drivers' hot paths: it fills the slots directly instead of going through the frozen
    ``__init__``'s ``object.__setattr__`` per field (about 40 % less time). No checks are
    made: the values come from the store's own columns."""
    record = object.__new__(JobRecord)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(record, value)
    return record
