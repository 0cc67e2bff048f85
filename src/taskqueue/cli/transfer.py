"""``taskqueue transfer``: move every job to another backend, resumably, verified by counts."""

from __future__ import annotations

import click

from taskqueue.cli.output import console, emit_json, get_console, table
from taskqueue.config import redact_url
from taskqueue.drivers import JobFilter, open_driver
from taskqueue.transfer import transfer


@click.command("transfer")
@click.option("--from", "source_url", required=True, help="Store to copy from.")
@click.option("--to", "target_url", required=True, help="Store to copy into.")
@click.option("--page-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def transfer_command(source_url: str, target_url: str, page_size: int, as_json: bool) -> None:
    """Copy every job (all states, results, dependencies) and the durable settings from one
    store to another. Run it again to resume; stop workers first. Exits 1 if the counts differ."""
    if source_url == target_url:
        raise click.BadParameter("--from and --to are the same store", param_hint="--to")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    source, target = open_driver(source_url), open_driver(target_url)
    try:
        total = source.count(JobFilter())
        with Progress(TextColumn("[bold]copying"), BarColumn(), MofNCompleteColumn(),
                      console=get_console(), disable=as_json) as progress:
            bar = progress.add_task("copy", total=total)
            report = transfer(source, target, page_size,
                              lambda n: progress.update(bar, advance=n))
    finally:
        source.close()
        target.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(f"{redact_url(source_url)} -> {redact_url(target_url)}: copied "
                      f"{report.copied} jobs, {report.skipped} already there, "
                      f"{report.registry_entries} settings entries")
        rows = [[q, s, n, report.target_counts.get(q, {}).get(s, 0)]
                for q, states in report.source_counts.items() for s, n in states.items()]
        table("verification", ["queue", "state", "source", "destination"], rows)
        console.print("verified: every count matches" if report.verified
                      else "[red]counts differ[/]")
    if not report.verified:
        raise SystemExit(1)


COMMANDS = [transfer_command]
