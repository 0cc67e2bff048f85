"""Optional OpenTelemetry tracing: a job's run appears under the request that enqueued it.

Only active when ``opentelemetry-api`` is installed (``pip install taskqueue-py[otel]``) *and* in
use in the process: the application imported ``opentelemetry.trace`` (to configure a tracer
provider or open spans), or ``OTEL_PYTHON_TRACER_PROVIDER`` names a provider.  Until then
nothing here imports OpenTelemetry, :func:`current_trace_context` returns None at the cost of a
dictionary lookup, and the middleware lets every job through untouched.

* At enqueue, :func:`current_trace_context` returns the W3C ``traceparent`` (and
  ``tracestate``/baggage) of the current span, if there is one; the manager stores it among
  the job's run options (``_opts["_trace"]``, inside the encrypted payload), so it reaches the
  worker's middleware without decoding the payload twice.
* At run time, :class:`TracingMiddleware` (installed in every worker) opens a CONSUMER span
  ``run <task>`` whose parent is that context, makes it current while the job runs (spans the
  job creates are its children), and ends it with the outcome: error status and the exception
  for failures, ``taskqueue.outcome`` for every run.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

from taskqueue.middleware import Middleware, Postpone, register_default

if TYPE_CHECKING:
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord
    from taskqueue.middleware import Outcome, WorkerHost

#: ``OTEL_PYTHON_TRACER_PROVIDER`` makes the API load a provider without the application
#: importing anything.
_PROVIDER_FROM_ENV = bool(os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"))
#: The OpenTelemetry API modules once loaded (see :func:`_otel`); False: not installed.
_api: Any = None


def _otel() -> Any:
    """The OpenTelemetry API (a namespace of its modules), or None while tracing is not in use:
    until the application has imported ``opentelemetry.trace``, nothing can have configured a
    tracer provider or opened a span, so there is nothing to propagate or record."""
    global _api
    if _api is None:
        if "opentelemetry.trace" not in sys.modules and not _PROVIDER_FROM_ENV:
            return None
        try:
            from opentelemetry import context, propagate, trace
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError:  # pragma: no cover - exercised where the extra is not installed
            _api = False
            return None
        _api = types.SimpleNamespace(context=context, propagate=propagate, trace=trace,
                                     SpanKind=SpanKind, Status=Status, StatusCode=StatusCode)
    return _api or None


def preload() -> None:
    """Load the OpenTelemetry API now if this process uses it (the fork server calls this
    once: redis-py 8 alone loads ``opentelemetry`` when it is installed, and every forked
    worker then imported ``opentelemetry.propagate`` and friends on its first job, ~25 ms of
    CPU every 1,000 jobs)."""
    _otel()


#: Run-option key carrying the trace context from enqueue to execution.
TRACE_OPTION = "_trace"


def current_trace_context() -> dict[str, str] | None:
    """The W3C trace context of the current span, or None (no OpenTelemetry, no span)."""
    otel = _otel()
    if otel is None or not otel.trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    otel.propagate.inject(carrier)
    return carrier or None


class TracingMiddleware(Middleware):
    """One span per job run, child of the context the job carries."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._worker_id = ""
        self._tracer: Any = None

    def setup(self, manager: WorkerHost, worker_id: str) -> None:
        self._worker_id = worker_id
        self._tracer = None

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        otel = _otel()
        if otel is None:
            return None  # OpenTelemetry not in use in this process
        trace = otel.trace
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return None  # no SDK configured: spans would be no-ops, skip the cost
        if self._tracer is None:
            self._tracer = trace.get_tracer("taskqueue")
        carrier = options.get(TRACE_OPTION)
        parent = otel.propagate.extract(carrier) if isinstance(carrier, dict) else None
        span = self._tracer.start_span(
            f"run {job.name}", context=parent, kind=otel.SpanKind.CONSUMER,
            attributes={"messaging.system": "taskqueue", "messaging.operation": "process",
                        "messaging.destination.name": job.queue_name,
                        "messaging.message.id": job.id, "taskqueue.task": job.name,
                        "taskqueue.attempt": job.attempts,
                        "taskqueue.worker_id": self._worker_id})
        token = otel.context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._open[job.id] = (span, token)
        return None

    def after_run(self, job: JobRecord, ctx: JobContext, outcome: Outcome) -> None:
        if not self._open:  # nothing traced (this thread added its own span before the run)
            return
        with self._lock:
            opened = self._open.pop(job.id, None)
        if opened is None:
            return
        span, token = opened
        otel = _otel()
        span.set_attribute("taskqueue.outcome", outcome.kind.value)
        if outcome.error is not None and outcome.kind.value == "error":
            span.record_exception(outcome.error)
            span.set_status(otel.Status(otel.StatusCode.ERROR, type(outcome.error).__name__))
        span.end()
        otel.context.detach(token)


register_default(TracingMiddleware)
