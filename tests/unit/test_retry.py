from __future__ import annotations

from taskqueue import NonRetryable, PayloadError
from taskqueue.worker.retry import RetryPolicy, retry_in


def test_exponential_backoff_without_jitter() -> None:
    policy = RetryPolicy(backoff=2, backoff_max=30, jitter=False)
    assert [policy.delay(a) for a in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_jitter_stays_in_upper_half() -> None:
    policy = RetryPolicy(backoff=4, jitter=True)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(8 <= d <= 16 for d in delays) and len(set(delays)) > 100


def test_when_to_stop_retrying() -> None:
    policy = RetryPolicy(jitter=False)
    assert retry_in(ValueError(), 1, 3, policy) == 1
    assert retry_in(ValueError(), 3, 3, policy) is None
    assert retry_in(NonRetryable("no"), 1, 3, policy) is None
    assert retry_in(PayloadError("bad"), 1, 3, policy) is None
