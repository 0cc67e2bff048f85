"""QueueManager: the facade applications use to enqueue, inspect and control jobs."""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskqueue.codec import Codec, KeyRing, dumps, loads
from taskqueue.config import Settings, resolve
from taskqueue.drivers import Driver, JobFilter, open_driver
from taskqueue.errors import JobNotFound, PayloadError
from taskqueue.jobs.definition import Call, Job
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import DEFAULT_TIMEOUT, JobRecord, NewJob
from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.states import FINISHED, State
from taskqueue.observability.events import JOB_CANCELLED, JOB_ENQUEUED, Event, EventBus

if TYPE_CHECKING:
    from taskqueue.worker.runner import WorkerSummary

#: Body key telling the worker the enqueuer chose the timeout (so ``--timeout`` leaves it alone).
TIMEOUT_SET = "timeout_set"
#: Body key carrying the options that are not columns but that the worker's middleware reads.
RUN_OPTIONS = "_opts"
_RUN_OPTION_NAMES = ("rate", "rate_key", "concurrency", "conditions", "retry_backoff",
                     "retry_backoff_max", "retry_jitter", "on_dependency_failure")
_RESULT_PREFIX = "tq1:"
#: Registry kind holding paused queues; entries live "forever" (100 years).
PAUSED = "queue_paused"
FOREVER = 100 * 365 * 24 * 3600.0


