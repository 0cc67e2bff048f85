"""Settling leased jobs in the files backend: heartbeat, complete (one or a batch), fail,
release and progress.

Each change is accepted only while the job is ``processing`` with the caller's lease epoch,
checked and applied under the job's lock (a worker that lost its lease cannot overwrite the
new owner's outcome). A batch of completions (:meth:`Settler.complete_many`) settles each job
under its own lock, one after the other, so one stale token rejects exactly that item; what a
batch saves is the per-call overhead, and a job is looked up where this process leased it
(``Leases.leased``) instead of through its id entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from taskqueue.drivers._files_jobs import Records
from taskqueue.drivers._files_lease import Leases
from taskqueue.drivers._files_record import Rec, add_attempt, encode, key_on_finish
from taskqueue.drivers._files_store import Store
from taskqueue.drivers.base import HeartbeatResult
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State


class Settler:
    """The settle verbs of the Driver protocol over one store's job files."""

    def __init__(self, store: Store, jobs: Records, leases: Leases) -> None:
        self._store = store
        self._jobs = jobs
        self._leases = leases

    def settle(self, token: LeaseToken, change: Callable[[Rec], None], *,
               final: bool = True) -> bool:
        """Apply ``change`` only while ``state='processing' AND lease_epoch=token.epoch``
        (``final``: the change ends the lease, so this process forgets where it leased it)."""
        with self._store.job_lock(token.job_id).hold():
            found = self._leases.leased(token)
            if found is None:
                return False
            path, rec = found
            key = rec["idempotency_key"]
            change(rec)
            self._jobs.commit(path, rec)
            self._jobs.settle_key(key, rec)
        if final:
            self._leases.forget(token.job_id)
        return True

    def heartbeat(
        self, worker_id: str, tokens: Sequence[LeaseToken], lease_seconds: float
    ) -> HeartbeatResult:
        now = time.time()
        extended, cancelled, lost = set(), set(), set()
        for token in tokens:
            token = LeaseToken(*token)
            with self._store.job_lock(token.job_id).hold():
                found = self._leases.leased(token)
                if found is not None:
                    path, rec = found
                    rec.update(lease_expires_at=now + lease_seconds, updated_at=now)
                    self._store.write_job(path, encode(rec))
                    extended.add(token.job_id)
                    continue
                where = self._jobs.find(token.job_id)
                now_rec = self._jobs.load(where, token.job_id) if where is not None else None
            if (now_rec and now_rec["state"] == State.CANCELLED
                    and now_rec["lease_epoch"] == token.epoch):
                cancelled.add(token.job_id)
            else:
                lost.add(token.job_id)
        return HeartbeatResult(frozenset(extended), frozenset(cancelled), frozenset(lost))

    def complete_many(self, items: Sequence[tuple[LeaseToken, str | None]]) -> list[bool]:
        """Acknowledge a batch: each item is accepted or rejected on its own epoch."""
        now = time.time()
        done = [self._complete(LeaseToken(*token), result, now) for token, result in items]
        for (token, _result), ok in zip(items, done, strict=True):
            if ok:
                self._jobs.wake_dependents(token[0])
        return done

    def complete(self, token: LeaseToken, result: str | None = None) -> bool:
        if not self._complete(LeaseToken(*token), result, time.time()):
            return False
        self._jobs.wake_dependents(token[0])
        return True

    def _complete(self, token: LeaseToken, result: str | None, now: float) -> bool:
        def change(rec: Rec) -> None:
            if rec["attempt_history"] is not None:  # it failed before: close the history
                add_attempt(rec, now, State.COMPLETED.value, None)
            rec.update(state=State.COMPLETED.value, result=result, completed_at=now,
                       updated_at=now, progress=100.0, lease_owner=None, lease_expires_at=None,
                       exception=None)
            key_on_finish(rec, now)

        return self.settle(token, change)

    def fail(self, token: LeaseToken, error: str, retry_in: float | None) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            add_attempt(rec, now, (State.RETRYING if retry_in is not None else State.FAILED).value,
                        error)
            if retry_in is None:
                rec.update(state=State.FAILED.value, available_at=now, failed_at=now)
                key_on_finish(rec, now)
            else:
                rec.update(state=State.RETRYING.value, available_at=now + retry_in,
                           failed_at=None)
            rec.update(exception=error, updated_at=now, lease_owner=None, lease_expires_at=None)

        return self.settle(LeaseToken(*token), change)

    def release(self, token: LeaseToken, delay_seconds: float, reason: str | None) -> bool:
        now = time.time()

        def change(rec: Rec) -> None:
            rec.update(state=State.PENDING.value, attempts=max(rec["attempts"] - 1, 0),
                       available_at=now + delay_seconds, updated_at=now, lease_owner=None,
                       lease_expires_at=None)
            if reason is not None:
                rec["exception"] = reason

        return self.settle(LeaseToken(*token), change)

    def set_progress(self, token: LeaseToken, progress: float) -> bool:
        now = time.time()
        return self.settle(LeaseToken(*token), lambda rec: rec.update(
            progress=float(progress), updated_at=now), final=False)
