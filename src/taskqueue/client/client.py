"""Client: what talks to the store for an application: validate, encode, push, inspect,
control (cancel with its cascade, retry, pause queues), results and statistics, and the
workflow entry points (batches, recurring series). ``QueueManager`` is this plus running a
worker; the worker itself takes a Client."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self

from taskqueue.client.fresh import FreshStoreReads, open_for_reading
from taskqueue.client.prepare import SLICE, PreparedJobs, settle_key
from taskqueue.client.store import check_transactional, codec_from
from taskqueue.codec import Codec, dumps, loads
from taskqueue.config import Settings, resolve
from taskqueue.drivers import Driver, JobFilter, PushesRuns, ReplicaReads, open_driver
from taskqueue.errors import JobFailed, JobNotFound, PayloadError, UnencryptedPayload
from taskqueue.jobs.body import RUN_OPTIONS, TIMEOUT_SET, WORKFLOW
from taskqueue.jobs.definition import Call, Job
from taskqueue.jobs.handle import JobHandle
from taskqueue.jobs.ids import uuid7, uuid7_many
from taskqueue.jobs.model import Attempt, JobRecord, JobRun, NewJob, attempts_of
from taskqueue.jobs.names import check_key, check_queue
from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.settle import Settled, settle
from taskqueue.jobs.states import FINISHED, State
from taskqueue.jobs.unreadable import unreadable
from taskqueue.observability.events import JOB_ENQUEUED, Event, EventBus
from taskqueue.observability.tracing import TRACE_OPTION, current_trace_context
from taskqueue.plaintext_switch import PlaintextSwitch
from taskqueue.workflows import batch as batches
from taskqueue.workflows.batch import BatchStatus
from taskqueue.workflows.dependencies import (
    cancelled_follow_ups,
    check_graph,
    check_receiver,
    result_keyword,
    settle_dependents,
)
from taskqueue.workflows.recurring import stop_series
from taskqueue.workflows.unique import idempotency

_RESULT_PREFIX = "tq1:"
#: Registry kind holding paused queues; entries live "forever" (100 years).
PAUSED = "queue_paused"
FOREVER = 100 * 365 * 24 * 3600.0
#: Finished jobs deleted per transaction by ``Client.prune``.
PRUNE_BATCH = 2000
#: Distinct option sets a client remembers settled (``_settled``); past that it starts over.
SETTLED_KEPT = 256


def _settle(call: Call, overrides: dict[str, Any]) -> Settled:
    """``settle``, and what only a push decides: the keyword a ``pass_result`` job with
    dependencies receives their results under, checked against its task's signature."""
    settled = settle(call, overrides)
    opts = settled.opts
    if not (opts.get("pass_result") and opts.get("depends_on")):
        return settled
    keyword = result_keyword(opts["pass_result"], len(opts["depends_on"]))
    check_receiver(call.name, keyword)
    return replace(settled, opts={**opts, "pass_result": keyword},
                   run_options={**settled.run_options, "pass_result": keyword})


