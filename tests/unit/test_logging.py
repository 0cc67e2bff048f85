"""Structured logs: every job event carries the job fields; secrets and payloads never appear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager
from taskqueue.observability import events as ev
from taskqueue.observability.logging import (
    JOB_FIELDS,
    JsonFormatter,
    TextFormatter,
    configure,
    log_events,
    scrub,
)

JOB_KINDS = (ev.JOB_ENQUEUED, ev.JOB_STARTED, ev.JOB_COMPLETED, ev.JOB_RETRIED, ev.JOB_FAILED,
             ev.JOB_CANCELLED, ev.JOB_LEASE_LOST)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[tuple[ev.EventBus, Capture]]:
    logger = logging.getLogger("test.taskqueue.jobs")
    logger.setLevel(logging.DEBUG)
    handler = Capture()
    logger.addHandler(handler)
    bus = ev.EventBus()
    log_events(bus, logger)
    try:
        yield bus, handler
    finally:
        logger.removeHandler(handler)


def as_json(record: logging.LogRecord) -> dict[str, object]:
    data = json.loads(JsonFormatter().format(record))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("kind", JOB_KINDS)
def test_every_job_event_carries_the_job_fields(captured: tuple[ev.EventBus, Capture],
                                                kind: str) -> None:
    bus, handler = captured
    bus.emit(ev.Event(kind, job_id="j1", name="billing.charge", queue="billing", attempt=2,
                      duration=0.25, worker_id="host:1:abc", error="ValueError: no"))
    (record,) = handler.records
    data = as_json(record)
    assert {k: data[k] for k in JOB_FIELDS} == {
        "job_id": "j1", "job_name": "billing.charge", "queue": "billing", "attempt": 2,
        "duration": 0.25, "worker_id": "host:1:abc"}
    assert data["event"] == kind
    assert data["logger"] == "test.taskqueue.jobs"
    assert "billing.charge j1 in 0.250s" in str(data["message"])


def test_fields_not_known_yet_are_present_as_null(captured: tuple[ev.EventBus, Capture]) -> None:
    bus, handler = captured
    bus.emit(ev.Event(ev.JOB_ENQUEUED, job_id="j1", name="t", queue="q"))
    data = as_json(handler.records[0])
    assert all(k in data for k in JOB_FIELDS)
    assert data["attempt"] is None and data["duration"] is None and data["worker_id"] is None


def test_levels_follow_severity(captured: tuple[ev.EventBus, Capture]) -> None:
    bus, handler = captured
    for kind in (ev.JOB_COMPLETED, ev.JOB_RETRIED, ev.JOB_FAILED, ev.JOB_LEASE_LOST,
                 ev.WORKER_HEARTBEAT):
        bus.emit(ev.Event(kind, job_id="j", queue="q"))
    assert [r.levelname for r in handler.records] == ["INFO", "WARNING", "ERROR", "WARNING",
                                                      "DEBUG"]


def test_event_fields_clashing_with_record_attributes_are_kept(
        captured: tuple[ev.EventBus, Capture]) -> None:
    bus, handler = captured
    bus.emit(ev.Event(ev.JOB_POSTPONED, job_id="j", name="t", queue="q",
                      fields={"name": "x", "message": "m", "reason": "rate limit"}))
    data = as_json(handler.records[0])
    assert data["field_name"] == "x" and data["field_message"] == "m"
    assert data["reason"] == "rate limit" and data["job_name"] == "t"


def test_secrets_and_payloads_are_masked() -> None:
    record = logging.makeLogRecord({
        "name": "taskqueue", "levelno": logging.ERROR, "levelname": "ERROR",
        "msg": "cannot connect to %s",
        "args": ("postgresql://app:hunter2@db.internal:5432/jobs",),
        "password": "hunter2", "api_token": "t0k3n", "payload": {"card": "4111"},
        "kwargs": {"ssn": "123"}, "idempotency_key": "k", "detail": "ENCRYPTION_KEY="
        "base64:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "queue": "billing"})
    for text in (JsonFormatter().format(record), TextFormatter("%(message)s").format(record)):
        for secret in ("hunter2", "t0k3n", "4111", "123", "c2VjcmV0c2VjcmV0"):
            assert secret not in text
        assert "postgresql://app:***@db.internal" in text
        assert "billing" in text
    assert scrub("redis://:pw@h:6379/0 and http://example.com/x") == \
        "redis://:***@h:6379/0 and http://example.com/x"


def test_a_real_job_logs_its_fields_but_never_its_arguments(tmp_path: Path) -> None:
    import tests.apps.sample_tasks as tasks
    from tests.integration.conftest import drain

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.taskqueue.realjob")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    with QueueManager.from_url(f"sqlite:///{tmp_path / 'q.db'}") as manager:
        log_events(manager.events, logger)
        job_id = tasks.add.push((40, 2), manager=manager, queue="math")
        tasks.mark.push((str(tmp_path / "ledger-hunter2"),), manager=manager, queue="math")
        drain(manager, queues=["math"])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    kinds = [(entry["event"], entry["job_id"]) for entry in lines]
    assert (ev.JOB_ENQUEUED, job_id) in kinds and (ev.JOB_COMPLETED, job_id) in kinds
    done = next(e for e in lines if e["event"] == ev.JOB_COMPLETED and e["job_id"] == job_id)
    assert done["job_name"] == "tests.add" and done["queue"] == "math"
    assert done["attempt"] == 1 and done["duration"] >= 0 and done["worker_id"]
    assert "hunter2" not in stream.getvalue()


def test_configure_installs_one_json_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", "info")
    configure("json", "info")  # idempotent
    logger = logging.getLogger("taskqueue")
    try:
        assert sum(getattr(h, "_taskqueue", False) for h in logger.handlers) == 1
        logging.getLogger("taskqueue.worker").info("hello", extra={"worker_id": "w1"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(line) | {"message": "hello", "worker_id": "w1"} == json.loads(line)
    finally:
        configure("text", "warning")
