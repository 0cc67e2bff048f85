"""Watching the system: ``health``, ``metrics:serve``, ``alerts:check``, and the history part
of ``stats``."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

from taskqueue.cli.output import console, emit_json, open_manager, open_reader, table
from taskqueue.errors import ConfigError
from taskqueue.manager import QueueManager
from taskqueue.observability import health as checks
from taskqueue.observability.alerts import LOCK, AlertService, find_config, load_config
from taskqueue.observability.metrics import serve
from taskqueue.worker.signals import guarded


def _policy(manager: QueueManager, stale_after: float | None, stuck_after: float,
            require_workers: bool) -> checks.HealthPolicy:
    base = checks.HealthPolicy.for_lease(manager.settings.lease_seconds)
    return checks.HealthPolicy(require_workers=require_workers,
                               stale_after=stale_after or base.stale_after,
                               stuck_after=stuck_after)


@click.command("health")
@click.option("--json", "as_json", is_flag=True)
@click.option("--stale-after", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds without heartbeat before a worker counts as dead "
                   "[two thirds of the lease].")
@click.option("--stuck-after", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Seconds a due job may wait in a queue no live worker serves.")
@click.option("--workers/--no-workers", "require_workers", default=True, show_default=True,
              help="Fail when no worker is alive.")
@click.pass_context
def health(ctx: click.Context, as_json: bool, stale_after: float | None, stuck_after: float,
           require_workers: bool) -> None:
    """Exit 0 if the store answers, workers are alive and queues move; else 1, with reasons."""
    try:
        manager = open_reader(ctx)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable store is a failed check
        report = checks.HealthReport((checks.Check("store", False, f"unreachable: {exc}"),))
    else:
        try:
            policy = _policy(manager, stale_after, stuck_after, require_workers)
            report = checks.full_check(manager.driver, policy)
        finally:
            manager.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
            console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    ctx.exit(0 if report.ok else 1)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: guarded(stop.set))
    while not stop.wait(0.5):
        pass


@click.command("metrics:serve")
@click.option("--port", type=click.IntRange(0, 65535), default=9100, show_default=True,
              help="0 picks a free port (printed at start).")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.pass_context
def metrics_serve(ctx: click.Context, port: int, host: str) -> None:
    """Serve Prometheus /metrics, /health and /ready until interrupted."""
    manager = open_reader(ctx)
    policy = checks.HealthPolicy.for_lease(manager.settings.lease_seconds)
    server = serve(manager.driver, port, host, policy=policy)
    click.echo(f"serving http://{host}:{server.port}/metrics (and /health, /ready)")
    try:
        _wait_for_signal()
    finally:
        server.close()
        manager.close()


@click.command("alerts:check")
@click.option("--json", "as_json", is_flag=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Rules file (TOML or JSON) [alerts.toml, or [alerts] in taskqueue.toml].")
@click.option("--notify/--no-notify", default=True, show_default=True,
              help="Send notifications (only when no other node leads alert evaluation).")
@click.option("--every", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Keep evaluating every SECONDS as the alert service (leader only).")
@click.pass_context
def alerts_check(ctx: click.Context, as_json: bool, config_path: Path | None, notify: bool,
                 every: float | None) -> None:
    """Evaluate the alert rules once; exit 1 if any fires."""
    path = find_config(config_path)
    if path is None:
        raise ConfigError("no alert rules: create alerts.toml, add [alerts] to taskqueue.toml, "
                          "or pass --config")
    config = load_config(path, os.environ)
    if every is not None:
        config.interval = every
    manager = open_manager(ctx)
    service = AlertService(manager.driver, config)
    try:
        if every is not None:
            _run_service(service)
            return
        result = _check_once(service, notify)
    finally:
        manager.close()
    if as_json:
        emit_json(result)
    else:
        _print_alerts(result)
    ctx.exit(1 if result["firing"] else 0)


def _check_once(service: AlertService, notify: bool) -> dict[str, Any]:
    findings, broken = service.evaluate()
    leader = notify and service.lead()
    sent = service.process(findings, broken) if leader else []
    if leader:
        service.driver.lock_release(LOCK, service.owner)
    return {"firing": [{"alert": f.alert, "rule": f.rule.name, "kind": f.rule.kind,
                        "subject": f.subject, "severity": f.rule.severity, "value": f.value,
                        "message": f.message} for f in findings],
            "broken_rules": sorted(broken), "notified": [n.to_dict() for n in sent],
            "leader": leader}


def _run_service(service: AlertService) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: guarded(stop.set))
    click.echo(f"evaluating {len(service.config.rules)} alert rules every "
               f"{service.config.interval:g}s (leader only)")
    service.run(stop)


def _print_alerts(result: dict[str, Any]) -> None:
    firing = result["firing"]
    table(f"{len(firing)} alert(s) firing", ["rule", "subject", "severity", "message"],
          [[f["rule"], f["subject"], f["severity"], f["message"]] for f in firing])
    for note in result["notified"]:
        console.print(f"notified: {note['status']} {note['alert']}", highlight=False)
    if result["broken_rules"]:
        console.print(f"[red]rules that failed to evaluate:[/] {result['broken_rules']}")


# -- stats: history figures ---------------------------------------------------------------------

def _num(value: Any, unit: str = "", scale: float = 1.0) -> str:
    if not isinstance(value, int | float):
        return "-"
    value *= scale
    digits = 0 if abs(value) >= 10 or value == int(value) else 1 if abs(value) >= 1 else 2
    return f"{value:.{digits}f}{unit}"


def _seconds(value: Any) -> str:
    from taskqueue.cli.output import duration

    return duration(value)


def print_history(data: dict[str, Any]) -> None:
    """The per-queue history table under ``taskqueue stats`` (rates per minute)."""
    rows = []
    named = [(name, q) for name, q in data["queues"].items() if "history" in q]
    for name, entry in [*named, ("[bold]total", data["totals"])]:
        history = entry.get("history")
        if not history:
            continue
        h1, h5, h60 = history["1m"], history["5m"], history["1h"]
        run, wait = h5["run_time"], h5["wait_time"]
        rows.append([name,
                     "/".join(_num(h["enqueued_per_min"]) for h in (h1, h5, h60)),
                     "/".join(_num(h["completed_per_min"]) for h in (h1, h5, h60)),
                     _num(h5["failure_rate"], "%", 100), _seconds(run["p50"]),
                     _seconds(run["p95"]), _seconds(run["p99"]), _seconds(wait["p50"]),
                     _seconds(wait["p95"]), _seconds(entry.get("oldest_pending_age"))])
    table("history (per minute over 1m/5m/1h; times over 5m)",
          ["queue", "enq/min", "done/min", "failed", "run p50", "run p95", "run p99",
           "wait p50", "wait p95", "oldest"], rows)


def print_task_metrics(data: dict[str, Any]) -> None:
    """The per-task table of ``taskqueue stats --tasks``."""
    rows = [[t["queue"], t["name"], t["completed"], t["failed"], t["retried"],
             _num(t["failure_rate"], "%", 100), _num(t["throughput_per_min"]),
             _seconds(t["run_time"]["p50"]), _seconds(t["run_time"]["p95"]),
             _seconds(t["wait_time"]["p95"])] for t in data["tasks"]]
    table(f"tasks over the last {data['range']}",
          ["queue", "task", "completed", "failed", "retried", "failure", "jobs/min",
           "run p50", "run p95", "wait p95"], rows)


COMMANDS = [health, metrics_serve, alerts_check]
