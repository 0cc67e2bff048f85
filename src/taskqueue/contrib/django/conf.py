"""``settings.TASKQUEUE`` -> :class:`taskqueue.config.Settings` and the app's manager."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

from django.conf import settings as django_settings
from django.db import connections

from taskqueue.config import Settings
from taskqueue.contrib._common import lazy_manager, settings_from
from taskqueue.errors import ConfigError
from taskqueue.manager import QueueManager

#: Keys of ``settings.TASKQUEUE`` that belong to this app rather than to ``Settings``.
DJANGO_KEYS = ("use_django_db", "schema", "autodiscover", "set_default")
_POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")

_manager: QueueManager | None = None
_lock = threading.Lock()


def configured() -> dict[str, Any]:
    """``settings.TASKQUEUE`` as given (an empty dict when unset)."""
    value = getattr(django_settings, "TASKQUEUE", None) or {}
    if not isinstance(value, dict):
        raise ConfigError("settings.TASKQUEUE must be a dict, e.g. {'url': 'sqlite:///…'}")
    return dict(value)


def django_db_alias() -> str | None:
    """The database alias the jobs live in (``use_django_db``), if any."""
    alias = configured().get("use_django_db")
    return str(alias) if alias else None


def store_settings() -> Settings:
    values = configured()
    alias = values.get("use_django_db")
    if alias:
        if values.get("url"):
            raise ConfigError("settings.TASKQUEUE: give either 'url' or 'use_django_db', "
                              "not both")
        values["url"] = database_url(str(alias), values.get("schema"))
    elif values.get("schema"):
        raise ConfigError("settings.TASKQUEUE: 'schema' applies only with 'use_django_db'")
    return settings_from(values, "settings.TASKQUEUE", DJANGO_KEYS)


def database_url(alias: str, schema: str | None = None) -> str:
    """A ``postgresql://`` URL for the Django database ``alias`` (PostgreSQL only)."""
    if alias not in connections.settings:
        raise ConfigError(f"settings.TASKQUEUE: use_django_db={alias!r} is not in DATABASES")
    db = connections.settings[alias]
    if db.get("ENGINE") not in _POSTGRES_ENGINES:
        raise ConfigError(f"settings.TASKQUEUE: use_django_db={alias!r} must be a PostgreSQL "
                          f"database (ENGINE is {db.get('ENGINE')!r}); use 'url' for others")
    auth = quote(str(db.get("USER") or ""), safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(str(db["PASSWORD"]), safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    url = f"postgresql://{auth}{'@' if auth else ''}{db.get('HOST') or ''}{port}/{db['NAME']}"
    return url + (f"?schema={schema}" if schema else "")


def get_manager() -> QueueManager:
    """The app's manager, built from ``settings.TASKQUEUE`` on first call; its store is
    connected on first use, so starting Django never opens a connection by itself."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = lazy_manager(store_settings())
        return _manager
