"""Producing and inspecting jobs: ``test``, ``jobs``, ``retry``, ``cancel``, ``failed``, batches."""

from __future__ import annotations

import getpass
import socket
import time
from datetime import datetime
from typing import Any

import click

from taskqueue.cli.output import (
    console,
    emit_json,
    get_console,
    open_manager,
    open_reader,
    queue_names,
    table,
)
from taskqueue.drivers import JobFilter
from taskqueue.errors import PayloadError
from taskqueue.jobs.builtin import TestJob
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.states import State
from taskqueue.manager import RUN_OPTIONS, WORKFLOW

CHUNK = 1000


def _priority(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return validate_priority(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("test")
@click.option("--jobs", "count", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queue", default="default", show_default=True, callback=queue_names)
@click.option("--priority", default="5", show_default=True, callback=_priority,
              help="0..1000 or low/normal/high/urgent.")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, help="Seconds before due.")
@click.option("--sleep", type=click.FloatRange(min=0), default=0.0,
              help="Seconds of simulated work per job.")
@click.option("--payload-bytes", type=click.IntRange(min=0), default=0,
              help="Pad each payload to about this size (compression/encryption demo).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def test(ctx: click.Context, count: int, queue: str, priority: int, delay: float, sleep: float,
         payload_bytes: int, as_json: bool) -> None:
    """Enqueue TestJobs (alias: queue:test)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    manager = open_manager(ctx)
    started = time.perf_counter()
    ids: list[str] = []
    with Progress(TextColumn("[bold]enqueueing"), BarColumn(), MofNCompleteColumn(),
                  console=get_console(), disable=as_json) as progress:
        bar = progress.add_task("enqueue", total=count)
        for offset in range(0, count, CHUNK):
            batch = [TestJob({"data": "example", "n": offset + i, "sleep": sleep,
                              **({"padding": "x" * payload_bytes} if payload_bytes else {})},
                             queue=queue, priority=priority, delay=delay or None,
                             tags=["test"])
                     for i in range(min(CHUNK, count - offset))]
            ids.extend(manager.push_many(batch))
            progress.update(bar, advance=len(batch))
    elapsed = time.perf_counter() - started
    if as_json:
        emit_json({"enqueued": len(ids), "queue": queue, "seconds": elapsed,
                   "first_id": ids[0], "last_id": ids[-1]})
    else:
        console.print(f"enqueued [bold]{len(ids)}[/] TestJobs on queue [bold]{queue}[/] "
                      f"(priority {priority}) in {elapsed:.2f}s "
                      f"({len(ids) / elapsed:.0f} jobs/s) into {manager.driver.name}")
    manager.close()


@click.group("jobs")
def jobs() -> None:
    """Search and inspect jobs."""


@jobs.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in State]))
@click.option("--queue", "queues", multiple=True)
@click.option("--name", "names", multiple=True, help="Task name.")
@click.option("--tag")
@click.option("--batch")
@click.option("--error", help="Text in the exception (of failed and retrying jobs, unless "
              "--state says otherwise).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--with-error", is_flag=True, help="Add a column with each job's error.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_jobs(ctx: click.Context, states: tuple[str, ...], queues: tuple[str, ...],
              names: tuple[str, ...], tag: str | None, batch: str | None, error: str | None,
              limit: int, as_json: bool, with_error: bool = False) -> None:
    """List jobs, newest first."""
    manager = open_reader(ctx)
    if error is not None and not states:  # other states' texts are reasons, not errors
        states = (State.FAILED.value, State.RETRYING.value)
    criteria = JobFilter(states=tuple(State(s) for s in states), queues=queues, names=names,
                         tag=tag, batch_id=batch, exception_contains=error, limit=limit)
    records = manager.search(criteria)
    if as_json:
        emit_json([_readable(manager, r) for r in records])
    else:
        title = f"{len(records)} jobs"
        if len(records) == limit:  # maybe more: say how many, and how to see them
            total = manager.driver.count(criteria)
            if total > limit:
                title = f"{limit} of {total} jobs shown (newest first; --limit N for more)"
        columns = ["id", "queue", "name", "state", "priority", "attempts", "created"]
        rows = [[r.id, r.queue_name, r.name, r.state.value, r.priority,
                 f"{r.attempts}/{r.max_attempts}", r.created_at.strftime("%Y-%m-%d %H:%M:%S")]
                for r in records]
        if with_error:
            columns.append("error")
            for row, r in zip(rows, records, strict=True):
                row.append(error_line(r.exception))
        table(title, columns, rows)
    manager.close()


def _readable(manager: Any, record: JobRecord) -> dict[str, Any]:
    """The record's fields with its result decoded (and decrypted with the key when it is set):
    the value the job returned, not the stored ``tq1:`` text."""
    data: dict[str, Any] = record.to_dict()
    if record.result is not None:
        try:
            data["result"] = manager.decode_result(record)
        except PayloadError as exc:
            data["result"] = f"(cannot be read: {exc})"
    return data


def error_line(exception: str | None, width: int = 60) -> str:
    """The last line of a traceback (``ValueError: bad input``), cut to ``width``."""
    if not exception:
        return ""
    lines = [line.strip() for line in exception.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= width else last[:width - 1] + "…"


@jobs.command("show")
@click.argument("job_id")
@click.option("--payload", is_flag=True, help="Also decode and show the arguments.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, job_id: str, payload: bool, as_json: bool) -> None:
    """Every field of one job."""
    manager = open_reader(ctx)
    record = manager.require(job_id)
    data = _readable(manager, record)
    try:  # a record whose payload cannot be read (wrong key, corrupt) is still shown
        body = manager.decode(record)
    except PayloadError as exc:
        data["workflow"] = {"error": f"payload cannot be read: {exc}"}
    else:
        data["workflow"] = describe_workflow(body)
        if payload:
            data["arguments"] = ({k: v for k, v in body.items() if not k.startswith("_")}
                                 if isinstance(body, dict) else body)
    attempts = manager.attempts(job_id)
    if as_json:
        emit_json({**data, "attempt_history": [a.to_dict() for a in attempts]})
    else:
        table(f"job {job_id}", ["field", "value"],
              [[k, v] for k, v in data.items() if k != "exception"])
        if attempts:
            table("attempts", ["attempt", "worker", "started", "ended", "outcome", "error"],
                  [[a.number, a.worker or "", _when(a.started_at), _when(a.ended_at),
                    a.outcome, error_line(a.error)] for a in attempts])
        if record.exception:
            console.print("[bold]exception[/]\n" + record.exception)
    manager.close()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else ""



def describe_workflow(body: dict[str, Any]) -> dict[str, Any]:
    """Chain position, group, recurring series, options: what `jobs show` reports."""
    if not isinstance(body, dict):
        return {"error": f"payload is a JSON {type(body).__name__}, not an object"}
    wf = body.get(WORKFLOW)
    wf = wf if isinstance(wf, dict) else {}
    out: dict[str, Any] = {}
    if "chain" in wf:
        out["chain"] = wf["chain"]
        out["chain_step"] = f"{wf.get('step', '?')} of {wf.get('of', '?')}"
    if "group" in wf:
        out["group"] = wf["group"]
        out["fan_in"] = bool(wf.get("fan_in"))
    if "series" in wf:
        out["series"] = wf["series"]
        out["occurrence"] = wf.get("n", 0)
    if body.get(RUN_OPTIONS):
        out["options"] = body[RUN_OPTIONS]
    return out


@click.command("batch:status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def batch_status(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """Progress of a batch."""
    manager = open_reader(ctx)
    status = manager.batch_status(batch_id)
    manager.close()
    if as_json:
        emit_json(status.to_dict())
        return
    table(f"batch {status.name} ({batch_id})", ["field", "value"],
          [[k, v] for k, v in status.to_dict().items() if k not in ("id", "name")])


@click.command("batch:cancel")
@click.argument("batch_id")
@click.pass_context
def batch_cancel(ctx: click.Context, batch_id: str) -> None:
    """Cancel every unfinished job of a batch."""
    manager = open_manager(ctx)
    console.print(f"cancelled {manager.cancel_batch(batch_id)} jobs")
    manager.close()


@click.command("failed")
@click.option("--queue", "queues", multiple=True)
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def failed(ctx: click.Context, queues: tuple[str, ...], limit: int, as_json: bool) -> None:
    """The dead letter queue (alias: queue:failed)."""
    ctx.invoke(list_jobs, states=("failed",), queues=queues, names=(), tag=None, batch=None,
               error=None, limit=limit, as_json=as_json, with_error=True)


@click.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every job in the dead letter queue.")
@click.option("--queue", "queues", multiple=True, help="With --all-failed: only these queues.")
@click.pass_context
def retry(ctx: click.Context, job_ids: tuple[str, ...], all_failed: bool,
          queues: tuple[str, ...]) -> None:
    """Move failed or cancelled jobs back to pending (alias: queue:retry)."""
    if not job_ids and not all_failed:
        raise click.UsageError("give job ids or --all-failed")
    manager = open_manager(ctx)
    ids = list(job_ids)
    if all_failed:
        criteria = JobFilter(states=(State.FAILED,), queues=queues, limit=1_000_000)
        ids += [r.id for r in manager.search(criteria)]
    done = 0
    for job_id in ids:
        if manager.retry(job_id):
            done += 1
        elif not all_failed:
            console.print(f"{job_id}: {_refusal(manager, job_id, 'retried', RETRYABLE)}")
    console.print(f"retried {done} of {len(ids)} jobs")
    manager.close()
    if done < len(ids) and not all_failed:
        ctx.exit(1)


@click.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason", default="cancelled", show_default=True)
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[str, ...], reason: str) -> None:
    """Cancel pending, retrying or running jobs."""
    manager = open_manager(ctx)
    who = f"{getpass.getuser()}@{socket.gethostname()} via CLI"
    done = 0
    for job_id in job_ids:
        if manager.cancel(job_id, reason, by=who):
            done += 1
        else:
            console.print(f"{job_id}: {_refusal(manager, job_id, 'cancelled', CANCELLABLE)}")
    console.print(f"cancelled {done} of {len(job_ids)} jobs")
    manager.close()
    if done < len(job_ids):
        ctx.exit(1)


RETRYABLE = (State.FAILED, State.CANCELLED)
CANCELLABLE = (State.PENDING, State.RETRYING, State.PROCESSING)


def _refusal(manager: Any, job_id: str, verb: str, allowed: tuple[State, ...]) -> str:
    """Why a job was not retried/cancelled: unknown, or in a state the verb does not take."""
    record = manager.get(job_id)
    if record is None:
        return "no such job (wrong id, or pruned)"
    if record.state in allowed:  # it changed state under us
        return f"not {verb}: it changed state meanwhile (now {record.state.value}); try again"
    names = ", ".join(s.value for s in allowed)
    return f"not {verb}: it is {record.state.value}; only {names} jobs can be {verb}"


COMMANDS = [test, jobs, failed, retry, cancel, batch_status, batch_cancel]
