"""OpenTelemetry: a job's run is a child span of the request that enqueued it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import tests.apps.sample_tasks as tasks  # noqa: E402
from taskqueue import QueueManager  # noqa: E402
from taskqueue.manager import RUN_OPTIONS  # noqa: E402
from taskqueue.observability.tracing import TRACE_OPTION  # noqa: E402
from tests.integration.conftest import drain  # noqa: E402

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_taskqueue_test", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._taskqueue_test = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def body_of(manager: QueueManager, job_id: str) -> dict[str, Any]:
    record = manager.require(job_id)
    body = manager.decode(record)
    assert isinstance(body, dict)
    return body


def run_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("run ")]


def test_a_job_runs_under_the_request_that_enqueued_it(manager: QueueManager,
                                                       spans: InMemorySpanExporter,
                                                       ledger: str) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /signup") as request:
        job_id = tasks.add.push((1, 2), manager=manager)
        failing = tasks.permanent.push((ledger,), manager=manager)
    context = request.get_span_context()
    carried = body_of(manager, job_id)[RUN_OPTIONS][TRACE_OPTION]
    assert f"{context.trace_id:032x}" in carried["traceparent"]
    drain(manager)

    by_job = {s.attributes["messaging.message.id"]: s for s in run_spans(spans)}
    ok, bad = by_job[job_id], by_job[failing]
    for span in (ok, bad):
        assert span.parent is not None and span.parent.span_id == context.span_id
        assert span.context.trace_id == context.trace_id
        assert span.kind == SpanKind.CONSUMER
    assert ok.name == "run tests.add" and ok.attributes["taskqueue.outcome"] == "ok"
    assert ok.attributes["messaging.destination.name"] == "default"
    assert bad.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in bad.events)


def test_spans_made_inside_a_job_are_its_children(manager: QueueManager,
                                                  spans: InMemorySpanExporter) -> None:
    from taskqueue import task

    @task(name="tests.tracing.inner")
    def inner() -> None:
        with trace.get_tracer("job").start_as_current_span("query"):
            pass

    inner.push(manager=manager)
    drain(manager)
    (job_span,) = run_spans(spans)
    (query,) = [s for s in spans.get_finished_spans() if s.name == "query"]
    assert query.parent is not None and query.parent.span_id == job_span.context.span_id


def test_no_current_span_means_nothing_carried(manager: QueueManager,
                                               spans: InMemorySpanExporter) -> None:
    job_id = tasks.add.push((1, 2), manager=manager)
    assert TRACE_OPTION not in body_of(manager, job_id).get(RUN_OPTIONS, {})
    drain(manager)
    (span,) = run_spans(spans)
    assert span.parent is None
