"""Keeps a worker's leases alive from a background thread and learns of cancellations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from taskqueue.drivers import Driver, HeartbeatResult, JobFilter
from taskqueue.errors import DriverError
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State

log = logging.getLogger("taskqueue.worker")


#: Seconds between two checks for cancellations of the running jobs.
CANCEL_POLL = 0.5


class Heartbeat:
    """Every ``lease_seconds / 3`` extends the leases of held jobs (prefetched and running)
    and reports cancelled or lost jobs to callbacks. (The worker's status entry is published
    by ``worker/presence.py``, every second when it changes.)

    ``on_beat`` is called after every round, whether the store answered or not: it tells the
    supervisor this process is alive. A worker waiting for its store is alive (its liveness is
    not the store's); ``last_success`` says when the store last accepted a heartbeat.

    Between beats, every ``CANCEL_POLL`` seconds while jobs run, it asks the store which of
    the ``watched`` jobs were cancelled (one ``search`` by id and state): a running job learns
    of its cancellation within about half a second, on every backend."""

    def __init__(
        self,
        driver: Driver,
        worker_id: str,
        lease_seconds: float,
        on_cancelled: Callable[[str], None],
        on_beat: Callable[[], None] | None = None,
        watched: Callable[[], list[str]] | None = None,
    ) -> None:
        self.driver = driver
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval = max(0.2, lease_seconds / 3)
        self.on_cancelled = on_cancelled
        self.on_beat = on_beat
        self.watched = watched
        self.lost: set[str] = set()
        #: monotonic time of the last heartbeat the store accepted
        self.last_success = 0.0
        self._held: dict[str, LeaseToken] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, tokens: Iterable[LeaseToken]) -> None:
        with self._lock:
            self._held.update((t.job_id, t) for t in tokens)

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)
            self.lost.discard(job_id)

    def drop_many(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
            if self.lost:
                self.lost.difference_update(job_ids)

    def held(self) -> list[LeaseToken]:
        with self._lock:
            return list(self._held.values())

    def beat(self) -> HeartbeatResult:
        """One round: extend leases, dispatch cancellations."""
        tokens = self.held()
        sent = time.monotonic()
        result = self.driver.heartbeat(self.worker_id, tokens, self.lease_seconds) if tokens \
            else HeartbeatResult()
        self.last_success = sent
        with self._lock:
            lost = [j for j in result.lost if j in self._held]  # not those settled meanwhile
            self.lost.update(lost)
        for job_id in lost:
            log.warning("lease lost", extra={"job_id": job_id, "worker_id": self.worker_id})
        for job_id in result.cancelled:
            self.on_cancelled(job_id)
        return result

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="taskqueue-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def poll_cancelled(self) -> None:
        """Report the watched (running) jobs cancelled in the store meanwhile."""
        ids = tuple(self.watched()) if self.watched is not None else ()
        if not ids:
            return
        found = self.driver.search(JobFilter(ids=ids, states=(State.CANCELLED,), limit=len(ids)))
        for record in found:
            self.on_cancelled(record.id)

    def _loop(self) -> None:
        next_beat = 0.0  # beat at once, then every interval
        while True:
            if time.monotonic() < next_beat:
                try:
                    self.poll_cancelled()
                except Exception as exc:  # noqa: BLE001 - the next beat reports an outage
                    log.debug("checking for cancellations failed: %s", exc)
            else:
                next_beat = time.monotonic() + self.interval
                self._beat_logged()
            if self._stop.wait(min(CANCEL_POLL, max(0.0, next_beat - time.monotonic()))):
                return

    def _beat_logged(self) -> None:
        try:
            self.beat()
        except DriverError as exc:
            log.warning("heartbeat failed, will retry: %s", exc,
                        extra={"worker_id": self.worker_id})
        except Exception:  # noqa: BLE001 - the heartbeat thread must not die silently
            log.exception("heartbeat crashed; retrying", extra={"worker_id": self.worker_id})
        if self.on_beat is not None:
            self.on_beat()
