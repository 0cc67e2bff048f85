"""Capability routing: the queue a job that requires tags lands in (``<queue>@<tag>+<tag>``),
and which tags a worker can hold. Workers serve those queues (``worker/queues.py``); the client
routes jobs there at enqueue."""

from __future__ import annotations

import re
from collections.abc import Sequence

from taskqueue.errors import ConfigError

MAX_TAGS = 6
_BAD_TAG = re.compile(r"[,+@\s]")


def check_tags(tags: Sequence[str], whose: str) -> None:
    """Raise ConfigError unless a worker can hold all of ``tags``."""
    for tag in tags:
        if not isinstance(tag, str) or not tag or _BAD_TAG.search(tag):
            raise ConfigError(f"{whose}: capability tag {tag!r} can never be held by a worker "
                              "(tags are non-empty, without commas, '+', '@' or spaces)")
    if len(set(tags)) > MAX_TAGS:
        raise ConfigError(f"{whose}: {len(set(tags))} capability tags, but a worker holds at "
                          f"most {MAX_TAGS}: no worker could ever run it")


def routing_queue(queue: str, requires: Sequence[str] | str) -> str:
    """The queue a job lands in when it requires capability tags; ConfigError when no worker
    could ever hold them all (the job would wait forever)."""
    wanted = [requires] if isinstance(requires, str) else list(requires)
    stripped = [t.strip() if isinstance(t, str) else t for t in wanted]
    check_tags(stripped, f"a job requiring {wanted!r}")
    tags = sorted(set(stripped))
    return f"{queue}@{'+'.join(tags)}" if tags else queue
