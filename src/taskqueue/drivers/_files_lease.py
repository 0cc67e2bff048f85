"""Leases of the files backend: claiming a ready job, checking a lease still held, expiring one.

A claim renames the job's file into ``processing/`` (exactly one process wins a rename) and
then rewrites it with the new lease, so a crash between leaves a record in ``processing/`` whose
content still says ready: whoever reads it next under its lock moves it back. Methods
documented "caller holds the lock" must run under ``store.job_lock(job_id)``; the rest take the
lock themselves and must be called with no lock held.

A process remembers which queue each job it leased lives in, so settling the lease reads the
record straight from ``processing/`` without first reading the job's id entry. That memory is
only a hint: when the record is not where it says, the id entry is read as usual.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Literal

from taskqueue.drivers._files_jobs import READY_STATES, Records
from taskqueue.drivers._files_record import (
    CorruptRecord,
    Rec,
    add_attempt,
    decode,
    encode,
    key_on_finish,
    key_on_start,
    to_job_record,
)
from taskqueue.drivers._files_scan import Candidate
from taskqueue.drivers._files_store import PROCESSING, READY, Store, read_file, ready_name
from taskqueue.jobs.model import JobRecord, LeaseToken
from taskqueue.jobs.states import State

_HINTS_MAX = 100_000  # queues remembered for leased jobs (cleared when full)


class Busy(Enum):
    """A non-blocking claim found the job's lock held by someone else."""

    BUSY = "busy"


class Leases:
    """Lease verbs over one store's job files (see the module docstring for the locking)."""

    def __init__(self, store: Store, jobs: Records) -> None:
        self._store = store
        self._jobs = jobs
        self._queues: dict[str, str] = {}  # job id -> queue, for jobs this process leased

    def claim(
        self, cand: Candidate, worker_id: str, lease: float, now: float, *, blocking: bool
    ) -> JobRecord | None | Literal[Busy.BUSY]:
        """Take one ready job a scan found: check it, rename it into processing/, lease it."""
        with self._store.job_lock(cand.job_id).hold(blocking) as held:
            if not held:
                return Busy.BUSY
            source = self._store.state_dir(cand.queue, READY) / cand.name
            rec = self._jobs.load(source, cand.job_id)
            if rec is None:
                return None  # another worker won it, it moved, or it was unreadable
            if (rec["state"] not in READY_STATES or ready_name(rec) != cand.name
                    or rec["queue_name"] != cand.queue):
                self._jobs.place(source, rec)  # its name was stale: put it where it belongs
                return None
            return self._take(source, rec, worker_id, lease, now)

    def claim_id(self, job_id: str, worker_id: str, lease: float, now: float) -> JobRecord | None:
        """Take one given job if it is ready (dependencies met) and due now."""
        with self._store.job_lock(job_id).hold():
            path = self._jobs.find(job_id)
            rec = self._jobs.load(path, job_id) if path is not None else None
            if path is None or rec is None:
                return None
            path = self._jobs.place(path, rec)  # a move cut short or a lost wake-up: finish it
            if (rec["state"] not in READY_STATES or path.parent.name != READY
                    or rec["available_at"] > now):
                return None
            return self._take(path, rec, worker_id, lease, now)

    def _take(self, source: Path, rec: Rec, worker_id: str, lease: float, now: float) -> JobRecord:
        """Lease a ready record (caller holds its lock): rename it into processing/, rewrite it,
        then drop its key marker if being started frees the key."""
        path = self._store.fixed_path(rec["queue_name"], PROCESSING, rec["id"])
        self._store.move(source, path)
        key = rec["idempotency_key"]
        rec.update(state=State.PROCESSING.value, attempts=rec["attempts"] + 1,
                   lease_owner=worker_id, lease_expires_at=now + lease,
                   lease_epoch=rec["lease_epoch"] + 1, started_at=now, updated_at=now)
        key_on_start(rec)
        self._store.write_job(path, encode(rec))
        self._jobs.settle_key(key, rec)
        if len(self._queues) >= _HINTS_MAX:
            self._queues.clear()
        self._queues[rec["id"]] = rec["queue_name"]
        return to_job_record(rec)

    def forget(self, job_id: str) -> None:
        """This process no longer needs to know where it leased ``job_id``."""
        self._queues.pop(job_id, None)

    def leased(self, token: LeaseToken) -> tuple[Path, Rec] | None:
        """The processing record still held with this epoch (caller holds the job lock)."""
        hint = self._queues.get(token.job_id)
        rec = None
        if hint is not None:
            path = self._store.fixed_path(hint, PROCESSING, token.job_id)
            rec = self._jobs.load(path, token.job_id)
        if rec is None:
            queue = self._store.queue_of(token.job_id)
            if queue is None or queue == hint:
                return None
            path = self._store.fixed_path(queue, PROCESSING, token.job_id)
            rec = self._jobs.load(path, token.job_id)
        if rec is None or rec["state"] != State.PROCESSING or rec["lease_epoch"] != token.epoch:
            return None
        return path, rec

    def recover(self, path: Path, job_id: str, now: float, owner: str | None = None,
                cause: str = "", ran: bool = True) -> bool:
        """Expire one lease (processing -> retrying, or failed when attempts are spent): one
        that ran out, or with ``owner``, one held by that dead worker process (``cause`` is
        what its supervisor saw; ``ran=False``: it never started, so it goes back to pending
        with its attempt refunded)."""
        def due(rec: Rec) -> bool:
            return rec["lease_owner"] == owner if owner is not None else _expired(rec, now)

        with contextlib.suppress(FileNotFoundError, CorruptRecord):  # cheap look, no lock
            peek = decode(read_file(path), job_id)
            if peek["state"] == State.PROCESSING and not due(peek):
                return False
        with self._store.job_lock(job_id).hold():
            rec = self._jobs.load(path, job_id)
            if rec is None:
                return False
            if rec["state"] != State.PROCESSING:
                self._jobs.place(path, rec)  # a move interrupted by a crash: finish it
                return False
            if not due(rec):
                return False
            key = rec["idempotency_key"]
            if ran:
                _rescue(rec, now, cause if owner is not None else None)
            else:
                _refund(rec, now)
            self._jobs.commit(path, rec)
            self._jobs.settle_key(key, rec)
        return True


def _rescue(rec: Rec, now: float, cause: str | None) -> None:
    """A job that ran: retrying, or failed when attempts are spent (``cause`` None: its lease
    expired)."""
    spent = rec["attempts"] >= rec["max_attempts"]
    if cause is None:
        cause = f"LeaseExpired: worker {rec['lease_owner'] or '?'} stopped renewing its lease"
    error = f"{cause} (attempt {rec['attempts']} of {rec['max_attempts']})"
    state = State.FAILED if spent else State.RETRYING
    add_attempt(rec, now, state.value, error)
    rec.update(state=state.value, failed_at=now if spent else rec["failed_at"], exception=error,
               available_at=now, updated_at=now, lease_owner=None, lease_expires_at=None)
    if spent:
        key_on_finish(rec, now)


def _refund(rec: Rec, now: float) -> None:
    """A job that never started: back to pending, its attempt refunded."""
    rec.update(state=State.PENDING.value, attempts=max(rec["attempts"] - 1, 0),
               available_at=now, updated_at=now, lease_owner=None, lease_expires_at=None)


def _expired(rec: Rec, now: float) -> bool:
    expires = rec["lease_expires_at"]
    return expires is not None and expires < now
