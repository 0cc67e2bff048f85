"""The jobs. Workers import this module: ``taskqueue work --app fastapi_shop.tasks``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from taskqueue import current_job, task


def outbox() -> Path:
    """Where "sent" mail goes (a file, so tests can see what the worker did)."""
    path = Path(os.environ.get("SHOP_OUTBOX", "storage/outbox.log"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@task(queue="emails", max_attempts=5)
async def send_welcome(email: str) -> str:
    """An ``async def`` job: runs on the worker's event loop."""
    await asyncio.sleep(0.01)  # talk to the mail server
    with outbox().open("a") as fh:
        fh.write(f"welcome {email} attempt={current_job().attempt}\n")
    return f"welcome mail sent to {email}"


@task(queue="images", timeout=30)
def make_thumbnail(user_id: int, size: int = 128) -> dict[str, int]:
    """A plain (sync) job."""
    return {"user_id": user_id, "size": size}
