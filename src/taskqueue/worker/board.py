"""Status boards: what each worker process tells its supervisor, in shared memory.

One file-backed shared mapping holds a fixed number of regions; every worker process life gets
its own region (a recycled worker and its replacement overlap briefly, so two lives of one slot
hold two regions). A region has two halves:

* the live status, rewritten at most every ``PUBLISH_INTERVAL`` seconds by a small thread of the
  worker, and only when something changed: its heartbeat time, how many jobs it processed, the
  jobs running now (id, lease epoch, attempt, deadline) and, once it decided to leave, why;
* the final summary, written once as the worker exits;

and, before them, a table of the ids of the jobs whose code is running, the one thing written
per job (an id into a fixed slot when a job starts, zeros when it ends; no serialization). It is
exact at every moment, so when a worker dies the supervisor knows which of its jobs had started
(they used an attempt) and which were only reserved (they go back unrun).

Nothing else is written per job: the worker calls ``started``/``ended`` directly (no event is
built for them), which update a dict in its own memory and that table, so supervision costs a
few microseconds per job (measured: see docs/benchmarks.md). The watchdogs need no more than the
oldest deadline and a heartbeat, and a job reaches them within one publish interval, far inside
any hard timeout.

No lock is shared between processes, so a worker killed mid-write cannot wedge anybody: each
half is guarded by a sequence number (odd while writing), and a torn read is skipped until the
next one.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

REGION_BYTES = 16384
#: Running jobs listed on the board (the watchdogs settle these when they kill the process).
MAX_LISTED = 20
_ENTRY = struct.Struct("=40s")  # the id of a job whose code is running, or zeros
_OVERFLOW = struct.Struct("=q")  # jobs running beyond the table
_TABLE = _OVERFLOW.size + MAX_LISTED * _ENTRY.size
HALF = (REGION_BYTES - _TABLE) // 2
#: Seconds between two publications of a worker's live status (when it changed).
PUBLISH_INTERVAL = 0.2
_HEADER = struct.Struct("=II")  # sequence number, payload length


class Boards:
    """The shared mapping: ``capacity`` regions, by index."""

    def __init__(self, capacity: int, fd: int | None = None) -> None:
        if fd is None:
            fd = _anonymous_file(capacity * REGION_BYTES)
        self.fd = fd
        self.capacity = capacity
        self.map = mmap.mmap(fd, capacity * REGION_BYTES)
        self._free = list(range(capacity - 1, -1, -1))

    def take(self) -> int:
        """A free region, cleared (raises IndexError when all are in use)."""
        index = self._free.pop()
        start = index * REGION_BYTES
        self.map[start:start + REGION_BYTES] = bytes(REGION_BYTES)
        return index

    def give_back(self, index: int) -> None:
        if index not in self._free:
            self._free.append(index)

    def write(self, index: int, half: int, value: dict[str, Any]) -> None:
        raw = orjson.dumps(value)[: HALF - _HEADER.size]
        start = _start(index, half)
        seq = _HEADER.unpack_from(self.map, start)[0]
        _HEADER.pack_into(self.map, start, seq + 1, 0)  # odd: being written
        self.map[start + _HEADER.size:start + _HEADER.size + len(raw)] = raw
        _HEADER.pack_into(self.map, start, seq + 2, len(raw))

    def read(self, index: int, half: int) -> dict[str, Any] | None:
        start = _start(index, half)
        seq, length = _HEADER.unpack_from(self.map, start)
        if seq % 2 or not length or length > HALF - _HEADER.size:
            return None
        raw = self.map[start + _HEADER.size:start + _HEADER.size + length]
        if _HEADER.unpack_from(self.map, start)[0] != seq:
            return None  # rewritten while we copied it: next time
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def status(self, index: int) -> dict[str, Any] | None:
        """A region's live status, if it reads whole and well formed."""
        state = self.read(index, 0)
        return state if _well_formed(state) else None

    def summary(self, index: int) -> dict[str, Any] | None:
        return self.read(index, 1)

    def mark(self, index: int, entry: int, job_id: str) -> None:
        _ENTRY.pack_into(self.map, _entry(index, entry), job_id.encode())

    def unmark(self, index: int, entry: int) -> None:
        _ENTRY.pack_into(self.map, _entry(index, entry), b"")

    def set_overflow(self, index: int, count: int) -> None:
        _OVERFLOW.pack_into(self.map, index * REGION_BYTES, count)

    def started(self, index: int) -> set[str] | None:
        """The jobs whose code is running (was, if the worker died); None when the table
        cannot say (more were running than it holds)."""
        base = index * REGION_BYTES
        if _OVERFLOW.unpack_from(self.map, base)[0] > 0:
            return None
        ids = (_ENTRY.unpack_from(self.map, _entry(index, e))[0].rstrip(b"\0")
               for e in range(MAX_LISTED))
        return {raw.decode() for raw in ids if raw}

    def handovers(self, but: int) -> list[dict[str, Any]]:
        """What the other regions' workers (live, recycled or gone) published for a later
        worker of the pool, newest heartbeat first."""
        found = []
        for index in range(self.capacity):
            state = self.status(index) if index != but else None
            if state is not None and isinstance(state.get("handover"), dict):
                found.append((state["beat"], state["handover"]))
        return [handover for _, handover in sorted(found, key=lambda f: -f[0])]

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def _start(index: int, half: int) -> int:
    return index * REGION_BYTES + _TABLE + half * HALF


def _entry(index: int, entry: int) -> int:
    return index * REGION_BYTES + _OVERFLOW.size + entry * _ENTRY.size


