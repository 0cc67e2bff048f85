"""Operating the store: ``stats``, ``workers``, ``migrate``, ``prune``, ``key:generate``."""

from __future__ import annotations

import time

import click

from taskqueue.cli.output import (
    console,
    duration,
    emit_json,
    open_manager,
    open_reader,
    queue_names,
    table,
)
from taskqueue.codec import generate_key
from taskqueue.drivers import open_driver
from taskqueue.jobs.states import State


@click.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", type=click.FloatRange(min=0.2), default=None, metavar="SECONDS",
              help="Refresh every SECONDS until interrupted.")
@click.option("--tasks", is_flag=True,
              help="Per-task throughput, failure rate and run time p50/p95 over --range.")
@click.option("--range", "window", type=click.Choice(["1h", "6h", "24h", "7d"]), default="24h",
              show_default=True, help="With --tasks: the period (7d reads hourly buckets).")
@click.pass_context
def stats(ctx: click.Context, as_json: bool, watch: float | None, tasks: bool,
          window: str) -> None:
    """Counts per queue and state, average priority, throughput (--tasks: per task)."""
    from taskqueue.cli.observe import print_task_metrics
    from taskqueue.observability.stats_tasks import task_metrics

    manager = open_reader(ctx)
    try:
        while True:
            data = task_metrics(manager.driver, window) if tasks else manager.stats()
            if as_json:
                emit_json(data)
            elif tasks:
                print_task_metrics(data)
            else:
                _print_stats(data)
            if watch is None:
                break
            time.sleep(watch)
    except KeyboardInterrupt:
        pass
    finally:
        manager.close()


def _print_stats(data: dict[str, object]) -> None:
    queues = data["queues"]
    totals = data["totals"]
    assert isinstance(queues, dict) and isinstance(totals, dict)
    states = [s.value for s in State]
    rows = [[name, *(q[s] for s in states), _fmt(q["avg_priority"]),
             q["completed_last_minute"]] for name, q in queues.items()]
    rows.append(["[bold]total", *(totals[s] for s in states), _fmt(totals["avg_priority"]),
                 totals["completed_last_minute"]])
    table(f"taskqueue on {data['backend']}", ["queue", *states, "avg priority",
                                              "done/min"], rows)
    from taskqueue.cli.observe import print_history

    print_history(data)


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "-"


