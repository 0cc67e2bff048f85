"""Browser sessions that can end before their cookie does.

The session cookie is signed, so it cannot be forged, but a signed cookie alone stays valid for
its whole lifetime: a copy saved before logout would still work. Each login therefore opens a
session entry in the store (a random id, kept only as its hash, with the session's lifetime as
TTL); every request with a cookie checks that its entry still exists, and logout removes it.
Several dashboard processes on one store share the entries, so a logout on one ends the
session on all of them (within ``refresh`` seconds; at once on the process that logged out).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from typing import Any

KIND = "dashboard_session"


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:32]


class SessionRegistry:
    def __init__(self, driver: Any, ttl_seconds: float, refresh: float = 1.0) -> None:
        self.driver, self.ttl, self.refresh = driver, ttl_seconds, refresh
        self._live: set[str] = set()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def open(self, user: str) -> str:
        """A new session id for ``user`` (goes into the signed cookie)."""
        sid = secrets.token_urlsafe(24)
        key = _key(sid)
        self.driver.registry_put(KIND, key, {"key": key, "user": user, "since": time.time()},
                                 ttl_seconds=self.ttl)
        with self._lock:
            self._live.add(key)
        return sid

    def close(self, sid: object) -> None:
        if not isinstance(sid, str):
            return
        key = _key(sid)
        with self._lock:
            self._live.discard(key)
        self.driver.registry_remove(KIND, key)

    def close_user(self, user: str) -> int:
        """End every session of ``user`` (a removed user); returns how many."""
        ended = [e["key"] for e in self.driver.registry_list(KIND) if e.get("user") == user]
        for key in ended:
            self.driver.registry_remove(KIND, key)
        with self._lock:
            self._live.difference_update(ended)
        return len(ended)

    def alive(self, sid: object) -> bool:
        if not isinstance(sid, str):
            return False
        now = time.monotonic()
        with self._lock:
            stale = now - self._read_at > self.refresh
        if stale:
            live = {str(e.get("key")) for e in self.driver.registry_list(KIND)}
            with self._lock:
                self._live, self._read_at = live, now
        with self._lock:
            return _key(sid) in self._live
