"""Tasks for the dashboard's end-to-end test (imported by its worker with --app)."""

from __future__ import annotations

from pathlib import Path

from taskqueue import task


@task(name="e2e.until_flag", max_attempts=1)
def until_flag(flag: str) -> str:
    """Fails until the file ``flag`` exists: lets a test fail jobs, fix the cause, retry them."""
    if not Path(flag).exists():
        raise RuntimeError(f"flag file missing: {flag}")
    return "ok"
