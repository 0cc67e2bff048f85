"""An in-memory index of the ready directories, so a reservation does not parse and sort every
ready file name on every call.

Per queue it keeps the parsed names of ``ready/`` (best first) and the directory's mtime when it
was last listed. Each refresh costs one ``stat``; the directory is listed again only when its
mtime changed (any create, rename or unlink in it changes it), and only names not seen before
are parsed. A listing is trusted as unchanged only when it was taken well after the mtime it
saw (:data:`_RACY_NS`): file systems stamp mtimes from a coarse clock, so a change made in the
same clock tick as the listing could otherwise keep the same mtime and go unseen. Whatever the
mtime says, the directory is listed again at least every :data:`_MAX_AGE_NS`.

The index is only a hint about which files to try: a claim always re-reads the file under the
job's lock and renames it (exactly one process wins), so a name that vanished meanwhile (taken
by another process, cancelled, deleted) just fails its claim and is dropped from the index.
Names disappear from the index when a claim fails or succeeds, or when a later listing no
longer has them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from taskqueue.drivers._files_scan import Candidate
from taskqueue.drivers._files_store import READY, Store, ready_key

_RACY_NS = 50_000_000         # a listing this close to the mtime it saw may have missed a change
_MAX_AGE_NS = 1_000_000_000   # list again at least this often, whatever the mtime says


def _mtime_ns(path: Path) -> int:
    """A directory's modification time (a function of its own so tests can coarsen it)."""
    return os.stat(path).st_mtime_ns


class _Dir:
    """The parsed view of one ready directory."""

    __slots__ = ("path", "queue", "mtime", "listed_at", "listed_mono", "known", "order", "start")

    def __init__(self, path: Path, queue: str) -> None:
        self.path = path
        self.queue = queue
        self.mtime: int | None = None
        self.listed_at = 0      # wall clock, comparable with mtimes
        self.listed_mono = 0    # monotonic clock, for the listing's age
        self.known: dict[str, Candidate | None] = {}   # name -> candidate (None: not a job)
        self.order: list[Candidate] = []               # known candidates, best first
        self.start = 0                                 # order[:start] are all dropped

    def refresh(self) -> None:
        now, mono = time.time_ns(), time.monotonic_ns()
        try:
            mtime = _mtime_ns(self.path)
        except FileNotFoundError:
            self.mtime, self.known, self.order, self.start = None, {}, [], 0
            return
        if (mtime == self.mtime and mtime + _RACY_NS < self.listed_at
                and mono - self.listed_mono < _MAX_AGE_NS):
            return
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            names = []
        self.mtime, self.listed_at, self.listed_mono = mtime, now, mono
        known = self.known
        # in name order: the fixed-width names sort like their keys (priority, due time, id),
        # so sorting the parsed candidates below finds them in order (a linear pass instead of
        # comparing 20,000 candidates' keys, most of a large backlog's first reservation)
        fresh = sorted(name for name in names if name not in known)
        if len(known) + len(fresh) > 2 * len(names) + 64:  # many names gone: forget them
            listed = set(names)
            self.known = known = {n: c for n, c in known.items() if n in listed}
            self.order = [c for c in self.order[self.start:] if known.get(c.name) is c]
            self.start = 0
        added: list[Candidate] = []
        for name in fresh:
            key = ready_key(name)
            cand = None if key is None else Candidate(key, self.queue, name, key[2])
            known[name] = cand
            if cand is not None:
                added.append(cand)
        if added:
            added.sort()
            order = self.order[self.start:]
            if order and added[0] < order[-1]:
                order += added
                order.sort()  # two sorted runs: a linear merge
            else:
                order += added
            self.order, self.start = order, 0

    def live(self) -> list[Candidate]:
        """The known candidates, best first (a snapshot: names may vanish meanwhile)."""
        order, known, start = self.order, self.known, self.start
        while start < len(order) and known.get(order[start].name) is not order[start]:
            start += 1
        self.start = start
        return order[start:]

    def current(self, cand: Candidate) -> bool:
        return self.known.get(cand.name) is cand


class ReadyIndex:
    """The ready directories of one store, indexed per queue (thread-safe)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._dirs: dict[str, _Dir] = {}
        self._lock = threading.Lock()

    def _dir(self, queue: str) -> _Dir | None:
        entry = self._dirs.get(queue)
        if entry is None:
            try:
                path = self._store.state_dir(queue, READY)
            except ValueError:  # a queue name no job can have
                return None
            entry = self._dirs[queue] = _Dir(path, queue)
        return entry

    def due(self, queues: Sequence[str], now: float) -> Iterator[Candidate]:
        """Ready jobs of ``queues`` that are due, best first (priority, due time, id)."""
        now_us = int(now * 1_000_000)
        lists: list[list[Candidate]] = []
        entries: dict[str, _Dir] = {}
        with self._lock:
            for queue in dict.fromkeys(queues):
                entry = self._dir(queue)
                if entry is not None:
                    entry.refresh()
                    lists.append(entry.live())
                    entries[queue] = entry
        merged = lists[0] if len(lists) == 1 else sorted(c for part in lists for c in part)
        return (c for c in merged if c.key[1] <= now_us and entries[c.queue].current(c))

    def next_due(self, queues: Sequence[str]) -> float | None:
        """When the first ready job of ``queues`` is (or was) due, in epoch seconds."""
        with self._lock:
            dues: list[int] = []
            for queue in dict.fromkeys(queues):
                entry = self._dir(queue)
                if entry is not None:
                    entry.refresh()
                    dues.extend(c.key[1] for c in entry.live() if entry.current(c))
        return min(dues) / 1_000_000 if dues else None

    def drop(self, cand: Candidate) -> None:
        """Forget a name that was claimed, or that a claim found gone or misplaced."""
        with self._lock:
            entry = self._dirs.get(cand.queue)
            if entry is not None:
                entry.known.pop(cand.name, None)

    def forget(self) -> None:
        """Drop everything (after an error: directories may have been removed or replaced)."""
        with self._lock:
            self._dirs.clear()
