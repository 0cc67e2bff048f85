"""What every framework integration shares: settings from a mapping, a manager whose store
connects on first use, and running the ``taskqueue`` CLI with the framework's settings."""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, cast

from taskqueue.config import ENV_NAMES, Settings, resolve
from taskqueue.drivers import Driver, open_driver
from taskqueue.drivers.base import CloseHooks
from taskqueue.errors import ConfigError
from taskqueue.manager import QueueManager

SETTING_NAMES = frozenset(f.name for f in fields(Settings))


def settings_from(values: Mapping[str, Any], where: str,
                  extra: Sequence[str] = ()) -> Settings:
    """Resolve a framework's configuration (``Settings`` field names; ``extra`` names are the
    integration's own and skipped) as the flag layer: it wins over the environment and
    ``taskqueue.toml``, which still fill what it leaves out. Unknown keys fail with a hint."""
    known = SETTING_NAMES | set(extra)
    for key in values:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            raise ConfigError(f"{where}: unknown setting {key!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return resolve({k: v for k, v in values.items() if k in SETTING_NAMES})


class LazyDriver(CloseHooks):
    """Stands in for the driver named by ``url`` and opens it on the first attribute access."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._driver: Driver | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._driver is not None

    def _open(self) -> Driver:
        with self._lock:
            if self._driver is None:
                self._driver = open_driver(self._url)
            return self._driver

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)

    def close(self) -> None:
        """Close the real driver if it was ever opened (closing never connects)."""
        self._closing()
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()


def lazy_manager(settings: Settings) -> QueueManager:
    """A manager for ``settings`` whose store is connected on first use."""
    return QueueManager(cast(Driver, LazyDriver(settings.database_url)), settings=settings)


def settings_environ(settings: Settings, given: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables that make the ``taskqueue`` CLI (and the worker processes it
    spawns) resolve the same settings as the framework: one per field the app configured."""
    env = {ENV_NAMES[name]: str(getattr(settings, name)) for name in given
           if name in ENV_NAMES and getattr(settings, name) is not None}
    env["TASKQUEUE_URL"] = settings.database_url
    return env


def run_cli(args: Sequence[str], settings: Settings, given: Mapping[str, Any],
            prog_name: str) -> int:
    """Run ``taskqueue ARGS`` in this process with the framework's settings exported to the
    environment (so worker processes spawned by ``work`` inherit them); return the exit code."""
    from taskqueue.cli import cli

    os.environ.update(settings_environ(settings, given))
    try:
        cli.main(args=list(args), prog_name=prog_name, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
