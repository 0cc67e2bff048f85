"""Settings, resolved once at the edge: CLI flag > environment > ``taskqueue.toml`` > default.

Nothing below this module (and ``cli/``) reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from taskqueue.errors import ConfigError

#: Settings field -> environment variable (the original specification's names where it had one).
ENV_NAMES: dict[str, str] = {
    "url": "TASKQUEUE_URL",
    "read_url": "TASKQUEUE_READ_URL",
    "connection": "DB_CONNECTION",
    "path": "DB_PATH",
    "host": "DB_HOST",
    "port": "DB_PORT",
    "database": "DB_DATABASE",
    "username": "DB_USERNAME",
    "password": "DB_PASSWORD",
    "encryption_key": "ENCRYPTION_KEY",
    "encryption_previous_keys": "ENCRYPTION_PREVIOUS_KEYS",
    "max_payload": "TASKQUEUE_MAX_PAYLOAD",
    "lease_seconds": "TASKQUEUE_LEASE_SECONDS",
    "worker_memory_limit": "WORKER_MEMORY_LIMIT",
    "worker_max_jobs": "WORKER_MAX_JOBS",
    "worker_timeout": "WORKER_TIMEOUT",
    "max_workers": "MAX_WORKERS",
    "completed_retention": "TASKQUEUE_COMPLETED_RETENTION",
    "failed_retention": "TASKQUEUE_FAILED_RETENTION",
}

CONNECTIONS = ("sqlite", "pgsql", "mysql", "redis", "file")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob, with its default. ``worker_memory_limit`` is in bytes, durations in seconds."""

    url: str | None = None
    #: A replica for the commands that only read (stats, jobs list, dashboard pages, metrics).
    read_url: str | None = None
    connection: str = "sqlite"
    path: str = "storage/queue.db"
    host: str = "127.0.0.1"
    port: int | None = None
    database: str = "taskqueue"
    username: str | None = None
    password: str | None = None
    encryption_key: str | None = None
    encryption_previous_keys: str | None = None
    max_payload: int = 1024 * 1024
    lease_seconds: float = 30.0
    worker_memory_limit: int = 50 * 1024 * 1024
    worker_max_jobs: int = 1000
    #: Lifetime of one worker process before it is recycled (``--max-time``); see docs.
    worker_timeout: int = 3600
    max_workers: int = 10
    completed_retention: float = 24 * 3600.0
    failed_retention: float = 30 * 24 * 3600.0

    def __repr__(self) -> str:  # never print secrets
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("password", "encryption_key", "encryption_previous_keys"):
            if shown[secret]:
                shown[secret] = "***"
        for name in ("url", "read_url"):
            if shown[name]:
                shown[name] = redact_url(str(shown[name]))
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def database_url(self) -> str:
        """The connection URL, from ``TASKQUEUE_URL`` or built from the ``DB_*`` settings."""
        if self.url:
            return self.url
        return build_url(self)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def build_url(s: Settings) -> str:
    """Turn ``DB_CONNECTION`` and friends into a URL."""
    if s.connection == "sqlite":
        return "sqlite:///" + s.path
    if s.connection == "file":  # RFC 8089: file:///abs/dir, or file:rel/dir for a relative path
        return ("file://" if s.path.startswith("/") else "file:") + s.path
    scheme = {"pgsql": "postgresql", "mysql": "mysql", "redis": "redis"}[s.connection]
    auth = ""
    if s.username:
        auth = quote(s.username, safe="")
        if s.password:
            auth += ":" + quote(s.password, safe="")
        auth += "@"
    port = f":{s.port}" if s.port else ""
    database = s.database if scheme != "redis" else (s.database if s.database.isdigit() else "0")
    return f"{scheme}://{auth}{s.host}{port}/{database}"


def redact_url(url: str) -> str:
    """Hide the password in a URL for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else url


def _convert(name: str, raw: Any, where: str | None = None) -> Any:
    """``raw`` as setting ``name``'s type; a refusal names ``where`` it came from (the
    environment variable, or the file and key), else the setting."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if raw is None or raw == "":
        return None
    try:
        if "int" in str(kind) and not isinstance(raw, bool):
            return int(raw)
        if "float" in str(kind):
            return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where or name} must be a number, got {raw!r}") from None
    return str(raw)


def load_toml(path: Path) -> dict[str, Any]:
    """Read ``taskqueue.toml``: top-level keys or a ``[taskqueue]`` table, named like fields."""
    import tomllib  # only when there is a file to read

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    table = data.get("taskqueue", data)
    known = {f.name for f in fields(Settings)}
    #: tables owned by features that read the file themselves (alert rules, schedules)
    owned = {"alerts", "schedules", "taskqueue"}
    for key in table:
        if key in owned and isinstance(table[key], dict | list):
            continue
        if key not in known:
            import difflib

            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{path}: unknown setting {key!r}{extra}")
    return {k: v for k, v in table.items() if k not in owned}


def resolve(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Settings:
    """Merge the layers (flag > env > toml > default) into one validated Settings."""
    env = os.environ if env is None else env
    if toml_path is None:
        named = env.get("TASKQUEUE_CONFIG")
        toml_path = Path(named or "taskqueue.toml")
        if named and not toml_path.is_file():  # a file asked for by name is never skipped
            raise ConfigError(f"TASKQUEUE_CONFIG={named!r}: no such file (from "
                              f"{Path.cwd()}); unset it to read ./taskqueue.toml, if any")
    values: dict[str, Any] = {}
    if toml_path.is_file():
        values.update({k: _convert(k, v, f"{toml_path}: {k}")
                       for k, v in load_toml(toml_path).items()})
    for name, var in ENV_NAMES.items():
        if env.get(var):
            values[name] = _convert(name, env[var], var)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    if s.connection not in CONNECTIONS:
        raise ConfigError(
            f"DB_CONNECTION={s.connection!r} is not one of {', '.join(CONNECTIONS)}"
        )
    for name in ("max_payload", "worker_max_jobs", "max_workers", "worker_memory_limit"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{ENV_NAMES[name]} must be positive, got {getattr(s, name)}")
    if s.lease_seconds < 1:
        raise ConfigError(f"TASKQUEUE_LEASE_SECONDS must be at least 1, got {s.lease_seconds}")
