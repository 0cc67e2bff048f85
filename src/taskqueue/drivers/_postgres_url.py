"""The PostgreSQL URL's own query parameters (private to ``postgres``); the rest go to libpq.

``schema``; ``pooler=transaction`` (behind PgBouncer or another transaction pooler: no
server-side prepared statements, no LISTEN through it); ``prepare=false``; ``notify_url`` (a
direct URL for LISTEN, bypassing the pooler); ``poll_interval`` (seconds between checks of an
idle worker that does not listen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskqueue.errors import ConfigError

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(name: str) -> Callable[[str], tuple[str, bool]]:
    def parse(value: str) -> tuple[str, bool]:
        lowered = value.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ConfigError(f"postgres URL parameter {name}={value!r}: use true or false")
        return name, lowered in _TRUE
    return parse


def _pooler(value: str) -> tuple[str, str]:
    if value not in ("transaction", "session"):
        raise ConfigError(f"postgres URL parameter pooler={value!r}: use transaction or session")
    return "pooler", value


def _seconds(value: str) -> tuple[str, float]:
    try:
        return "poll_interval", float(value)
    except ValueError:
        raise ConfigError(f"postgres URL parameter poll_interval={value!r}: use seconds, "
                          "such as 0.2") from None


#: Each of our parameters, to (driver option, typed value).
_OPTIONS: dict[str, Callable[[str], tuple[str, Any]]] = {
    "schema": lambda value: ("schema", value),
    "pooler": _pooler,
    "prepare": _flag("prepare"),
    "notify_url": lambda value: ("notify_conninfo", value),
    "poll_interval": _seconds,
}


def split_url(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the libpq URL, the driver's options): keyword ``options`` win over the URL's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    merged: dict[str, Any] = {}
    for key, value in query:
        if key in _OPTIONS:
            name, typed = _OPTIONS[key](value)
            merged[name] = typed
    merged.update(options)
    if merged.pop("pooler", None) == "transaction":
        merged.setdefault("prepare", False)
        merged.setdefault("listen", False)
    if merged.get("notify_conninfo"):
        merged["notify_conninfo"] = _libpq_url(merged["notify_conninfo"])
    return _libpq_url(url), merged


def _libpq_url(url: str) -> str:
    """``url`` without our parameters (libpq refuses parameters it does not know)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return urlunsplit(parts._replace(query=urlencode(
        [(k, v) for k, v in query if k not in _OPTIONS])))
