"""The ``taskqueue`` command: one click group, one module per command family."""

from __future__ import annotations

import sys
from typing import Any

import click

from taskqueue import __version__
from taskqueue.cli import admin, dashboard, jobs, keys, observe, schedule, transfer, work
from taskqueue.errors import TaskQueueError

#: The original specification's command names, kept as aliases.
ALIASES = {
    "queue:work": "work",
    "queue:test": "test",
    "queue:stats": "stats",
    "queue:migrate": "migrate",
    "queue:retry": "retry",
    "queue:failed": "failed",
}


class AliasedGroup(click.Group):
    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(name, name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TaskQueueError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskqueue")
@click.option("--url", envvar="TASKQUEUE_URL", help="Store URL (overrides DB_CONNECTION & co).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
@click.pass_context
def cli(ctx: click.Context, url: str | None, log_format: str, log_level: str) -> None:
    """Background jobs for Python. Run `taskqueue COMMAND --help` for details."""
    from taskqueue.observability.logging import configure

    configure(log_format, log_level)
    ctx.obj = {"url": url}


for module in (work, jobs, admin, transfer, observe, schedule, dashboard, keys):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="taskqueue")
    sys.exit(0)
