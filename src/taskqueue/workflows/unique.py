"""Unique jobs: an idempotency key, given or derived from the task name and arguments, and how
long it blocks duplicates (its mode)."""

from __future__ import annotations

from typing import Any

from taskqueue.codec import dumps

#: ``unique=`` values -> the store's idempotency modes.
UNIQUE_MODES = {
    True: "finished",
    "until_started": "started",
    "until_finished": "finished",
    "while_exists": "exists",
    "debounce": "debounce",
}


def derive_key(name: str, body: dict[str, Any]) -> str:
    """A stable key for "this task with these arguments"."""
    import hashlib  # loads OpenSSL: only for unique jobs

    plain = {k: v for k, v in body.items() if not k.startswith("_") and k != "timeout_set"}
    digest = hashlib.sha256(name.encode() + b"\0" + dumps(plain)).hexdigest()[:32]
    return f"unique:{name}:{digest}"


def idempotency(name: str, body: dict[str, Any], opts: dict[str, Any]) -> tuple[
        str | None, str, float]:
    """(key, mode, window seconds) for a job about to be pushed."""
    unique, window = opts.get("unique"), opts.get("unique_for")
    key = opts.get("idempotency_key")
    if not unique and window is None:
        return key, "exists", 0.0
    if unique not in (None, False) and unique not in UNIQUE_MODES:
        choices = ", ".join(repr(k) for k in UNIQUE_MODES)
        raise ValueError(f"unique={unique!r} is not one of {choices}")
    key = key or derive_key(name, body)
    if window is not None:
        seconds = float(window.total_seconds() if hasattr(window, "total_seconds") else window)
        if seconds <= 0:
            raise ValueError(f"unique_for must be > 0 seconds, got {window}")
        return key, "window", seconds
    return key, UNIQUE_MODES[unique], 0.0
