"""Which queues a worker reserves from, and in what order.

* ``--queue a,b`` (default): one reservation over all of them, highest priority first.
* ``--queue a,b --strict``: ``a`` first; ``b`` only when ``a`` has nothing ready.
* ``--queue a:5,b:1`` (weights): each round starts with a queue drawn in proportion to its
  weight, then falls back to the others, heaviest first, so no queue starves another.

Capability routing: a job that ``requires=["gpu"]`` is stored in the routing queue
``<queue>@gpu`` (tags sorted, joined by ``+``). A worker started with ``--tags gpu,eu`` also
serves ``q@eu``, ``q@gpu`` and ``q@eu+gpu`` for each of its queues: it reserves exactly the jobs
whose required tags it has, and a job is never taken by a worker that lacks one. A worker
holds at most ``MAX_TAGS`` tags, so a job requiring more, or a tag no worker can be given
(empty, or with a comma, ``+``, ``@`` or whitespace in it), could never run: it is refused at
enqueue with the reason.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from taskqueue.errors import ConfigError
from taskqueue.jobs.names import check_queue
from taskqueue.jobs.routing import MAX_TAGS, check_tags, routing_queue

__all__ = ["MAX_TAGS", "QueuePlan", "check_tags", "parse_queue_spec", "routing_queue"]


def parse_queue_spec(spec: Sequence[str]) -> list[tuple[str, float]]:
    """``["a:5", "b"]`` -> ``[("a", 5.0), ("b", 1.0)]``; bad weights raise ValueError."""
    out = []
    for item in spec:
        name, _, weight = item.partition(":")
        if not name:
            raise ValueError(f"empty queue name in {item!r}")
        check_queue(name)  # one no job can be pushed to would be served, silently, forever
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"queue weight must be a number in {item!r}") from None
        if value <= 0:
            raise ValueError(f"queue weight must be > 0 in {item!r}")
        out.append((name, value))
    return out


@dataclass
class QueuePlan:
    queues: list[tuple[str, float]]
    tags: tuple[str, ...] = ()
    strict: bool = False

    def __post_init__(self) -> None:
        try:
            check_tags(self.tags, "worker")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        self._rng = random.Random()

    @property
    def weighted(self) -> bool:
        return any(w != 1.0 for _, w in self.queues)

    def names(self) -> list[str]:
        """Every queue served, routing queues included (for waiting and status)."""
        return [name for base, _ in self.queues for name in self.expand(base)]

    def expand(self, queue: str) -> list[str]:
        subsets = (c for n in range(1, len(self.tags) + 1)
                   for c in itertools.combinations(sorted(self.tags), n))
        return [queue, *(routing_queue(queue, s) for s in subsets)]

    def rounds(self, paused: set[str]) -> list[list[str]]:
        """Groups of queues to try, in order, for one reservation."""
        active = [(q, w) for q, w in self.queues if q not in paused]
        if not active:
            return []
        if self.strict:
            order = active
        elif self.weighted:
            first = self._rng.choices(active, weights=[w for _, w in active])[0]
            rest = sorted((x for x in active if x is not first), key=lambda x: -x[1])
            order = [first, *rest]
        else:
            return [[n for q, _ in active for n in self.expand(q) if n not in paused]]
        return [[n for n in self.expand(q) if n not in paused] for q, _ in order]
