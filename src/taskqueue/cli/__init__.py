"""The ``taskqueue`` command: one click group, one module per command family.

A family's module is imported when one of its commands runs (or ``--help`` lists them), so
``taskqueue work`` does not load the dashboard, the schedule store or the metrics server.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from taskqueue import __version__
from taskqueue._distribution import clash_warning, version_line
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


#: Each command's module (``taskqueue.cli.<module>``, whose ``COMMANDS`` holds it).
#: tests/cli/test_lazy_cli.py checks this against the modules.
COMMAND_MODULES = {
    "work": "work",
    **dict.fromkeys(["test", "jobs", "failed", "retry", "cancel", "batch:status",
                     "batch:cancel"], "jobs"),
    **dict.fromkeys(["stats", "workers", "nodes", "queue:pause", "queue:resume", "migrate",
                     "prune", "key:generate"], "admin"),
    "transfer": "transfer",
    **dict.fromkeys(["health", "metrics:serve", "alerts:check"], "observe"),
    **dict.fromkeys(["schedule:parse", "schedule:add", "schedule:list", "schedule:remove",
                     "schedule:pause", "schedule:resume", "schedule:run"], "schedule"),
    **dict.fromkeys(["dashboard", "dashboard:hash-password"], "dashboard"),
    **dict.fromkeys(["key:reencrypt", "key:accept-plaintext"], "keys"),
}


class AliasedGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = ALIASES.get(name, name)
        if name not in self.commands and name in COMMAND_MODULES:
            module = importlib.import_module(f"{__name__}.{COMMAND_MODULES[name]}")
            for command in module.COMMANDS:
                if command.name not in self.commands:
                    self.add_command(command)
        return super().get_command(ctx, name)

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


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_line(__version__))
    clash = clash_warning()
    if clash:
        click.echo(clash, err=True)
    ctx.exit(0)


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version, the distribution and exit.")
@click.option("--url", envvar="TASKQUEUE_URL", help="Store URL (overrides DB_CONNECTION & co).")
@click.option("--read-url", envvar="TASKQUEUE_READ_URL",
              help="A replica for the commands that only read (stats, jobs, workers, nodes, "
                   "failed, health, metrics, dashboard pages).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
@click.pass_context
def cli(ctx: click.Context, url: str | None, read_url: str | None, log_format: str,
        log_level: str) -> None:
    """Background jobs for Python. Run `taskqueue COMMAND --help` for details."""
    from taskqueue.observability.logging import configure

    configure(log_format, log_level)
    clash = clash_warning()
    if clash:
        click.echo(clash, err=True)
    ctx.obj = {"url": url, "read_url": read_url}


def main() -> None:
    cli(prog_name="taskqueue")
    sys.exit(0)
