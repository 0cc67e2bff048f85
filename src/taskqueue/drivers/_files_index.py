"""An in-memory index of the ready directories, so a reservation does not parse and sort every
ready file name on every call.

Per queue it keeps the job file names of ``ready/`` (best first) and the directory's mtime when
it was last listed. Each refresh costs one ``stat``; the directory is listed again only when its
mtime changed (any create, rename or unlink in it changes it), and only names not seen before
are added. A listing is trusted as unchanged only when it was taken well after the mtime it
saw (:data:`_RACY_NS`): file systems stamp mtimes from a coarse clock, so a change made in the
same clock tick as the listing could otherwise keep the same mtime and go unseen. Whatever the
mtime says, the directory is listed again at least every :data:`_MAX_AGE_NS`. A listing keeps
names as sorted strings and parses one only when a reservation gets to it, so the first
listing of a large backlog costs a ``listdir`` and a string sort; a worker that waits to start
(a standby) builds it before it starts (:meth:`ReadyIndex.warm`).

The index is only a hint about which files to try: a claim always re-reads the file under the
job's lock and renames it (exactly one process wins), so a name that vanished meanwhile (taken
by another process, cancelled, deleted) just fails its claim and is dropped from the index.
Names disappear from the index when a claim fails or succeeds, or when a later listing no
longer has them.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from taskqueue.drivers._files_scan import Candidate
from taskqueue.drivers._files_store import READY, Store, keyed_job_name, ready_key

_RACY_NS = 50_000_000         # a listing this close to the mtime it saw may have missed a change
_MAX_AGE_NS = 1_000_000_000   # list again at least this often, whatever the mtime says
_WARM_NS = 1_000_000_000      # a worker waiting to start lists again at most this often


def _mtime_ns(path: Path) -> int:
    """A directory's modification time (a function of its own so tests can coarsen it)."""
    return os.stat(path).st_mtime_ns


def _due_us(name: str) -> int:
    return int(name[11:28])


def _tagged(names: list[str], queue: str) -> Iterator[tuple[str, str]]:
    return ((name, queue) for name in names)


def candidate(queue: str, name: str) -> Candidate | None:
    """The job a ready file name describes (None: not a job file's name)."""
    key = ready_key(name)
    return None if key is None else Candidate(key, queue, name, key[2])


