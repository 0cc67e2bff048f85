"""Autoscaling: grow and shrink the worker count with queue depth and time to drain.

Every ``interval`` seconds the supervisor reports the ready depth of its queues and how many
jobs finished since the last look. The target is the count that would drain the backlog within
``target_drain`` seconds at the throughput one worker showed, bounded by MIN and MAX, moved at
most ``max_step`` at a time and not again before ``cooldown`` seconds. With nothing waiting it
shrinks back to MIN. Each change comes with its reason, which the supervisor logs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class Autoscaler:
    minimum: int
    maximum: int
    target_drain: float = 10.0
    cooldown: float = 5.0
    max_step: int = 2
    interval: float = 1.0
    _last_change: float = field(default=-1e9)
    _last_look: float = field(default=0.0)
    _last_done: int | None = field(default=None)
    _rate: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"--autoscale needs 1 <= MIN <= MAX, got {self.minimum},"
                             f"{self.maximum}")

    def due(self) -> bool:
        return time.monotonic() - self._last_look >= self.interval

    def decide(self, current: int, depth: int, finished_total: int) -> tuple[int, str] | None:
        """The new worker count and why, or None to stay."""
        now = time.monotonic()
        elapsed = now - self._last_look if self._last_look else 0.0
        if self._last_done is not None and elapsed > 0:
            rate = max(0, finished_total - self._last_done) / elapsed
            self._rate = rate if self._rate == 0 else 0.5 * self._rate + 0.5 * rate
        self._last_done, self._last_look = finished_total, now
        desired, why = self._target(current, depth)
        desired = max(self.minimum, min(self.maximum, desired))
        if desired == current or now - self._last_change < self.cooldown:
            return None
        step = max(-self.max_step, min(self.max_step, desired - current))
        self._last_change = now
        return current + step, why

    def _target(self, current: int, depth: int) -> tuple[int, str]:
        if depth == 0:
            return self.minimum, "no jobs waiting"
        per_worker = self._rate / max(current, 1)
        if per_worker <= 0:
            return current + self.max_step, f"{depth} jobs waiting and no throughput yet"
        drain = depth / self._rate if self._rate else math.inf
        needed = math.ceil(depth / (per_worker * self.target_drain))
        return needed, (f"{depth} jobs waiting at {self._rate:.0f} jobs/s with {current} "
                        f"workers: {drain:.0f}s to drain, target {self.target_drain:.0f}s")
