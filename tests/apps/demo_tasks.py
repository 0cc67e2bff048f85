"""A small shop's tasks, for ``scripts/screenshots.py``: realistic names, run times and errors
(a declined card, a webhook timing out, a flaky SMTP server), so the dashboard's pictures show
what an operator would see. Failures are seeded by the arguments, so a run is repeatable."""

from __future__ import annotations

import random
import time

from taskqueue import task
from taskqueue.errors import NonRetryable


class CardDeclined(NonRetryable):
    """The payment provider refused the charge (never retried)."""


def _pause(low: float, high: float, seed: object) -> None:
    time.sleep(random.Random(str(seed)).uniform(low, high))


@task(name="emails.send_welcome", queue="emails", max_attempts=3, retry_backoff=2)
def send_welcome(user_id: int, template: str = "welcome") -> str:
    _pause(0.02, 0.15, user_id)
    if user_id % 37 == 0:
        raise ConnectionError("SMTP server smtp.mailhost.example closed the connection")
    return f"sent {template} to user {user_id}"


@task(name="images.resize", queue="images", max_attempts=2)
def resize(image_id: int, width: int = 800) -> dict[str, int]:
    _pause(0.1, 0.6, image_id)
    if image_id % 50 == 7:
        raise ValueError(f"image {image_id}: not a JPEG file (corrupt header)")
    return {"image_id": image_id, "width": width}


@task(name="billing.charge", queue="billing", max_attempts=3, retry_backoff=1,
      retry_jitter=False)
def charge(customer_id: int, amount_cents: int, currency: str = "EUR") -> str:
    _pause(0.05, 0.3, customer_id)
    if customer_id % 11 == 0:
        raise CardDeclined("card declined: insufficient funds (issuer code 51)")
    if customer_id % 13 == 0:
        raise TimeoutError("payment provider did not answer within 10 s")
    return f"charged {amount_cents} {currency}"


@task(name="webhooks.deliver", queue="webhooks", max_attempts=5, retry_backoff=900,
      retry_backoff_max=3600)
def deliver(endpoint: str, event: str) -> int:
    _pause(0.05, 0.2, endpoint + event)
    if "partner-b" in endpoint:
        raise TimeoutError(f"POST {endpoint} timed out after 10 s")
    return 200


@task(name="reports.build", queue="reports")
def build_report(day: str, kind: str = "sales") -> str:
    _pause(0.5, 1.5, day)
    return f"{kind} report for {day}"


@task(name="orders.summarize", queue="images")
def summarize(results: list[dict[str, int]]) -> int:
    return len(results)
