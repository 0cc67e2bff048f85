"""Recurring jobs: ``schedule:parse``, ``schedule:add``, ``schedule:list``, ``schedule:remove``,
``schedule:pause``, ``schedule:resume`` and the scheduler loop ``schedule:run``."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from taskqueue.cli.output import console, emit_json, import_apps, open_manager, table
from taskqueue.errors import TaskQueueError
from taskqueue.scheduling.cron import ScheduleError, describe_zone_offset
from taskqueue.scheduling.scheduler import Scheduler, Tick
from taskqueue.scheduling.schedules import (
    MISSED_POLICIES,
    Schedule,
    ScheduleStore,
    looks_like_cron,
)
from taskqueue.worker.signals import guarded


@contextmanager
def _exits(ctx: click.Context) -> Iterator[None]:
    """Turn taskqueue errors into ``error: ...`` on stderr and the error's exit code."""
    try:
        yield
    except TaskQueueError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(exc.exit_code)


def _json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=what)
    return parsed


@click.command("schedule:parse")
@click.argument("text")
@click.option("--tz", "tz", default=None, help="IANA time zone for the run times [UTC].")
@click.option("--count", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def parse(ctx: click.Context, text: str, tz: str | None, count: int, as_json: bool) -> None:
    """Show the cron form of TEXT (cron or English) and its next run times."""
    with _exits(ctx):
        cron_text = text if looks_like_cron(text) else None
        preview = Schedule.create("preview", "preview", cron=cron_text,
                                  every=None if cron_text else text, timezone=tz)
        cron, tz, period = preview.cron, preview.timezone, preview.period
        runs = preview.next_runs(count)
    if as_json:
        emit_json({"text": text, "cron": cron, "timezone": tz,
                   "period": {"count": period.count, "unit": period.unit} if period else None,
                   "next": [r.isoformat() for r in runs]})
        return
    click.echo(f"cron:      {cron}")
    if period:
        click.echo(f"interval:  only every {period.count} {period.unit}s of those times, "
                   "counted from when the schedule is added (cron cannot express it)")
    click.echo(f"time zone: {tz}")
    click.echo(f"next {count} runs:")
    for run in runs:
        click.echo(f"  {describe_zone_offset(run, tz)}   {run:%Y-%m-%d %H:%M:%S} UTC")


@click.command("schedule:add")
@click.argument("name")
@click.option("--task", "task_name", required=True, help="Registered task name.")
@click.option("--cron", default=None, help="Cron expression (5 or 6 fields, or @daily ...).")
@click.option("--every", default=None, help="English schedule, e.g. 'weekday at 9am'.")
@click.option("--tz", "tz", default=None, help="IANA time zone, e.g. Europe/Paris [UTC].")
@click.option("--args", "args_json", default=None, metavar="JSON", help="Positional args.")
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON", help="Keyword args.")
@click.option("--queue", default=None, help="Queue for the jobs (else the task's own).")
@click.option("--priority", type=int, default=None)
@click.option("--missed", type=click.Choice(MISSED_POLICIES), default="skip",
              show_default=True, help="Runs missed while no scheduler ran: skip, run the "
                                      "latest once, or run all (at most 100).")
@click.option("--condition", "conditions", multiple=True,
              help="Skip a run unless this holds, e.g. 'cpu < 80' (repeatable).")
@click.option("--replace", is_flag=True, help="Overwrite an existing schedule's definition.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--app", "apps", multiple=True,
              help="Module(s) defining your tasks: --task must be one of them (else exit 2).")
@click.pass_context
def add(ctx: click.Context, name: str, task_name: str, cron: str | None, every: str | None,
        tz: str | None, args_json: str | None, kwargs_json: str | None, queue: str | None,
        priority: int | None, missed: str, conditions: tuple[str, ...], replace: bool,
        paused: bool, apps: tuple[str, ...]) -> None:
    """Create (or with --replace, update) the schedule NAME."""
    args, kwargs = _json_arg(args_json, "--args", list), _json_arg(kwargs_json, "--kwargs", dict)
    options = {k: v for k, v in {"queue": queue, "priority": priority}.items() if v is not None}
    import_apps(apps)
    with _exits(ctx):
        if apps:
            _check_task(task_name, apps)
        else:
            click.echo(f"note: task name {task_name!r} not checked; give --app MODULE to check "
                       "it against your tasks", err=True)
        schedule = Schedule.create(name, task_name, cron=cron, every=every, timezone=tz,
                                   args=args, kwargs=kwargs, missed=missed,
                                   conditions=conditions, paused=paused, **options)
        manager = open_manager(ctx)
        try:
            stored = ScheduleStore(manager.driver).add(schedule, replace_existing=replace)
        finally:
            manager.close()
    first = stored.next_runs(1)[0]
    console.print(f"schedule {stored.name}: {stored.cron} ({stored.timezone}); next run "
                  f"{describe_zone_offset(first, stored.timezone)}"
                  + (" [paused]" if stored.paused else ""))


def _check_task(task_name: str, apps: tuple[str, ...]) -> None:
    """Refuse a task name the imported modules do not register (a typo would only show up as
    failed jobs at every run)."""
    import difflib

    from taskqueue.jobs.definition import REGISTRY

    if task_name in REGISTRY:
        return
    hint = difflib.get_close_matches(task_name, REGISTRY, n=1)
    known = ", ".join(sorted(REGISTRY)[:20]) or "none"
    raise ScheduleError(f"no task named {task_name!r} is defined by {', '.join(apps)}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else f"; known: {known}"))


@click.command("schedule:list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every schedule with its next and last run."""
    manager = open_manager(ctx)
    try:
        schedules = ScheduleStore(manager.driver).list()
    finally:
        manager.close()
    rows = [_row(s) for s in schedules]
    if as_json:
        emit_json(rows)
        return
    table(f"{len(rows)} schedules", ["name", "task", "when", "zone", "next run", "last run",
                                     "missed", "state"],
          [[r["name"], r["task"], r["text"] or r["cron"], r["timezone"], r["next_run_local"],
            r["last_fire_local"] or "-", r["missed"], "paused" if r["paused"] else "active"]
           for r in rows])


def _row(schedule: Schedule) -> dict[str, Any]:
    data = schedule.to_dict()
    runs, problem = schedule.upcoming(1)
    data["next_run"] = runs[0].isoformat() if runs else None
    data["next_run_local"] = (describe_zone_offset(runs[0], schedule.timezone) if runs
                              else f"never: {problem}")
    data["problem"] = problem
    last = schedule.last_fire
    data["last_fire_local"] = describe_zone_offset(last, schedule.timezone) if last else None
    return data


def _named(action: str, help_text: str) -> click.Command:
    """``schedule:remove`` / ``pause`` / ``resume``: one verb on one named schedule."""

    @click.command(f"schedule:{action}", help=help_text)
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with _exits(ctx):
            manager = open_manager(ctx)
            try:
                getattr(ScheduleStore(manager.driver), action)(name)
            finally:
                manager.close()
        console.print(f"schedule {name}: {action}d")

    return command


remove = _named("remove", "Delete the schedule NAME (jobs already enqueued stay).")
pause = _named("pause", "Stop enqueueing runs of NAME until it is resumed.")
resume = _named("resume", "Enqueue runs of NAME again (runs missed while paused are skipped).")


@click.command("schedule:run")
@click.option("--once", is_flag=True, help="One tick (take the lock, enqueue what is due).")
@click.option("--tick", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between checks.")
@click.option("--lock-ttl", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Leader lock TTL: a standby takes over within this after a leader dies.")
@click.option("--grace", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Runs at most this late are always enqueued; older ones follow --missed.")
@click.option("--app", "apps", multiple=True,
              help="Module(s) defining the tasks (their default queue and options apply).")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the tick as JSON.")
@click.pass_context
def run(ctx: click.Context, once: bool, tick: float, lock_ttl: float, grace: float,
        apps: tuple[str, ...], as_json: bool) -> None:
    """Run the scheduler: enqueue due runs while holding the leader lock."""
    import_apps(apps)
    with _exits(ctx):
        manager = open_manager(ctx)
        scheduler = Scheduler(manager, tick=tick, lock_ttl=lock_ttl, grace=grace)
        try:
            if once:
                _report(scheduler.run_once(), as_json)
                scheduler.close()
            else:
                scheduler.run(_stop_on_signals())
        finally:
            manager.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: guarded(stop.set))
    return stop


def _report(tick: Tick, as_json: bool) -> None:
    if as_json:
        emit_json({"leader": tick.leader, "now": tick.now.isoformat(),
                   "fired": [{"schedule": f.schedule, "fire": f.fire.isoformat(),
                              "job_id": f.job_id, "skipped": f.skipped} for f in tick.fired]})
        return
    if not tick.leader:
        console.print("another scheduler holds the leader lock; nothing done")
        return
    enqueued = [f for f in tick.fired if f.job_id]
    console.print(f"enqueued {len(enqueued)} runs, skipped {len(tick.fired) - len(enqueued)}")
    for fired in tick.fired:
        console.print(f"  {fired.schedule} @ {fired.fire.isoformat()}: "
                      f"{fired.job_id or 'skipped: ' + str(fired.skipped)}")


COMMANDS = [parse, add, list_, remove, pause, resume, run]
