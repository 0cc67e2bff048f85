"""The key under which ``Client`` remembers a call's settled options (``jobs.settle``): the
consecutive jobs of one task in ``push_many``, and a task pushed again and again with the same
options, have them checked once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from taskqueue.jobs.priority import Priority

#: Option values a settled-options key may hold: immutable, and equal only to values of their
#: own type that settle the same way (the key holds each value's type: ``True == 1``, but
#: ``priority=True`` is refused where 1 is not).
_KEYABLE = frozenset({str, int, float, bool, type(None), timedelta, Priority})


def settle_key(name: str, options: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """A key for the settled options of a call of task ``name`` (its ``options`` with
    ``overrides`` on top), or None when they must be settled afresh: ``eta`` (it counts from
    now) or a value other than a plain scalar, a timedelta, a Priority or a tuple or list of
    strings (a list is keyed by what it holds now)."""
    if "eta" in options or "eta" in overrides:
        return None
    items: list[Any] = [name]
    for source in (options, overrides):
        for option, value in source.items():
            kind = type(value)
            if kind is tuple or kind is list:
                if not all(type(v) is str for v in value):
                    return None
                value = tuple(value)
            elif kind not in _KEYABLE:
                return None
            items += (option, kind, value)
        items.append(None)
    return tuple(items)