@click.group("workers", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """Live workers (each refreshes its entry within a second of a change); `workers pause ID`
    and `workers resume ID` pause or resume one."""
    if ctx.invoked_subcommand is not None:
        return
    manager = open_reader(ctx)
    entries = manager.driver.registry_list("worker")
    manager.close()
    if as_json:
        emit_json(entries)
        return
    table(f"{len(entries)} workers", ["id", "state", "queues", "processed", "failed", "rss MB",
                                      "seen", "current"],
          [[e["id"], _state(e), ",".join(e["queues"]), e["processed"], e["failed"],
            e["rss_mb"], f"{duration(time.time() - e['last_heartbeat'])} ago",
            ",".join(e["current_jobs"])] for e in entries])


def _state(entry: dict[str, object]) -> str:
    state = str(entry["state"])
    return "pausing" if entry.get("paused") and state != "paused" else state


def _pause_verb(action: str, summary: str) -> click.Command:
    @click.command(action, help=summary)
    @click.argument("worker_ids", nargs=-1, required=True, metavar="WORKER_ID...")
    @click.pass_context
    def command(ctx: click.Context, worker_ids: tuple[str, ...]) -> None:
        from taskqueue.worker.presence import pause_or_resume

        manager = open_manager(ctx)
        try:
            live = {str(e.get("id")) for e in manager.driver.registry_list("worker")}
            unknown = [w for w in worker_ids if w not in live]
            if unknown:
                raise click.BadParameter(f"no live worker {', '.join(map(repr, unknown))} "
                                         "(see `taskqueue workers`)", param_hint="WORKER_ID")
            for worker_id in worker_ids:
                console.print(pause_or_resume(manager.driver, worker_id, action,
                                              "command line"))
        finally:
            manager.close()
    return command


workers.add_command(_pause_verb(
    "pause", "Pause workers: each finishes its running job, then takes no more until resumed "
    "(idempotent; kept in the store, so it works for a worker on any host)."))
workers.add_command(_pause_verb("resume", "Let paused workers take jobs again (idempotent)."))


@click.command("nodes")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def nodes(ctx: click.Context, as_json: bool) -> None:
    """Live nodes (supervisors) sharing this store."""
    from taskqueue.cluster.nodes import list_nodes

    manager = open_reader(ctx)
    entries = list_nodes(manager.driver)
    manager.close()
    if as_json:
        emit_json(entries)
        return
    table(f"{len(entries)} nodes", ["id", "version", "queues", "tags", "workers", "load",
                                    "seen"],
          [[e["id"], e["version"], ",".join(e["queues"]), ",".join(e["tags"]), e["workers"],
            _load(e["load"]), f"{duration(time.time() - e['last_seen'])} ago"]
           for e in entries])


def _load(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


@click.command("queue:pause")
@click.argument("queues", nargs=-1, required=True, callback=queue_names)
@click.pass_context
def queue_pause(ctx: click.Context, queues: tuple[str, ...]) -> None:
    """Stop all workers everywhere from taking jobs from QUEUES (jobs keep arriving)."""
    manager = open_manager(ctx)
    for name in queues:
        manager.pause_queue(name)
    console.print(f"paused: {', '.join(manager.paused_queues())}")
    manager.close()


@click.command("queue:resume")
@click.argument("queues", nargs=-1, required=True, callback=queue_names)
@click.pass_context
def queue_resume(ctx: click.Context, queues: tuple[str, ...]) -> None:
    """Let workers take jobs from QUEUES again."""
    manager = open_manager(ctx)
    for name in queues:
        manager.resume_queue(name)
    console.print(f"paused now: {', '.join(manager.paused_queues()) or 'none'}")
    manager.close()


@click.command("migrate")
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the schema (also done automatically at first use). On MySQL it also
    corrects the stats counters for jobs changed by SQL of other programs."""
    from taskqueue.drivers.base import Recounts

    manager = open_manager(ctx)
    applied = manager.driver.migrate()  # from_url already migrated; this reports the state
    console.print(f"{manager.driver.name}: schema up to date"
                  + (f" (applied {applied})" if applied else ""))
    if isinstance(manager.driver, Recounts) and (fixed := manager.driver.recount()):
        console.print(f"stats counters corrected: {fixed} job(s) changed outside taskqueue")
    manager.close()


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from taskqueue.errors import ConfigError
    from taskqueue.observability.alerts import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("prune")
@click.option("--older-than", callback=_duration, metavar="DURATION",
              help="Delete finished jobs older than this (e.g. 7d, 12h, 3600) instead of the "
                   "configured retentions.")
@click.option("--batch", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Jobs deleted per transaction (workers run between two batches).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def prune(ctx: click.Context, older_than: float | None, batch: int, dry_run: bool,
          as_json: bool) -> None:
    """Delete finished jobs older than their retention, in batches."""
    manager = open_manager(ctx)
    started = time.monotonic()
    try:
        count = manager.prune(older_than, batch=batch, dry_run=dry_run)
    finally:
        manager.close()
    seconds = time.monotonic() - started
    if as_json:
        emit_json({"dry_run": dry_run, "jobs": count, "seconds": round(seconds, 3)})
    elif dry_run:
        console.print(f"would prune {count} jobs (dry run; nothing deleted)")
    else:
        console.print(f"pruned {count} jobs in {seconds:.1f}s")


@click.command("key:generate")
def key_generate() -> None:
    """Print a new ENCRYPTION_KEY (AES-256, base64: form)."""
    click.echo(generate_key())


COMMANDS = [stats, workers, nodes, queue_pause, queue_resume, migrate, prune, key_generate]

__all__ = ["COMMANDS", "open_driver"]
