"""``taskqueue work``: run workers until stopped (or until the queues are empty)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import click

from taskqueue.cli.output import csv_list, emit_json, get_console, import_apps, table
from taskqueue.cluster.autoscale import Autoscaler
from taskqueue.config import resolve
from taskqueue.errors import DriverUnavailable
from taskqueue.jobs.states import State
from taskqueue.manager import QueueManager
from taskqueue.observability.stats import StatsRecorder
from taskqueue.worker.outage import Abandoned, open_patiently
from taskqueue.worker.queues import QueuePlan, parse_queue_spec
from taskqueue.worker.runner import WorkerOptions, WorkerSummary
from taskqueue.worker.supervisor import Supervisor


@click.command("work")
@click.option("--queue", "queues", default="default", show_default=True,
              help="Comma-separated queues, in the order to serve them.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (at most MAX_WORKERS).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds allowed to jobs that set no timeout of their own.")
@click.option("--max-jobs", type=click.IntRange(min=1),
              help="Recycle a worker after this many jobs [WORKER_MAX_JOBS].")
@click.option("--memory", type=click.FloatRange(min=1),
              help="Recycle a worker when its RSS passes this many MB [WORKER_MEMORY_LIMIT].")
@click.option("--max-time", type=click.FloatRange(min=1),
              help="Recycle a worker after this many seconds [WORKER_TIMEOUT].")
@click.option("--prefetch", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most jobs reserved at once (adapts to job duration).")
@click.option("--sleep", "poll", type=click.FloatRange(min=0.01), default=1.0,
              show_default=True, help="Longest idle wait between checks for work.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs run at once per process (threads for sync, one event loop for async).")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="On SIGTERM/SIGINT, seconds running jobs get to finish before they are "
                   "handed back.")
@click.option("--kill-after", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Hard timeout: kill a worker whose job runs this long past its timeout.")
@click.option("--tags", default="", help="Capability tags of these workers (jobs may require "
              "them), e.g. gpu,eu.")
@click.option("--strict", is_flag=True, help="Serve the queues strictly in the given order.")
@click.option("--priority-aging", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Raise the priority of jobs waiting longer than SECONDS (no starvation).")
@click.option("--autoscale", metavar="MIN,MAX", help="Grow and shrink the pool with the backlog.")
@click.option("--scheduler", "with_scheduler", is_flag=True,
              help="Also run the leader-elected scheduler (see schedule:run).")
@click.option("--stop-when-empty", is_flag=True,
              help="Exit once no job is ready, after waiting for the retries and the "
                   "rate-limited jobs this worker scheduled that are due within 60 s "
                   "(those due later are left and logged).")
@click.option("--app", "apps", multiple=True, help="Module(s) defining your tasks to import.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus /metrics, /health and /ready on this port.")
@click.pass_context
def work(ctx: click.Context, queues: str, workers: int, timeout: float | None,
         max_jobs: int | None, memory: float | None, max_time: float | None, prefetch: int,
         poll: float, concurrency: int, grace: float, kill_after: float, tags: str,
         strict: bool, priority_aging: float | None, autoscale: str | None,
         with_scheduler: bool, stop_when_empty: bool, apps: tuple[str, ...],
         as_json: bool, metrics_port: int | None) -> None:
    """Process jobs (alias: queue:work)."""
    import_apps(apps)
    settings = resolve({"url": (ctx.find_root().obj or {}).get("url")})
    if workers > settings.max_workers:
        raise click.BadParameter(f"{workers} is more than MAX_WORKERS={settings.max_workers}",
                                 param_hint="--workers")
    scaler = _autoscaler(autoscale, settings.max_workers)
    if scaler is not None:
        workers = max(scaler.minimum, min(scaler.maximum, workers))
    queue_list = csv_list(queues) or ["default"]
    try:
        plan = QueuePlan(parse_queue_spec(queue_list), tuple(csv_list(tags)), strict)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queue/--tags") from None
    options = WorkerOptions(
        queues=queue_list, tags=plan.tags, strict=strict, priority_aging=priority_aging,
        prefetch=prefetch, poll_interval=poll,
        timeout=timeout, stop_when_empty=stop_when_empty,
        max_jobs=max_jobs or settings.worker_max_jobs,
        memory_limit_mb=memory or settings.worker_memory_limit / (1024 * 1024),
        max_time=max_time or settings.worker_timeout, concurrency=concurrency,
    )
    root = ctx.find_root().params
    supervisor = Supervisor(settings, options, workers, apps=list(apps),
                            log_setup=(root["log_format"], root["log_level"]),
                            grace=grace, kill_after=kill_after, autoscaler=scaler)
    if metrics_port is not None:   # a taken port is refused before any worker takes a job
        from taskqueue.cli.ports import check_port
        check_port("0.0.0.0", metrics_port, "metrics")
    # The fork server is forked from this process now, before it opens a store connection or
    # starts a thread: nothing of the kind may reach the workers.
    supervisor.start()
    server = scheduler = None
    stop_scheduler = threading.Event()
    progress = stop_when_empty and not as_json
    try:
        # the bar's total is counted before any worker takes a job
        total = _ready_count(supervisor, plan.names()) if progress else 0
        # the workers first: this process's own connection is not on the first job's way;
        # launch() migrated the store, so this one does not check its schema again while the
        # workers reserve their first jobs
        supervisor.launch()
        if supervisor.stopping:   # asked to stop while the store was unreachable
            return
        try:
            manager = open_patiently(
                lambda: QueueManager.from_settings(settings, migrate=False), "taskqueue work",
                abandon=supervisor.stop_requested)
        except Abandoned:
            # the workers run: the pending stop signal makes run() stop them gracefully
            supervisor.run()
            return
        # Each worker life has its own recorder, and with recycling a life is often shorter
        # than the first rollup (5 s in): this long-lived one folds their minutes into the
        # long history (the 24 h / 7 d figures) under sustained load too.
        StatsRecorder.install(manager).start()
        server = None if metrics_port is None else serve_metrics(manager, metrics_port)
        scheduler = _start_scheduler(settings, stop_scheduler) if with_scheduler else None
        if progress:
            _run_with_progress(supervisor, total)
        else:
            supervisor.run()
    finally:
        supervisor.close()
        stop_scheduler.set()
        if scheduler is not None:
            scheduler.join(timeout=15)
        if server is not None:
            server.close()
    _report(manager, supervisor, as_json)
    manager.close()
    if supervisor.exit_code:
        ctx.exit(int(supervisor.exit_code))


def _start_scheduler(settings: Any, stop: threading.Event) -> threading.Thread:
    """``--scheduler``: the leader-elected scheduler in a thread of the supervisor process,
    with its own store connection."""
    from taskqueue.scheduling.scheduler import start_scheduler_thread

    return start_scheduler_thread(QueueManager.from_settings(settings), stop)


def serve_metrics(manager: QueueManager, port: int) -> Any:
    """Start the /metrics, /health and /ready server of ``--metrics-port``."""
    from taskqueue.observability.health import HealthPolicy
    from taskqueue.observability.metrics import serve

    policy = HealthPolicy.for_lease(manager.settings.lease_seconds)
    return serve(manager.driver, port, policy=policy)


def _autoscaler(spec: str | None, max_workers: int) -> Autoscaler | None:
    if not spec:
        return None
    try:
        low, high = (int(x) for x in spec.split(","))
        scaler = Autoscaler(low, high)
    except ValueError as exc:
        raise click.BadParameter(f"{spec!r}: expected MIN,MAX with 1 <= MIN <= MAX ({exc})",
                                 param_hint="--autoscale") from None
    if high > max_workers:
        raise click.BadParameter(f"MAX {high} is more than MAX_WORKERS={max_workers}",
                                 param_hint="--autoscale")
    return scaler


def _ready_count(supervisor: Supervisor, queues: Sequence[str]) -> int:
    """Jobs ready or running in ``queues``, on the supervisor's connection (opened, and the
    store migrated, for the workers anyway); 0 while the store is unreachable (the workers wait
    the outage out, the bar runs without a total)."""
    try:
        stats = supervisor.driver().stats()
    except DriverUnavailable:
        return 0
    return sum(stats[q].counts[State.PENDING] + stats[q].counts[State.RETRYING]
               + stats[q].counts[State.PROCESSING] for q in queues if q in stats)


def _run_with_progress(supervisor: Supervisor, total: int) -> None:
    """Run the pool with a live bar: the jobs ready at the start are the total; done is what
    this pool's workers processed (recycled ones included), over the run's wall-clock time --
    the same figures as the summary. The bar (and rich) comes with the first tick, after the
    workers were started, so it never delays the first job."""
    bar = _Bar(supervisor, total)
    try:
        supervisor.run(bar.tick)
        bar.last = 0.0
        bar.tick()
    finally:
        bar.close()


class _Bar:
    def __init__(self, supervisor: Supervisor, total: int) -> None:
        self.supervisor, self.total = supervisor, total
        self.progress: Any = None
        self.task: Any = None
        self.last = 0.0

    def tick(self) -> None:
        if time.monotonic() - self.last < 0.25:
            return
        self.last = time.monotonic()
        done, elapsed = self.supervisor.processed(), self.supervisor.elapsed()
        if self.progress is None:
            self._open()
        self.progress.update(self.task, completed=done, rate=done / elapsed if elapsed else 0.0)

    def _open(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (TextColumn("[bold]processing"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]:>7.0f} jobs/s"), TimeElapsedColumn())
        self.progress = Progress(*columns, console=get_console())
        self.progress.start()
        self.task = self.progress.add_task("jobs", total=self.total or None, rate=0.0)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def run_totals(supervisor: Supervisor) -> dict[str, Any]:
    """The whole run: every worker life (recycled ones included), over its wall-clock time."""
    fields = ("processed", "completed", "retried", "failed", "snoozed", "cancelled", "lost")
    total: dict[str, Any] = {f: sum(getattr(s, f) for s in supervisor.summaries)
                             for f in fields}
    elapsed = supervisor.elapsed()
    return total | {"elapsed": elapsed,
                    "rate": total["processed"] / elapsed if elapsed else 0.0}


def _report(manager: Any, supervisor: Supervisor, as_json: bool) -> None:
    summaries: list[WorkerSummary] = supervisor.summaries
    total = run_totals(supervisor)
    elapsed, rate = total["elapsed"], total["rate"]
    if as_json:
        emit_json({"workers": [vars(s) | {"rate": s.rate} for s in summaries],
                   "totals": total, "exit_code": int(supervisor.exit_code),
                   "stats": manager.stats()})
        return
    shown = ("processed", "completed", "retried", "failed", "lost")
    rows = [[s.worker_id.split(":")[1], *(getattr(s, f) for f in shown), f"{s.elapsed:.2f}s",
             f"{s.rate:.0f}/s", s.stop_reason] for s in summaries]
    if len(summaries) > 1:
        rows.append(["all", *(total[f] for f in shown), f"{elapsed:.2f}s", f"{rate:.0f}/s", ""])
    table("Summary", ["pid", *shown, "elapsed", "rate", "stopped because"], rows)
    stats = manager.stats()
    table("Queues now", ["queue", *(s.value for s in State)],
          [[name, *(q[s.value] for s in State)] for name, q in stats["queues"].items()])


COMMANDS = [work]
