"""One set of rules for the names a job carries, checked once in the manager for every backend.

Queue names, task names, tags and idempotency keys are stored in indexed columns (255
characters on MySQL), hash keys (Redis) and file names (files), so each backend used to refuse a
different set of hostile names with a different message, or store them silently. These are the
rules, the same everywhere; a name that breaks one is refused before anything is stored, with a
message naming the field and the problem.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

#: Longest name of each kind, in characters. A queue leaves room for its capability suffix
#: (``emails@gpu+eu``) and a task name for the derived unique key (``unique:NAME:digest``):
#: every stored column stays within 255.
MAX_QUEUE = 200
MAX_TASK = 200
MAX_TAG = 100
MAX_TAGS = 50
MAX_KEY = 255
MAX_ROUTED_QUEUE = 255


def _check(kind: str, value: object, limit: int) -> str:
    if type(value) is str and value.isascii() and value.isprintable() \
            and len(value) <= limit and value.strip():
        return value  # the common case, without a call per character: no ASCII control
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{kind} must not be empty" + (" or blank" if value else ""))
    if len(value) > limit:
        raise ValueError(f"{kind} is {len(value)} characters long; the limit is {limit} "
                         f"(starts {value[:20]!r})")
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"{kind} contains the control character {char!r} at position "
                             f"{position}: {value[:40]!r}")
    return value


def check_queue(name: object) -> str:
    return _check("queue name", name, MAX_QUEUE)


def check_routed_queue(name: str) -> str:
    """The queue a job lands in, capability suffix included."""
    return _check("queue name with its required tags", name, MAX_ROUTED_QUEUE)


def check_task_name(name: object) -> str:
    return _check("task name", name, MAX_TASK)


def check_tags(tags: Iterable[object], kind: str = "tag") -> tuple[str, ...]:
    checked = tuple(_check(kind, t, MAX_TAG) for t in tags)
    if len(checked) > MAX_TAGS:
        raise ValueError(f"a job may carry at most {MAX_TAGS} {kind}s, got {len(checked)}")
    return checked


def check_key(key: object) -> str:
    return _check("idempotency key", key, MAX_KEY)
