"""The node registry: each supervisor publishes itself, and entries vanish when it stops.

A node is one ``taskqueue work`` supervisor (one machine may run several). Its entry carries
host, pid, version, queues, capability tags, worker count and load, refreshed every few seconds
with a TTL of three refresh periods, so a node that dies disappears on its own.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from taskqueue.drivers import Driver

KIND = "node"


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class NodeBeacon:
    """Publishes this node's entry; ``tick()`` is cheap to call often."""

    def __init__(self, driver: Driver, info: dict[str, Any], interval: float = 3.0) -> None:
        self.driver = driver
        self.info = {"id": node_id(), "host": socket.gethostname(), "pid": os.getpid(),
                     "started": time.time(), **info}
        self.interval = interval
        self._next = 0.0

    def tick(self, workers: int, **extra: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        entry = {**self.info, "workers": workers, "load": load, "last_seen": time.time(),
                 **extra}
        self.driver.registry_put(KIND, self.info["id"], entry, ttl_seconds=3 * self.interval)

    def leave(self) -> None:
        self.driver.registry_remove(KIND, self.info["id"])


def list_nodes(driver: Driver) -> list[dict[str, Any]]:
    return driver.registry_list(KIND)
