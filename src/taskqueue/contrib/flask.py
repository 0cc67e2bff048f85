"""Flask: the ``TaskQueue`` extension.

```python
from flask import Flask
from taskqueue.contrib.flask import TaskQueue

queue = TaskQueue()

def create_app() -> Flask:
    app = Flask(__name__)
    app.config["TASKQUEUE_URL"] = "sqlite:///storage/queue.db"
    queue.init_app(app)      # app.extensions["taskqueue"] is the QueueManager
    return app
```

Configuration: every :class:`taskqueue.config.Settings` field as ``TASKQUEUE_<NAME>``
(``TASKQUEUE_URL``, ``TASKQUEUE_ENCRYPTION_KEY``, ``TASKQUEUE_LEASE_SECONDS``, ...; so
``app.config.from_prefixed_env()`` works), plus ``TASKQUEUE_IMPORTS`` (modules defining your
tasks, imported by each worker; default: the app's import name) and ``TASKQUEUE_SET_DEFAULT``
(make this manager the one ``task.delay()`` uses; default true). The environment and
``taskqueue.toml`` fill in what the config leaves out; an unknown ``TASKQUEUE_*`` key fails
with a hint. ``flask taskqueue COMMAND`` runs any ``taskqueue`` CLI command with these settings
(``flask taskqueue work --stop-when-empty``). The store connects on first use.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app

from taskqueue.config import Settings
from taskqueue.contrib._common import lazy_manager, run_cli, settings_from
from taskqueue.manager import QueueManager, set_default_manager

PREFIX = "TASKQUEUE_"
EXTENSION_KEY = "taskqueue"
_OWN = ("imports", "set_default")


class TaskQueue:
    """The Flask extension. ``TaskQueue(app)`` or ``TaskQueue()`` then ``init_app(app)``;
    ``manager`` (e.g. a test's isolated one) replaces the manager built from the config."""

    def __init__(self, app: Flask | None = None, *, manager: QueueManager | None = None) -> None:
        self._manager = manager
        if app is not None:
            self.init_app(app, manager=manager)

    def init_app(self, app: Flask, *, manager: QueueManager | None = None) -> None:
        given = app_settings(app)
        settings = settings_from(given, "Flask config", _OWN)
        built = manager or self._manager or lazy_manager(settings)
        app.extensions[EXTENSION_KEY] = built
        if given.get("set_default", True):
            set_default_manager(built)
        imports = given.get("imports") or [app.import_name]
        app.cli.add_command(_cli_group(settings, given, [str(m) for m in imports]))

    @property
    def manager(self) -> QueueManager:
        """The current app's manager (needs an application context)."""
        return get_manager()


def get_manager(app: Flask | None = None) -> QueueManager:
    """The manager of ``app`` (default: ``current_app``)."""
    manager = (app or current_app).extensions[EXTENSION_KEY]
    assert isinstance(manager, QueueManager)
    return manager


def app_settings(app: Flask) -> dict[str, Any]:
    """``TASKQUEUE_*`` config keys, lower-cased without the prefix."""
    return {key[len(PREFIX):].lower(): value for key, value in app.config.items()
            if key.startswith(PREFIX) and value is not None}


def _cli_group(settings: Settings, given: dict[str, Any], imports: list[str]) -> click.Command:
    @click.command("taskqueue", context_settings={"ignore_unknown_options": True,
                                                  "allow_extra_args": True,
                                                  "help_option_names": []})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def taskqueue_command(args: tuple[str, ...]) -> None:
        """Run a taskqueue CLI command with the app's settings (`flask taskqueue --help`)."""
        cli_args = list(args)
        if cli_args[:1] in (["work"], ["queue:work"]):
            for module in imports:
                cli_args[1:1] = ["--app", module]
        own = {k: v for k, v in given.items() if k not in _OWN}
        code = run_cli(cli_args, settings, own, prog_name="flask taskqueue")
        if code:
            raise SystemExit(code)

    return taskqueue_command


__all__ = ["TaskQueue", "app_settings", "get_manager"]
