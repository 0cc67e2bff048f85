"""Named locks, windowed counters and the worker/node registry of the files backend.

Each is one small JSON document under ``coord/``, changed read-modify-write while holding its
own flock lock file; readers need no lock because every write replaces the file atomically.
Expired entries are dropped whenever the document is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from taskqueue.drivers._files_store import Store, log, read_file

T = TypeVar("T")
Doc = dict[str, Any]


class Coordination:
    """The coordination verbs of the Driver protocol, over JSON files."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _read(self, doc: str) -> Doc:
        path = self._store.coord / f"{doc}.json"
        try:
            data = orjson.loads(read_file(path))
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError as exc:
            self._store.quarantine(path, f"coordination file is not valid JSON ({exc})")
            return {}
        if not isinstance(data, dict):
            self._store.quarantine(path, "coordination file is not a JSON object")
            return {}
        return data

    def _update(self, doc: str, change: Callable[[Doc, float], T]) -> T:
        """Run ``change(document, now)`` under the document's lock and write the result back."""
        with self._store.named_lock(f"coord-{doc}").hold():
            data = self._read(doc)
            before = orjson.dumps(data)
            now = time.time()
            result = change(data, now)
            for key in [k for k, v in data.items() if not _live(v, now)]:
                del data[key]
            after = orjson.dumps(data)
            if after != before:
                self._store.write(self._store.coord / f"{doc}.json", after)
            return result

    # -- locks -----------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl_seconds: float) -> bool:
        def change(locks: Doc, now: float) -> bool:
            held = locks.get(name)
            if held and held.get("owner") != owner and _live(held, now):
                return False
            locks[name] = {"owner": owner, "expires_at": now + ttl_seconds}
            return True

        return self._update("locks", change)

    def lock_release(self, name: str, owner: str) -> bool:
        def change(locks: Doc, now: float) -> bool:
            held = locks.get(name)
            if not held or held.get("owner") != owner:
                return False
            del locks[name]
            return True

        return self._update("locks", change)

    # -- counters --------------------------------------------------------------------------
    def counter_incr(self, key: str, amount: int, window_seconds: float) -> int:
        def change(counters: Doc, now: float) -> int:
            entry = counters.get(key)
            if entry and _live(entry, now):
                entry["value"] = int(entry.get("value", 0)) + amount
            else:
                entry = counters[key] = {"value": amount, "expires_at": now + window_seconds}
            return int(entry["value"])

        return self._update("counters", change)

    # -- registry --------------------------------------------------------------------------
    def registry_put(self, kind: str, key: str, data: dict[str, Any], ttl_seconds: float) -> None:
        def change(entries: Doc, now: float) -> None:
            entries[_entry_key(kind, key)] = {"kind": kind, "key": key, "data": data,
                                              "expires_at": now + ttl_seconds}

        self._update("registry", change)

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        now = time.time()
        entries = [e for e in self._read("registry").values()
                   if isinstance(e, dict) and e.get("kind") == kind and _live(e, now)]
        entries.sort(key=lambda e: str(e.get("key")))
        return [dict(e["data"]) for e in entries if isinstance(e.get("data"), dict)]

    def registry_remove(self, kind: str, key: str) -> None:
        def change(entries: Doc, now: float) -> None:
            entries.pop(_entry_key(kind, key), None)

        self._update("registry", change)


def _entry_key(kind: str, key: str) -> str:
    return f"{kind}\x00{key}"


def _live(entry: object, now: float) -> bool:
    """True for a well-formed entry whose TTL has not run out."""
    if not isinstance(entry, dict):
        log.warning("files store: dropping malformed coordination entry %r", entry)
        return False
    expires = entry.get("expires_at")
    return isinstance(expires, int | float) and expires > now
