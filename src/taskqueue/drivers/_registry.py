"""Registry entries (worker presence, nodes, paused queues) as the SQL and Redis drivers read
them back: JSON objects. An entry that is not one (written by another program, cut short) is
left out with a warning, so `taskqueue workers`, `nodes`, the dashboard and health checks
still show the others instead of raising."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("taskqueue.drivers")


def decoded(kind: str, raws: Iterable[Any]) -> list[dict[str, Any]]:
    """The entries of ``kind`` that decode to JSON objects, in the order given."""
    found: list[dict[str, Any]] = []
    for raw in raws:
        try:
            entry = json.loads(raw)
        except (TypeError, ValueError) as exc:
            log.warning("registry entry of kind %r cannot be decoded, left out: %s", kind, exc)
            continue
        if isinstance(entry, dict):
            found.append(entry)
        else:
            log.warning("registry entry of kind %r is not a JSON object, left out", kind)
    return found