def _anonymous_file(size: int) -> int:
    """A file descriptor for ``size`` bytes of shared memory that a fresh process can map."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("taskqueue-boards", 0)
    else:  # pragma: no cover - not Linux
        import tempfile

        fd, path = tempfile.mkstemp(prefix="taskqueue-boards-")
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


def _well_formed(state: dict[str, Any] | None) -> bool:
    """A status the watchdogs can trust."""
    return (isinstance(state, dict) and isinstance(state.get("beat"), int | float)
            and isinstance(state.get("running"), list)
            and all(isinstance(j, dict) and "job_id" in j and "deadline" in j
                    for j in state["running"]))


class StatusPublisher:
    """The worker side of one region: follows the worker's events in memory and publishes
    them from a daemon thread, coalesced."""

    def __init__(self, boards: Boards, index: int) -> None:
        self.boards = boards
        self.index = index
        #: job id -> (attempt, lease epoch, timeout, max attempts, start time)
        self.running: dict[str, tuple[int, int, float, int, float]] = {}
        self.beat = time.time()
        self.leaving: str | None = None
        self._entries: dict[str, int] = {}
        self._free = list(range(MAX_LISTED - 1, -1, -1))
        #: Where each entry of the table is in the mapping (``Boards.mark`` without the calls).
        self._map = boards.map
        self._offsets = [_entry(index, e) for e in range(MAX_LISTED)]
        self._overflow = 0
        self._table_lock = threading.Lock()
        #: ``soon()`` is called when the ``soon_at``-th job starts (0: never).
        self.soon_at = 0
        self.soon: Callable[[], None] | None = None
        #: Counts the jobs started (``next`` is one atomic step on every job thread).
        self._starts = itertools.count(1)
        self.processed: Callable[[], int] = lambda: 0
        #: What a later worker of the pool may take over (``Boards.handovers``), published
        #: with the status.
        self.handover: Callable[[], dict[str, Any]] = dict
        self._changed = True
        self._lock = threading.RLock()  # the board thread and the main thread both publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- called by the worker on its job threads, once per job (cheap: no event, no I/O) ----------
    def started(self, job_id: str, attempt: int, epoch: int, timeout: float,
                max_attempts: int) -> None:
        """A job's code starts: listed in memory (published by the thread) and its id written
        into the table at once (the supervisor must know it started if the process dies).
        Job threads (``--concurrency``) call this and ``ended`` at once without a lock: each
        takes and gives back its table entry with one list operation, which is atomic."""
        self.running[job_id] = (attempt, epoch, timeout, max_attempts, time.time())
        try:
            entry = self._free.pop()
        except IndexError:
            with self._table_lock:
                self._overflow += 1
                self.boards.set_overflow(self.index, self._overflow)
        else:
            self._entries[job_id] = entry
            _ENTRY.pack_into(self._map, self._offsets[entry], job_id.encode())
        self._changed = True
        if next(self._starts) == self.soon_at and self.soon is not None:
            self.soon()

    def ended(self, job_id: str) -> None:
        """A job's code has ended (settled or not: the store knows the rest)."""
        if self.running.pop(job_id, None) is None:
            return
        entry = self._entries.pop(job_id, None)
        if entry is not None:
            _ENTRY.pack_into(self._map, self._offsets[entry], b"")
            self._free.append(entry)
        else:
            with self._table_lock:
                self._overflow -= 1
                self.boards.set_overflow(self.index, self._overflow)
        self._changed = True

    def on_beat(self, event: Any) -> None:
        self.beat = time.time()
        self._changed = True

    def alive(self) -> None:
        """Say the process is alive without a heartbeat (it is waiting for the store)."""
        self.beat = time.time()
        self.publish()

    def subscribe(self, bus: Any) -> None:
        from taskqueue.observability import events as ev

        bus.subscribe(self.on_beat, ev.WORKER_HEARTBEAT)

    # -- publishing -----------------------------------------------------------------------------
    def start(self) -> None:
        self.publish()
        self._thread = threading.Thread(target=self._run, name="taskqueue-board", daemon=True)
        self._thread.start()

    def leave(self, reason: str) -> None:
        self.leaving = reason
        self.publish()

    def publish(self) -> None:
        with self._lock:
            self._changed = False
            jobs: list[tuple[str, tuple[int, int, float, int, float]]] = []
            for _ in range(3):  # job threads may change the dict while it is copied
                try:
                    jobs = list(self.running.items())
                    break
                except RuntimeError:
                    continue
            self.boards.write(self.index, 0, {
                "beat": self.beat, "running": [_listed(job_id, *job)
                                               for job_id, job in jobs[:MAX_LISTED]],
                "processed": self.processed(), "leaving": self.leaving,
                "handover": self.handover()})

    def finish(self, summary: dict[str, Any]) -> None:
        self._stop.set()
        self.running.clear()
        self.publish()
        self.boards.write(self.index, 1, summary)

    def _run(self) -> None:
        last_processed = -1
        while not self._stop.wait(PUBLISH_INTERVAL):
            processed = self.processed()
            if self._changed or processed != last_processed:
                last_processed = processed
                self.publish()


def _listed(job_id: str, attempt: int, epoch: int, timeout: float, max_attempts: int,
            started: float) -> dict[str, Any]:
    """A running job as the watchdogs read it."""
    return {"job_id": job_id, "attempt": attempt, "deadline": started + float(timeout or 0),
            "epoch": epoch, "timeout": timeout, "max_attempts": max_attempts}