class _Dir:
    """The listed view of one ready directory: job file names, best first.

    Names are kept as strings and sorted as strings: their fixed-width inverted priority and
    due time make string order the order of (priority, due time, id), so a listing costs a
    sort of strings in C, and a name is parsed only when a reservation gets to it.
    """

    __slots__ = ("path", "queue", "mtime", "listed_at", "listed_mono", "known", "order", "start")

    def __init__(self, path: Path, queue: str) -> None:
        self.path = path
        self.queue = queue
        self.mtime: int | None = None
        self.listed_at = 0      # wall clock, comparable with mtimes
        self.listed_mono = 0    # monotonic clock, for the listing's age
        self.known: set[str] = set()   # job file names listed and not dropped since
        self.order: list[str] = []     # names listed, best first (dropped ones included)
        self.start = 0                 # order[:start] are all dropped

    def refresh(self) -> None:
        now, mono = time.time_ns(), time.monotonic_ns()
        try:
            mtime = _mtime_ns(self.path)
        except FileNotFoundError:
            self.mtime, self.known, self.order, self.start = None, set(), [], 0
            return
        if (mtime == self.mtime and mtime + _RACY_NS < self.listed_at
                and mono - self.listed_mono < _MAX_AGE_NS):
            return
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            names = []
        self.mtime, self.listed_at, self.listed_mono = mtime, now, mono
        known, listed = self.known, set(names)
        known &= listed  # forget the names gone since (taken by another worker): none is tried
        fresh = [name for name in listed - known if keyed_job_name(name)]
        if len(self.order) - self.start > 2 * len(known) + 64:  # mostly gone: compact
            self.order = [n for n in self.order[self.start:] if n in known]
            self.start = 0
        if fresh:
            known.update(fresh)
            fresh.sort()
            order = self.order[self.start:]
            if order and fresh[0] < order[-1]:
                order += fresh
                order.sort()  # two sorted runs: a linear merge
            else:
                order += fresh
            self.order, self.start = order, 0

    def live(self) -> list[str]:
        """The known names, best first (a snapshot: names may vanish meanwhile)."""
        order, known, start = self.order, self.known, self.start
        while start < len(order) and order[start] not in known:
            start += 1
        self.start = start
        return order[start:]


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

    def warm(self, queues: Sequence[str]) -> None:
        """List the ready directories of ``queues`` unless they were listed in the last
        :data:`_WARM_NS` (a worker waiting to start calls this every 0.2 s, so its first
        reservation finds the index built). That reservation lists again anyway, since the
        worker it replaces kept changing the directory, and merges only what is new; listing
        more often than that only spent CPU beside the running worker (20,000 names: ~20 ms)."""
        mono = time.monotonic_ns()
        with self._lock:
            for queue in dict.fromkeys(queues):
                entry = self._dir(queue)
                if entry is not None and (not entry.listed_mono
                                          or mono - entry.listed_mono >= _WARM_NS):
                    entry.refresh()

    def due(self, queues: Sequence[str], now: float) -> Iterator[Candidate]:
        """Ready jobs of ``queues`` that are due, best first (priority, due time, id)."""
        now_us = int(now * 1_000_000)
        lists: list[tuple[str, list[str]]] = []
        entries: dict[str, _Dir] = {}
        with self._lock:
            for queue in dict.fromkeys(queues):
                entry = self._dir(queue)
                if entry is not None:
                    entry.refresh()
                    lists.append((queue, entry.live()))
                    entries[queue] = entry
        merged = heapq.merge(*(_tagged(names, queue) for queue, names in lists))
        for name, queue in merged:
            if _due_us(name) > now_us or name not in entries[queue].known:
                continue
            cand = candidate(queue, name)
            if cand is None:
                self.drop_name(queue, name)
            else:
                yield cand

    def next_due(self, queues: Sequence[str]) -> float | None:
        """When the first ready job of ``queues`` is (or was) due, in epoch seconds."""
        with self._lock:
            dues: list[int] = []
            for queue in dict.fromkeys(queues):
                entry = self._dir(queue)
                if entry is not None:
                    entry.refresh()
                    known = entry.known
                    dues.extend(_due_us(n) for n in entry.live() if n in known)
        return min(dues) / 1_000_000 if dues else None

    def mtimes(self, queues: Sequence[str]) -> list[int | None]:
        """The ready directories' modification times (None: no such directory)."""
        out: list[int | None] = []
        for queue in dict.fromkeys(queues):
            try:
                out.append(_mtime_ns(self._store.state_dir(queue, READY)))
            except FileNotFoundError:
                out.append(None)
            except ValueError:  # a queue name no job can have
                continue
        return out

    def settled(self, queues: Sequence[str]) -> bool:
        """Every listing of ``queues`` was taken long enough after the mtime it saw to hold
        every change stamped with that mtime (see :data:`_RACY_NS`): until then a change in
        the same clock tick leaves the mtime as it was, and only listing again finds it."""
        with self._lock:
            for queue in dict.fromkeys(queues):
                entry = self._dirs.get(queue)
                if (entry is not None and entry.mtime is not None
                        and entry.mtime + _RACY_NS >= entry.listed_at):
                    return False
        return True

    def drop(self, cand: Candidate) -> None:
        """Forget a name that was claimed, or that a claim found gone or misplaced."""
        self.drop_name(cand.queue, cand.name)

    def drop_name(self, queue: str, name: str) -> None:
        with self._lock:
            entry = self._dirs.get(queue)
            if entry is not None:
                entry.known.discard(name)

    def forget(self) -> None:
        """Drop everything (after an error: directories may have been removed or replaced)."""
        with self._lock:
            self._dirs.clear()