class QueueManager:
    """Push jobs, look them up, cancel or retry them, read statistics, run a worker."""

    def __init__(
        self,
        driver: Driver,
        *,
        codec: Codec | None = None,
        settings: Settings | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.driver = driver
        self.settings = settings or Settings()
        self.codec = codec or codec_from(self.settings)
        self.events = events or EventBus()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> QueueManager:
        return cls(open_driver(settings.database_url), settings=settings, **kwargs)

    @classmethod
    def from_env(cls, **overrides: Any) -> QueueManager:
        """Build from CLI-style overrides > environment > taskqueue.toml > defaults."""
        return cls.from_settings(resolve(overrides))

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> QueueManager:
        return cls.from_settings(resolve({"url": url, **overrides}))

    def make_default(self) -> QueueManager:
        """Use this manager for ``task.delay(...)`` calls that name no manager."""
        set_default_manager(self)
        return self

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> QueueManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- enqueue --------------------------------------------------------------------------------
    def push(self, job: Job | Call, *, connection: Any = None, **options: Any) -> str:
        """Enqueue one job and return its id (an existing id for a duplicate idempotency key).

        ``connection``: on PostgreSQL/MySQL, your own open connection; the job is written in
        your transaction and appears only if you commit.
        """
        return self.push_many([job], connection=connection, **options)[0]

    def push_many(
        self, jobs: Iterable[Job | Call], *, connection: Any = None, **options: Any
    ) -> list[str]:
        """Enqueue many jobs in one round trip; ``options`` apply to each of them."""
        new_jobs = [self.prepare(job, **options) for job in jobs]
        if not new_jobs:
            return []
        if connection is not None:
            ids = self.driver.push(new_jobs, connection=connection)  # type: ignore[call-arg]
        else:
            ids = self.driver.push(new_jobs)
        for job, job_id in zip(new_jobs, ids, strict=True):
            if job_id == job.id:
                self.events.emit(Event(JOB_ENQUEUED, job.id, job.name, job.queue_name))
        return ids

    def prepare(self, job: Job | Call, **overrides: Any) -> NewJob:
        """Validate options and encode the payload: everything short of storing."""
        call = job.to_call() if isinstance(job, Job) else job
        opts = {**call.options, **{k: v for k, v in overrides.items() if v is not None}}
        job_id = uuid7()
        queue = str(opts.get("queue") or "default")
        body = dict(call.body)
        if opts.get("timeout") is not None:
            body[TIMEOUT_SET] = True
        run_options = {k: opts[k] for k in _RUN_OPTION_NAMES if opts.get(k) not in (None, ())}
        if run_options:
            body[RUN_OPTIONS] = run_options
        max_attempts = int(opts.get("max_attempts") or 3)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        return NewJob(
            id=job_id,
            name=call.name,
            payload=self.codec.encode(body, job_id=job_id, queue=queue),
            queue_name=queue,
            priority=validate_priority(opts.get("priority", 5)),
            max_attempts=max_attempts,
            timeout_seconds=_timeout_seconds(opts.get("timeout")),
            delay_seconds=delay_seconds(opts.get("delay"), opts.get("eta")),
            dependencies=tuple(str(d) for d in opts.get("depends_on") or ()),
            tags=tuple(str(t) for t in opts.get("tags") or ()),
            idempotency_key=opts.get("idempotency_key"),
            batch_id=opts.get("batch_id"),
        )

    # -- inspect and control --------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        return self.driver.get(job_id)

    def require(self, job_id: str) -> JobRecord:
        record = self.driver.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def search(self, criteria: JobFilter | None = None) -> list[JobRecord]:
        return self.driver.search(criteria or JobFilter())

    def cancel(self, job_id: str, reason: str = "cancelled by user") -> bool:
        """Cancel a pending, retrying or running job (a running one learns it at heartbeat)."""
        done = self.driver.cancel(job_id, reason)
        if done:
            self.events.emit(Event(JOB_CANCELLED, job_id, error=reason))
        return done

    def retry(self, job_id: str) -> bool:
        """Move a failed (dead-lettered) or cancelled job back to pending."""
        return self.driver.retry(job_id)

    def set_priority(self, job_id: str, priority: int | str) -> bool:
        return self.driver.set_priority(job_id, validate_priority(priority))

    def delete(self, job_id: str) -> bool:
        return self.driver.delete(job_id)

    # -- queues ---------------------------------------------------------------------------------
    def pause_queue(self, queue: str) -> None:
        """Stop every worker on every node from taking jobs from ``queue`` (within a second)."""
        self.driver.registry_put(PAUSED, queue, {"queue": queue, "since": time.time()},
                                 ttl_seconds=FOREVER)

    def resume_queue(self, queue: str) -> None:
        self.driver.registry_remove(PAUSED, queue)

    def paused_queues(self) -> list[str]:
        return [str(e["queue"]) for e in self.driver.registry_list(PAUSED)]

    def decode(self, record: JobRecord) -> Any:
        """The job's decoded body (args/kwargs or data)."""
        return self.codec.decode(record.payload, job_id=record.id, queue=record.queue_name)

    def result(self, job_id: str, timeout: float = 0.0, poll: float = 0.05) -> Any:
        """The stored return value, waiting up to ``timeout`` s for the job to finish.

        Raises JobNotFound, TimeoutError if it is still running at the deadline, or
        RuntimeError (with the job's exception text) if it failed or was cancelled.
        """
        deadline = time.monotonic() + timeout
        while True:
            record = self.require(job_id)
            if record.state in FINISHED:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {record.state} after {timeout}s")
            time.sleep(poll)
        if record.state != State.COMPLETED:
            raise RuntimeError(f"job {job_id} {record.state}: {record.exception}")
        return self.decode_result(record)

    def encode_result(self, value: Any, job_id: str) -> str:
        """Results are JSON; encrypted like payloads when a key is set."""
        try:
            raw = dumps(value)
        except PayloadError:
            raw = dumps(repr(value))
        if self.codec.keyring is None or not self.codec.keyring.enabled:
            return raw.decode()
        sealed = self.codec.encode(loads(raw), job_id=job_id, queue="result")
        return _RESULT_PREFIX + base64.b64encode(sealed).decode()

    def decode_result(self, record: JobRecord) -> Any:
        if record.result is None:
            return None
        if record.result.startswith(_RESULT_PREFIX):
            sealed = base64.b64decode(record.result[len(_RESULT_PREFIX):])
            return self.codec.decode(sealed, job_id=record.id, queue="result")
        return loads(record.result.encode())

    def stats(self) -> dict[str, Any]:
        """``{"queues": {name: {state: n, ...}}, "totals": {state: n, ...}, ...}``."""
        per_queue = self.driver.stats()
        queues = {name: qs.to_dict() for name, qs in sorted(per_queue.items())}
        totals: dict[str, Any] = {s.value: sum(q.counts[s] for q in per_queue.values())
                                  for s in State}
        totals["completed_last_minute"] = sum(q.completed_last_minute
                                              for q in per_queue.values())
        waiting = [(q.avg_priority, q.counts[State.PENDING] + q.counts[State.RETRYING])
                   for q in per_queue.values() if q.avg_priority is not None]
        count = sum(n for _, n in waiting)
        totals["avg_priority"] = (sum(a * n for a, n in waiting if a is not None) / count
                                  if count else None)
        return {"backend": self.driver.name, "queues": queues, "totals": totals,
                "generated_at": datetime.now(UTC).isoformat()}

    def prune(self) -> int:
        return self.driver.prune(self.settings.completed_retention,
                                 self.settings.failed_retention)

    def start_worker(self, **options: Any) -> WorkerSummary:
        """Run a worker in this process until it stops (see ``WorkerOptions``)."""
        from taskqueue.worker.runner import Worker, WorkerOptions

        return Worker(self, WorkerOptions(**options)).run()


def codec_from(settings: Settings) -> Codec:
    ring = KeyRing.from_strings(settings.encryption_key, settings.encryption_previous_keys)
    return Codec(ring if ring.enabled else None, max_payload=settings.max_payload)


def delay_seconds(delay: float | timedelta | None, eta: datetime | None) -> float:
    """Normalize ``delay=`` (seconds or timedelta) or ``eta=`` (aware datetime) to seconds."""
    if delay is not None and eta is not None:
        raise ValueError("give either delay= or eta=, not both")
    if eta is not None:
        if eta.tzinfo is None:
            raise ValueError("eta must be timezone-aware (e.g. datetime.now(UTC) + ...)")
        return max(0.0, (eta - datetime.now(UTC)).total_seconds())
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    seconds = float(delay or 0)
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"delay must be >= 0 seconds, got {delay}")
    return seconds


def _timeout_seconds(timeout: float | None) -> int:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return max(1, math.ceil(timeout))


_default: QueueManager | None = None
_default_lock = threading.Lock()


def set_default_manager(manager: QueueManager | None) -> None:
    global _default
    _default = manager


def default_manager() -> QueueManager:
    """The manager ``task.delay()`` uses: set explicitly, or built from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = QueueManager.from_env()
        return _default

