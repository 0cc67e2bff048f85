"""Retry policy: exponential backoff with jitter, and which errors are worth retrying."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from taskqueue.errors import NonRetryable, PayloadError, UnknownTask


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``backoff * 2**(attempt-1)`` seconds, capped at ``backoff_max``; with jitter the delay
    is drawn uniformly from its upper half, so retries of a burst spread out."""

    backoff: float = 1.0
    backoff_max: float = 600.0
    jitter: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        return cls(
            backoff=float(options.get("retry_backoff", 1.0)),
            backoff_max=float(options.get("retry_backoff_max", 600.0)),
            jitter=bool(options.get("retry_jitter", True)),
        )

    def delay(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff * 2 ** max(0, attempt - 1))
        return random.uniform(base / 2, base) if self.jitter else base


def retryable(exc: BaseException) -> bool:
    """Errors that cannot succeed on another attempt go straight to the dead letter queue."""
    return not isinstance(exc, NonRetryable | PayloadError | UnknownTask)


def retry_in(
    exc: BaseException, attempt: int, max_attempts: int, policy: RetryPolicy
) -> float | None:
    """Seconds until the next attempt, or None when the job should be dead-lettered."""
    if not retryable(exc) or attempt >= max_attempts:
        return None
    return policy.delay(attempt)
