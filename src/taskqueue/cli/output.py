"""Rendering shared by all commands: rich tables for people, ``--json`` for programs.

rich is imported when something is first printed: ``taskqueue work --json`` and the worker
processes never load it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import click

from taskqueue.config import Settings, resolve
from taskqueue.manager import QueueManager

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None


def get_console() -> Console:
    """The shared rich Console, made on first use."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console()
        if not _console.is_terminal:  # logs and CI: do not squeeze tables into 80 columns
            _console = Console(width=120)
    return _console


class _LazyConsole:
    """Stands for the Console until it is used (``console.print(...)``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(get_console(), name)


console = cast("Console", _LazyConsole())


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def duration(seconds: Any) -> str:
    """A duration people read at a glance: 850ms, 4.2s, 12m 05s, 20h 11m, 3d 4h."""
    if not isinstance(seconds, int | float) or seconds != seconds:  # None, NaN
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.01 else f"{seconds * 1000:.2f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[("" if v is None else str(v)) for v in row])
    console.print(t)


def open_manager(ctx: click.Context, **overrides: Any) -> QueueManager:
    """Build the manager from CLI flags > env > taskqueue.toml > defaults (it migrates the
    store: for commands that change it)."""
    return QueueManager.from_settings(cli_settings(ctx, **overrides))


def open_reader(ctx: click.Context) -> QueueManager:
    """The manager of a command that only reads: on the read URL (a replica) when one is set,
    never migrating; a store whose schema is behind is refused with a clear message, one with
    no schema at all reads as empty, with a note on stderr."""
    manager = QueueManager.for_reading(cli_settings(ctx))
    if manager.store_is_new():
        click.echo(f"note: nothing has been enqueued in this {manager.driver.name} store yet "
                   "(it has no taskqueue schema); showing it as empty", err=True)
    return manager


def cli_settings(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the root command's flags (and ``overrides``) > env > toml > defaults."""
    root = ctx.find_root().obj or {}
    return resolve({"url": root.get("url"), "read_url": root.get("read_url"), **overrides})


def import_apps(apps: Sequence[str]) -> None:
    """Import the user's modules that define tasks (``--app``)."""
    import importlib

    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    for spec in apps:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise click.BadParameter(f"cannot import {name!r}: {exc}",
                                         param_hint="--app") from exc


def queue_names(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback: the queue name (or each of a tuple of them) checked by the rules every
    push applies (``jobs.names``), so a bad one exits 2 naming it before the store is opened."""
    from taskqueue.jobs.names import check_queue

    try:
        for name in (value,) if isinstance(value, str) else value:
            check_queue(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
