"""Keeps a worker's leases alive from a background thread and learns of cancellations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from taskqueue.drivers import Driver, HeartbeatResult
from taskqueue.errors import DriverError
from taskqueue.jobs.model import LeaseToken

log = logging.getLogger("taskqueue.worker")


class Heartbeat:
    """Every ``lease_seconds / 3`` extends the leases of held jobs (prefetched and running),
    publishes the worker's status entry, and reports cancelled or lost jobs to callbacks.

    ``on_beat`` is called after every round, whether the store answered or not: it tells the
    supervisor this process is alive. A worker waiting for its store is alive (its liveness is
    not the store's); ``last_success`` says when the store last accepted a heartbeat."""

    def __init__(
        self,
        driver: Driver,
        worker_id: str,
        lease_seconds: float,
        on_cancelled: Callable[[str], None],
        status: Callable[[], dict[str, Any]],
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.driver = driver
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval = max(0.2, lease_seconds / 3)
        self.on_cancelled = on_cancelled
        self.status = status
        self.on_beat = on_beat
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
        """One round: extend leases, publish status, dispatch cancellations."""
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
        self.driver.registry_put("worker", self.worker_id, self.status(),
                                 ttl_seconds=self.lease_seconds)
        return result

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="taskqueue-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _loop(self) -> None:
        first = True
        while first or not self._stop.wait(self.interval):
            first = False  # publish the worker at once, then every interval
            try:
                self.beat()
            except DriverError as exc:
                log.warning("heartbeat failed, will retry: %s", exc,
                            extra={"worker_id": self.worker_id})
            except Exception:  # noqa: BLE001 - the heartbeat thread must not die silently
                log.exception("heartbeat crashed; retrying", extra={"worker_id": self.worker_id})
            if self.on_beat is not None:
                self.on_beat()
