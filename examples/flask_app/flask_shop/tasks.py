"""The jobs. Workers import this module (``TASKQUEUE_IMPORTS``)."""

from __future__ import annotations

import os
from pathlib import Path

from taskqueue import task


@task(queue="payments", max_attempts=5, retry_backoff=2.0)
def charge_card(order_id: int, cents: int) -> dict[str, int | str]:
    """Charge an order (here: append it to a ledger file)."""
    ledger = Path(os.environ.get("SHOP_LEDGER", "storage/ledger.log"))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as fh:
        fh.write(f"{order_id} {cents}\n")
    return {"order": order_id, "charged": cents, "status": "paid"}
