"""Priorities: higher runs first; equal priorities run first-in first-out."""

from __future__ import annotations

from enum import IntEnum

MIN_PRIORITY = 0
MAX_PRIORITY = 1000


class Priority(IntEnum):
    LOW = 1
    NORMAL = 5
    HIGH = 10
    URGENT = 20


def validate_priority(value: object) -> int:
    """Accept a Priority, an int in 0..1000 or a level name ("high"); raise ValueError otherwise."""
    if isinstance(value, str):
        try:
            return int(Priority[value.upper()])
        except KeyError:
            if not value.strip().lstrip("-").isdigit():
                names = ", ".join(p.name.lower() for p in Priority)
                raise ValueError(f"priority {value!r} is not a number or one of {names}") from None
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"priority must be an int in {MIN_PRIORITY}..{MAX_PRIORITY}, got {value!r}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority {value} is outside {MIN_PRIORITY}..{MAX_PRIORITY}")
    return int(value)
