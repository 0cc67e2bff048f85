"""Managing jobs in the files backend: cancel, replace a payload, retry, re-prioritize,
delete and prune. Each change is checked and applied under the job's lock, on the state its
record says (its directory may lag behind after a crash; the record is the truth)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from taskqueue.drivers import _files_scan as scan
from taskqueue.drivers._files_jobs import READY_STATES, Records
from taskqueue.drivers._files_record import Rec, finished_at, key_on_finish, payload_text
from taskqueue.drivers._files_store import Store
from taskqueue.drivers.base import BULK_STATES
from taskqueue.jobs.states import State

_CANCELLABLE = READY_STATES | {State.PROCESSING.value}


class Admin:
    """The managing verbs of the Driver protocol over one store's job files."""

    def __init__(self, store: Store, jobs: Records) -> None:
        self._store = store
        self._jobs = jobs

    def _change(self, job_id: str, allowed: frozenset[str], change: Callable[[Rec], None],
                move: Callable[[Path, Rec], None]) -> bool:
        """Apply ``change`` to a job in one of the ``allowed`` states, under its lock."""
        with self._store.job_lock(job_id).hold():
            path = self._jobs.find(job_id)
            rec = self._jobs.load(path, job_id) if path is not None else None
            if path is None or rec is None or rec["state"] not in allowed:
                return False
            key = rec["idempotency_key"]
            change(rec)
            move(path, rec)
            self._jobs.settle_key(key, rec)
        return True

    def cancel(self, job_id: str, reason: str) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            rec.update(state=State.CANCELLED.value, exception=reason, updated_at=now,
                       lease_owner=None, lease_expires_at=None)
            key_on_finish(rec, now)

        return self._change(job_id, _CANCELLABLE, change, self._jobs.commit)

    def replace_payload(self, job_id: str, payload: bytes, delay_seconds: float) -> bool:
        now = time.time()
        return self._change(job_id, frozenset({State.PENDING.value}), lambda rec: rec.update(
            payload=payload_text(payload), available_at=now + delay_seconds,
            delay_seconds=float(delay_seconds), updated_at=now), self._jobs.commit)

    def retry(self, job_id: str) -> bool:
        now = time.time()
        return self._change(
            job_id, frozenset({State.FAILED.value, State.CANCELLED.value}),
            lambda rec: rec.update(state=State.PENDING.value, attempts=0, available_at=now,
                                   updated_at=now, failed_at=None, lease_owner=None,
                                   lease_expires_at=None), self._jobs.reopen)

    def set_priority(self, job_id: str, priority: int) -> bool:
        now = time.time()
        return self._change(job_id, _CANCELLABLE, lambda rec: rec.update(
            priority=priority, updated_at=now), self._jobs.commit)

    def delete(self, job_id: str, states: Collection[State] = tuple(State)) -> bool:
        if not self._change(job_id, frozenset(s.value for s in states), lambda rec: None,
                            self._jobs.remove):
            return False
        self._jobs.wake_dependents(job_id)
        return True

    def apply_many(self, action: str, ids: Sequence[str], reason: str,
                   priority: int | None) -> list[str]:
        """``Driver.apply_many``: the single-job change for each id in turn, each under its
        job's lock (files have no statement spanning jobs); ``delete`` spares running jobs."""
        one: dict[str, Callable[[str], bool]] = {
            "retry": self.retry,
            "cancel": lambda job_id: self.cancel(job_id, reason),
            "priority": lambda job_id: self.set_priority(job_id, int(priority or 0)),
            "delete": lambda job_id: self.delete(job_id, BULK_STATES["delete"]),
        }
        return [job_id for job_id in ids if one[action](job_id)]

    def prune(self, completed_age: float, failed_age: float, limit: int | None = None,
              dry_run: bool = False) -> int:
        now = time.time()
        cutoffs = {State.COMPLETED.value: now - completed_age,
                   State.FAILED.value: now - failed_age, State.CANCELLED.value: now - failed_age}
        deleted: list[str] = []
        would = 0
        for queue in self._store.queue_names():
            for state, cutoff in cutoffs.items():
                for path, job_id in scan.finished_before(self._store, queue, state, cutoff):
                    if limit is not None and len(deleted) >= limit and not dry_run:
                        break
                    if dry_run:
                        would += self._would_prune(path, job_id, state, cutoff)
                    elif self._prune_one(path, job_id, state, cutoff):
                        deleted.append(job_id)
        if dry_run:
            return would
        for job_id in deleted:
            self._jobs.wake_dependents(job_id)
        return len(deleted)

    def _would_prune(self, path: Path, job_id: str, state: str, cutoff: float) -> bool:
        rec = self._jobs.load(path, job_id)
        finished = finished_at(rec) if rec is not None else None
        return rec is not None and rec["state"] == state and finished is not None \
            and finished < cutoff

    def _prune_one(self, path: Path, job_id: str, state: str, cutoff: float) -> bool:
        with self._store.job_lock(job_id).hold():
            rec = self._jobs.load(path, job_id)
            finished = finished_at(rec) if rec is not None else None
            if rec is None or rec["state"] != state or finished is None or finished >= cutoff:
                return False
            self._jobs.remove(path, rec)
        return True
