"""Management commands that hand their arguments, untouched, to the ``taskqueue`` CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskqueue.contrib._common import run_cli
from taskqueue.contrib.django.conf import DJANGO_KEYS, configured, store_settings

BOOTSTRAP = "taskqueue.contrib.django.bootstrap"
#: Options ``manage.py`` itself has already applied; the CLI must not see them.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


class _PassThroughParser(CommandParser):
    """Leaves every argument to the CLI (``--help`` included) and gives Django its defaults."""

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: Any = None) -> Any:
        options = super().parse_args([], namespace)
        options.cli_args = _without_django_options(list(args or ()))
        return options


def _without_django_options(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept


class DelegatingCommand(BaseCommand):
    """``manage.py NAME ARGS`` runs ``taskqueue *cli_command ARGS`` with ``settings.TASKQUEUE``."""

    cli_command: ClassVar[tuple[str, ...]] = ()
    requires_system_checks: ClassVar[list[str]] = []  # type: ignore[misc]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _PassThroughParser
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        cli_args = [*self.cli_command, *options["cli_args"]]
        if cli_args[:1] in (["work"], ["queue:work"]):  # worker processes set Django up first
            cli_args[1:1] = ["--app", BOOTSTRAP]
        given = {k: v for k, v in configured().items() if k not in DJANGO_KEYS}
        code = run_cli(cli_args, store_settings(), given, prog_name="manage.py taskqueue")
        if code:
            raise CommandError(f"taskqueue exited with status {code}", returncode=code)
