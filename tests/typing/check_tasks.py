"""Defining and enqueueing jobs, as an application does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from taskqueue import (
    Call,
    Job,
    JobHandle,
    JobRecord,
    NonRetryable,
    Priority,
    QueueManager,
    State,
    Task,
    TaskQueueError,
    chain,
    current_job,
    group,
    task,
)


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue="emails", max_attempts=5, timeout=30, retry_backoff=2.0)
def send_welcome(user_id: int, *, template: str = "welcome") -> None:
    ctx = current_job()
    assert_type(ctx.attempt, int)
    if ctx.attempt > 3:
        raise NonRetryable("give up")


@task(name="reports.build")
async def build_report(day: str) -> dict[str, int]:
    return {"rows": len(day)}


class SendInvoice(Job):
    queue = "billing"
    priority = Priority.HIGH

    def handle(self) -> None:
        print(self.data["order"])


def enqueue(manager: QueueManager) -> None:
    typed: Task[[int, int], int] = add
    assert_type(typed(1, 2), int)
    handle = add.delay(1, 2)
    assert_type(handle, JobHandle)
    assert_type(handle.id, str)
    value: Any = handle.wait(timeout=5)
    print(value, handle.state is State.COMPLETED)
    send_welcome.delay(42, template="vip")
    send_welcome.push([42], {"template": "vip"}, priority="high", delay=timedelta(minutes=5))
    build_report.push(["2030-01-01"], eta=datetime(2030, 1, 1, tzinfo=UTC), manager=manager)
    assert_type(add.run_now(2, 3), int)
    step: Call = add.s(1, 2).set(queue="math")
    manager.push(step)
    manager.push(SendInvoice({"order": 7}, priority=Priority.URGENT, tags=["vip"]))
    ids: list[JobHandle] = manager.push_many([SendInvoice({"order": n}) for n in range(3)])
    record: JobRecord | None = manager.get(ids[0])
    if record is not None:
        print(record.state, record.attempts)
    chain(add.s(1, 2), add.s(3, 4))
    group(add.s(1, 1), add.s(2, 2))
    manager.cancel(ids[0], "not needed", by="ops")
    stats: dict[str, Any] = manager.stats()
    print(stats["totals"])


async def enqueue_async(manager: QueueManager) -> None:
    handle = await add.adelay(1, 2)
    assert_type(handle, JobHandle)
    other = await manager.apush(send_welcome.s(7))
    result: Any = await manager.aresult(other, timeout=10)
    print(result)


def configure() -> QueueManager:
    try:
        return QueueManager.from_url("sqlite:///storage/queue.db").make_default()
    except TaskQueueError as exc:
        raise SystemExit(exc.exit_code) from exc