class Client:
    """Push jobs, look them up, cancel or retry them, read statistics: everything short of
    running a worker (``QueueManager`` adds that)."""

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
        self.plaintext = PlaintextSwitch(self.driver, self.codec)
        #: The last ``prune`` stopped at its time budget with more to delete.
        self.prune_pending = False
        #: Counts this manager's events into the store's statistics; installed at the first
        #: push, so every producer's enqueues count (``taskqueue stats`` enq/min, metrics).
        self.stats_recorder: Any = None
        #: Settled options by ``settle_key`` (see ``_settled``).
        self._settled_by_key: dict[Any, Settled] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True,
                      **kwargs: Any) -> Self:
        """``migrate=False``: the store was migrated already (a supervisor's worker process);
        see ``open_driver``."""
        return cls(open_driver(settings.database_url, migrate=migrate), settings=settings,
                   **kwargs)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Build from CLI-style overrides > environment > taskqueue.toml > defaults."""
        return cls.from_settings(resolve(overrides))

    @classmethod
    def for_reading(cls, settings: Settings, **kwargs: Any) -> Self:
        """A manager for what only reads: on ``settings.read_url`` (a replica) when set, else
        on the store, never migrating it. A store whose schema is behind is refused; one with
        no schema at all reads as empty, and nothing is created (``client/fresh.py``)."""
        url = settings.read_url or settings.database_url
        driver = open_for_reading(url, replica=settings.read_url is not None)
        return cls(driver, settings=settings, **kwargs)

    def store_is_new(self) -> bool:
        """True while the store has no taskqueue schema at all (a reader's: nothing was ever
        enqueued there), which reads as an empty store."""
        return isinstance(self.driver, FreshStoreReads) and self.driver.is_empty()

    @classmethod
    def with_replica(cls, settings: Settings, **kwargs: Any) -> Self:
        """A manager that writes to the store and, when ``settings.read_url`` is set, reads
        (listings, statistics, registries) from that replica (the dashboard's)."""
        manager = cls.from_settings(settings, **kwargs)
        if settings.read_url is not None:
            reader = cls.for_reading(settings)
            manager.driver = ReplicaReads(manager.driver, reader.driver)
        return manager

    def on_primary(self) -> Self:
        """This manager, or, when it reads from a replica, one that reads and writes on the
        primary store (for actions that read back what they changed)."""
        primary = getattr(self.driver, "primary", None)
        if primary is None:
            return self
        clone = type(self)(primary, codec=self.codec, settings=self.settings,
                           events=self.events)
        # one recorder per bus: the clone's events are this manager's, and counted once by
        # this manager's recorder, which this manager's close() ends (a recorder of the
        # clone's own would count them again, and nobody would close it)
        clone.stats_recorder = self._record_stats()
        return clone

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Self:
        return cls.from_settings(resolve({"url": url, **overrides}))

    def close(self) -> None:
        if self.stats_recorder is not None:
            self.stats_recorder.close()  # writes the last counts while the store is open
        self.driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- enqueue --------------------------------------------------------------------------------
    def push(self, job: Job | Call, *, connection: Any = None, **options: Any) -> JobHandle:
        """Enqueue one job and return its id (an existing id for a duplicate idempotency key).

        ``connection``: your own open connection to the same database (a ``sqlite3``
        connection to the store's file, or a psycopg / PyMySQL connection); the job is written
        in your transaction and appears only if you commit. Redis and files have no
        transactions to join: ConfigError.
        """
        call = job.to_call() if isinstance(job, Job) else job
        new_job = self._build(call, self._settled(call, options), None)
        return self.push_prepared([new_job], connection=connection)[0]

    def push_many(
        self, jobs: Iterable[Job | Call], *, connection: Any = None, **options: Any
    ) -> list[JobHandle]:
        """Enqueue many jobs in one round trip; ``options`` apply to each of them.

        The options are settled first. A batch whose jobs have no idempotency key, dependency,
        delay or recurrence is then made a run of jobs at a time as the driver takes them
        (``PreparedJobs``): a store that can insert one run while the next is made
        (PostgreSQL's COPY) overlaps the two."""
        runs = self._runs(jobs, options)
        if all(_plain(settled) for _, settled in runs):
            count = sum(len(calls) for calls, _ in runs)
            return self.push_prepared(PreparedJobs(count, self._slices(runs)),
                                      connection=connection)
        return self.push_prepared([job for calls, settled in runs
                                   for job in self._build_run(calls, settled)],
                                  connection=connection)

    def push_prepared(self, new_jobs: Sequence[NewJob], *,
                      connection: Any = None) -> list[JobHandle]:
        """Store prepared jobs (one round trip), after refusing cycles and unknown dependencies.

        A duplicate of a debounced unique job replaces the pending job's arguments instead."""
        if not new_jobs:
            return []
        if isinstance(new_jobs, PreparedJobs):
            if connection is None and isinstance(self.driver, PushesRuns):
                ids = self.driver.push_runs(len(new_jobs), new_jobs.runs)
                return self._pushed_runs(new_jobs.taken, ids)
            new_jobs = new_jobs.made()
        if deps := [d for j in new_jobs for d in j.dependencies]:
            outside = set(deps) - {j.id for j in new_jobs}
            check_graph(new_jobs, {d for d in outside if self.driver.get(d) is not None})
        if connection is not None:
            check_transactional(self.driver)
            ids = self.driver.push(new_jobs, connection=connection)  # type: ignore[call-arg]
        else:
            ids = self.driver.push(new_jobs)
        return self._pushed(new_jobs, ids)

    def _pushed_runs(self, runs: list[JobRun], ids: list[str]) -> list[JobHandle]:
        """``_pushed`` of jobs pushed in runs (none has a key: each was stored as itself)."""
        recorder = self._record_stats()
        announce = self.events.wants(JOB_ENQUEUED)
        now = time.time()
        for run in runs:
            name, queue = run.template.name, run.template.queue_name
            recorder.enqueued(queue, name, now, len(run.ids))
            if announce:
                for job_id in run.ids:
                    self.events.emit(Event(JOB_ENQUEUED, job_id, name, queue, at=now))
        return JobHandle.many(ids, self)

    def _pushed(self, new_jobs: Sequence[NewJob], ids: list[str]) -> list[JobHandle]:
        """Count and announce the jobs the store took (``ids``: the store's answer, a job's
        own id or its duplicate's) and hand back their handles."""
        recorder = self._record_stats()
        # the recorder counts enqueues directly (a run of jobs of one task and queue at once);
        # an event is built only for other listeners
        announce = self.events.wants(JOB_ENQUEUED)
        now = time.time()
        queue, name, run = "", "", 0
        for index, (job, job_id) in enumerate(zip(new_jobs, ids, strict=True)):
            if job_id == job.id:
                if job.queue_name != queue or job.name != name:
                    if run:
                        recorder.enqueued(queue, name, now, run)
                    queue, name, run = job.queue_name, job.name, 0
                run += 1
                if announce:
                    self.events.emit(Event(JOB_ENQUEUED, job.id, job.name, job.queue_name,
                                           at=now))
            elif job.idempotency_mode == "debounce":
                ids[index] = self._debounce(job, job_id)
        if run:
            recorder.enqueued(queue, name, now, run)
        return JobHandle.many(ids, self)

    def _debounce(self, job: NewJob, existing_id: str) -> str:
        """Give the pending duplicate ``existing_id`` this job's arguments and delay."""
        existing = self.driver.get(existing_id)
        if existing is not None:
            body = self.codec.decode(job.payload, job_id=job.id, queue=job.queue_name)
            payload = self.codec.encode(body, job_id=existing_id, queue=existing.queue_name)
            if self.driver.replace_payload(existing_id, payload, job.delay_seconds):
                return existing_id
        return self.driver.push([job])[0]  # it started meanwhile: its key is free now

    def prepare(self, job: Job | Call, *, workflow: dict[str, Any] | None = None,
                **overrides: Any) -> NewJob:
        """Validate options and encode the payload: everything short of storing."""
        call = job.to_call() if isinstance(job, Job) else job
        return self._build(call, self._settled(call, overrides), workflow)

    def prepare_many(self, jobs: Iterable[Job | Call], **overrides: Any) -> list[NewJob]:
        """``prepare`` each job; consecutive jobs of one task with equal options (a batch)
        have those options checked once, and only their own parts (id, arguments, payload,
        derived keys) per job."""
        return [job for calls, settled in self._runs(jobs, overrides)
                for job in self._build_run(calls, settled)]

    def _runs(self, jobs: Iterable[Job | Call],
              overrides: dict[str, Any]) -> list[tuple[list[Call], Settled]]:
        """The calls of ``jobs`` in runs of consecutive calls of one task with equal options,
        each run with its options settled (checked once)."""
        runs: list[tuple[list[Call], Settled]] = []
        run: list[Call] = []
        settled: Settled | None = None
        name, options = "", None
        for job in jobs:
            call = job.to_call() if isinstance(job, Job) else job
            if settled is None or call.name != name or (
                    call.options is not options and call.options != options):
                settled = self._settled(call, overrides)
                name, options = call.name, call.options
                run = []
                runs.append((run, settled))
            run.append(call)
        return runs

    def _slices(self, runs: list[tuple[list[Call], Settled]]) -> Iterator[JobRun]:
        """The jobs of ``runs`` (of plain jobs), ``SLICE`` at a time."""
        for calls, settled in runs:
            for start in range(0, len(calls), SLICE):
                yield self._run_of(calls[start:start + SLICE], settled)

    def _build_run(self, calls: list[Call], settled: Settled) -> list[NewJob]:
        """The jobs of consecutive ``calls`` of one task with the same ``settled`` options:
        what ``_build`` gives each, with the per-job work done for all of them at once
        (``_run_of``) unless a job has parts of its own (a recurring series, or a key derived
        from its arguments)."""
        opts = settled.opts
        if len(calls) == 1 or settled.every or opts.get("unique") or \
                opts.get("unique_for") is not None:
            return [self._build(call, settled, None) for call in calls]
        return self._run_of(calls, settled).jobs()

    def _run_of(self, calls: list[Call], settled: Settled) -> JobRun:
        """The jobs of ``calls`` (one task, the same ``settled`` options, no key derived from
        their arguments), which differ only in their ids and payloads: the ids made together,
        then the payloads, and one template for the rest."""
        opts = settled.opts
        key, mode, window = idempotency(calls[0].name, calls[0].body, opts)
        if key is not None:
            check_key(key)
        ids = uuid7_many(len(calls))
        extra: dict[str, Any] = {}
        if settled.timeout_set:
            extra[TIMEOUT_SET] = True
        if settled.run_options:
            extra[RUN_OPTIONS] = settled.run_options
        bodies = [{**call.body, **extra} for call in calls] if extra else [
            call.body for call in calls]
        payloads = self.codec.encode_many(bodies, job_ids=ids, queue=settled.queue)
        template = NewJob(
            id="", name=calls[0].name, payload=b"", queue_name=settled.queue,
            priority=settled.priority, max_attempts=settled.max_attempts,
            timeout_seconds=settled.timeout_seconds, delay_seconds=settled.delay_seconds,
            dependencies=settled.dependencies, tags=settled.tags, idempotency_key=key,
            idempotency_mode=mode, idempotency_window=window, batch_id=settled.batch_id)
        return JobRun(template, ids, payloads)

    def _settled(self, call: Call, overrides: dict[str, Any]) -> Settled:
        """``_settle``, remembered for options of plain values (``settle_key``): a task
        enqueued again and again with the same options has them checked once (about 6 of a
        push's ~40 us of client CPU before the store call), then only the trace context of
        the moment is added."""
        key = settle_key(call.name, call.options, overrides)
        found = None if key is None else self._settled_by_key.get(key)
        if found is None:
            found = _settle(call, overrides)
            if key is not None:
                if len(self._settled_by_key) >= SETTLED_KEPT:
                    self._settled_by_key.clear()
                self._settled_by_key[key] = found
        if (trace_context := current_trace_context()) is not None:
            found = replace(found, run_options={**found.run_options,
                                                TRACE_OPTION: trace_context})
        return found

    def _build(self, call: Call, settled: Settled, workflow: dict[str, Any] | None) -> NewJob:
        """One job of ``call`` with options already settled: its id, body and payload."""
        job_id = uuid7()
        body = dict(call.body)
        if settled.timeout_set:
            body[TIMEOUT_SET] = True
        if settled.run_options:
            body[RUN_OPTIONS] = settled.run_options
        tags = settled.tags
        if settled.every and "series" not in (workflow or {}):
            workflow = {**(workflow or {}), "series": job_id, "n": 0}
            tags += (f"series:{job_id}",)
        if workflow:
            body[WORKFLOW] = workflow
        key, mode, window = idempotency(call.name, call.body, settled.opts)
        if key is not None:
            check_key(key)
        return NewJob(
            id=job_id,
            name=call.name,
            payload=self.codec.encode(body, job_id=job_id, queue=settled.queue),
            queue_name=settled.queue,
            priority=settled.priority,
            max_attempts=settled.max_attempts,
            timeout_seconds=settled.timeout_seconds,
            delay_seconds=settled.delay_seconds,
            dependencies=settled.dependencies,
            tags=tags,
            idempotency_key=key,
            idempotency_mode=mode,
            idempotency_window=window,
            batch_id=settled.batch_id,
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

    def attempts(self, job_id: str) -> list[Attempt]:
        """The job's attempt history, oldest first (see ``jobs.model.attempts_of``)."""
        return attempts_of(self.require(job_id), self.driver.attempt_history(job_id))

    def cancel(self, job_id: str, reason: str = "cancelled", by: str | None = None) -> bool:
        """Cancel a pending, retrying or running job (a running one learns it at heartbeat).

        The reason (and who, if given) is kept on the job; jobs waiting on it are cancelled
        too, transitively."""
        text = f"{reason} (by {by})" if by else reason
        done = self.driver.cancel(job_id, text)
        if done:
            # its event (and its dependents') names its task and queue, and the statistics
            # history counts it, also from a process that never pushed (`taskqueue cancel`)
            self._record_stats()
            cancelled_follow_ups(self, {job_id: text})
            settle_dependents(self, job_id, run_anyway=False, reason=text)
        return done

    def _record_stats(self) -> Any:
        """This client's statistics recorder, installed at its first push or cancel."""
        if self.stats_recorder is None:
            from taskqueue.observability.stats import StatsRecorder

            return StatsRecorder.install(self)
        return self.stats_recorder

    # -- workflows ------------------------------------------------------------------------------
    def batch(self, jobs: Sequence[Job | Call], *, name: str = "batch",
              on_complete: Job | Call | None = None, on_failure: Job | Call | None = None,
              **options: Any) -> str:
        """Push ``jobs`` in one round trip as a named batch; returns the batch id."""
        return batches.create(self, jobs, name, on_complete, on_failure, **options)

    def batch_status(self, batch_id: str) -> BatchStatus:
        found = batches.status(self, batch_id)
        if found is None:
            raise JobNotFound(f"no batch with id {batch_id!r}")
        return found

    def cancel_batch(self, batch_id: str, reason: str = "batch cancelled") -> int:
        return batches.cancel(self, batch_id, reason)

    def cancel_series(self, series_id: str, reason: str = "recurring job stopped") -> int:
        """Stop a recurring job: no further occurrence is pushed, and the waiting or running
        one is cancelled. Returns how many occurrences were cancelled (0 between runs)."""
        stop_series(self, series_id)
        criteria = JobFilter(tag=f"series:{series_id}",
                             states=(State.PENDING, State.RETRYING, State.PROCESSING))
        return sum(self.cancel(r.id, reason) for r in self.search(criteria))

    async def apush(self, job: Job | Call, **options: Any) -> JobHandle:
        """``push`` for asyncio applications (runs the store call in a thread)."""
        import asyncio

        return await asyncio.to_thread(self.push, job, **options)

    async def aresult(self, job_id: str, timeout: float = 0.0) -> Any:
        import asyncio

        return await asyncio.to_thread(self.result, job_id, timeout)

    def retry(self, job_id: str) -> bool:
        """Move a failed (dead-lettered) or cancelled job back to pending."""
        return self.driver.retry(job_id)

    def set_priority(self, job_id: str, priority: int | str) -> bool:
        return self.driver.set_priority(job_id, validate_priority(priority))

    def delete(self, job_id: str) -> bool:
        return self.driver.delete(job_id)

    def apply_many(self, action: str, job_ids: Sequence[str], *, reason: str = "cancelled",
                   by: str | None = None, priority: int | str | None = None) -> list[str]:
        """``retry``, ``cancel``, ``priority`` or ``delete`` on many jobs, a page of thousands
        per store statement, with the effects of the single-job action (events, cascades);
        returns the ids changed. See :mod:`taskqueue.workflows.bulk`."""
        from taskqueue.workflows.bulk import apply_many

        return apply_many(self, action, job_ids, reason=reason, by=by, priority=priority)

    # -- queues ---------------------------------------------------------------------------------
    def pause_queue(self, queue: str) -> None:
        """Stop every worker on every node from taking jobs from ``queue`` (within a second)."""
        check_queue(queue)
        self.driver.registry_put(PAUSED, queue, {"queue": queue, "since": time.time()},
                                 ttl_seconds=FOREVER)

    def resume_queue(self, queue: str) -> None:
        self.driver.registry_remove(PAUSED, queue)

    def paused_queues(self) -> list[str]:
        return [str(e["queue"]) for e in self.driver.registry_list(PAUSED)]

    def decode(self, record: JobRecord) -> Any:
        """The job's decoded body (args/kwargs or data).

        With ENCRYPTION_KEY set, an unencrypted payload raises UnencryptedPayload unless the
        migration switch is on (``taskqueue key:accept-plaintext``). A record with a field the
        driver could not decode (``jobs/unreadable.py``) raises PayloadError naming it."""
        if record.extra and (problem := unreadable(record)) is not None:
            raise PayloadError(f"stored job has fields that cannot be decoded: {problem}")
        try:
            return self.codec.decode(record.payload, job_id=record.id, queue=record.queue_name)
        except UnencryptedPayload:
            if not self.plaintext.is_on():
                raise
            return self.codec.decode(record.payload, job_id=record.id,
                                     queue=record.queue_name, allow_plaintext=True)

    def result(self, job_id: str, timeout: float = 0.0, poll: float = 0.05) -> Any:
        """The stored return value, waiting up to ``timeout`` s for the job to finish.

        Raises JobNotFound, TimeoutError if it is still running at the deadline, or
        JobFailed (with the job's exception text) if it failed or was cancelled.
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
            raise JobFailed(job_id, record.state, record.exception)
        return self.decode_result(record)

    def encode_result(self, value: Any, job_id: str) -> str:
        """Results are JSON; encrypted like payloads when a key is set."""
        encrypted = self.codec.keyring is not None and self.codec.keyring.enabled
        if value is None and not encrypted:
            return "null"  # most jobs return nothing: skip the encoder
        try:
            raw = dumps(value)
        except PayloadError:
            raw = dumps(repr(value))
        if not encrypted:
            return raw.decode()
        sealed = self.codec.encode(loads(raw), job_id=job_id, queue="result")
        return _RESULT_PREFIX + base64.b64encode(sealed).decode()

    def decode_result(self, record: JobRecord) -> Any:
        if record.result is None:
            return None
        if record.result.startswith(_RESULT_PREFIX):
            try:
                sealed = base64.b64decode(record.result[len(_RESULT_PREFIX):], validate=True)
            except ValueError as exc:  # binascii.Error
                raise PayloadError(f"stored result is not valid base64: {exc}") from None
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
        from taskqueue.observability.stats import add_history

        return add_history({"backend": self.driver.name, "queues": queues, "totals": totals,
                            "generated_at": datetime.now(UTC).isoformat()}, self.driver, per_queue)

    def prune(self, older_than: float | None = None, *, batch: int | None = PRUNE_BATCH,
              dry_run: bool = False, max_seconds: float | None = None,
              pause: float = 0.02) -> int:
        """Delete finished jobs past their retention (or older than ``older_than`` seconds,
        for completed, failed and cancelled alike), ``batch`` at a time, each batch its own
        short transaction, with a rest between two batches at least as long as the batch took
        (``pause`` at least), so workers waiting for the store get their turn; stop after
        ``max_seconds`` (the rest is left for the next call). ``dry_run``: return how many
        would be deleted, deleting nothing."""
        completed_age = self.settings.completed_retention if older_than is None else older_than
        failed_age = self.settings.failed_retention if older_than is None else older_than
        if dry_run:
            return self.driver.prune(completed_age, failed_age, dry_run=True)
        started, total = time.monotonic(), 0
        while True:
            began = time.monotonic()
            deleted = self.driver.prune(completed_age, failed_age, limit=batch)
            took = time.monotonic() - began
            total += deleted
            if batch is None or deleted < batch:
                self.prune_pending = False
                return total
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                self.prune_pending = True  # more to do: the caller comes back soon
                return total
            # rest at least as long as the batch held the store: a worker waiting for
            # SQLite's write lock retries on its own schedule and must find it free
            time.sleep(max(pause, took))


def _plain(settled: Settled) -> bool:
    """Whether jobs with these options have no idempotency key, dependency, delay or
    recurrence: they differ only in their ids and payloads, and a store may insert some while
    the rest are made."""
    opts = settled.opts
    return not (settled.dependencies or settled.delay_seconds or settled.every
                or opts.get("unique")
                or opts.get("unique_for") is not None
                or opts.get("idempotency_key") is not None)
