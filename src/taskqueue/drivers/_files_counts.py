"""The read side of the files backend's job counters: fold the journals into ``counts.json``,
recount the directories when a writer died mid-move, and answer ``stats`` from the counts.

``coord/counts.json`` holds, per queue directory, the jobs per place (``p``/``r``: ready
pending/retrying, ``w``: waiting for a dependency, and the fixed state directories), the sum of
the waiting jobs' priorities, a histogram of the ready jobs' due times (for the oldest ready
job) and the completions per second of the last two minutes; and, per journal, how far it is
folded and how many of its groups were open there. A fold, under the ``counts-fold`` lock, reads
each journal from that offset, applies its delta lines, and removes the journals whose writer
is gone (their lock is free) once the counts that include them are saved. A journal whose
writer died inside a group (more ``?`` than ``!``) means a move may be missing its delta: the
fold then recounts, holding the counts lock exclusively so that no move is half-journaled while
it lists the directories (see ``_files_journal``). So does the first fold of a store without
``counts.json`` (a store made before counters, or one whose file was removed or damaged).

The due histogram is kept per millisecond while it has at most :data:`FINE_MAX` distinct times;
beyond that, due times from a cut-off on are kept per second (the oldest ready time is then
exact to the second, not the millisecond, until the queue empties or is recounted).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from taskqueue.drivers._files_names import from_fs_name
from taskqueue.drivers._files_store import (
    _PRIORITY_ZERO,
    FIXED_DIRS,
    KEYED_DIRS,
    READY,
    WAITING,
    Store,
    ignorable,
    keyed_job_name,
    log,
    read_file,
)
from taskqueue.drivers.base import QueueStats
from taskqueue.jobs.states import State

FINE_MAX = 4096  # distinct due milliseconds kept exactly per queue
_RING_SECONDS = 120  # completions per second kept this long
_PLACES = ("p", "r", "w", *FIXED_DIRS)
Queue = dict[str, Any]
Snapshot = dict[str, Any]


def _new_queue() -> Queue:
    return {
        "n": dict.fromkeys(_PLACES, 0),
        "ps": 0,
        "fine": {},
        "coarse": {},
        "cut": None,
        "done": {},
    }


def _add_due(q: Queue, due_us: int, sign: int) -> None:
    ms = due_us // 1000
    cut = q["cut"]
    if cut is None or ms < cut:
        hist, key = q["fine"], ms
    else:
        hist, key = q["coarse"], ms // 1000
    value = hist.get(key, 0) + sign
    if value:
        hist[key] = value
    else:
        hist.pop(key, None)
    fine = q["fine"]
    if len(fine) > FINE_MAX:  # keep the older half per ms, the rest per second from a cut-off
        keys = sorted(fine)
        boundary = keys[len(keys) // 2] // 1000 * 1000
        coarse = q["coarse"]
        for k in keys:
            if k >= boundary:
                sec = k // 1000
                coarse[sec] = coarse.get(sec, 0) + fine.pop(k)
        q["cut"] = boundary
    elif not fine and not q["coarse"]:
        q["cut"] = None


def _apply(queues: dict[str, Queue], line: str) -> None:
    """One delta line (see ``Store._delta``)."""
    fields = line.split("\t")
    sign = 1 if fields[0] == "+" else -1
    q = queues.get(fields[1])
    if q is None:
        q = queues[fields[1]] = _new_queue()
    sdir = fields[2]
    if sdir in KEYED_DIRS:
        place = "w" if sdir == WAITING else fields[5]
        q["n"][place] += sign
        q["ps"] += sign * (_PRIORITY_ZERO - int(fields[3]))
        if sdir == READY:
            _add_due(q, int(fields[4]), sign)
    else:
        q["n"][sdir] += sign
        if sign > 0 and fields[3]:
            done = q["done"]
            done[fields[3]] = done.get(fields[3], 0) + 1


class Counts:
    """Fold, recount and read the counters of one store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._path = store.coord / "counts.json"

    # -- reading ---------------------------------------------------------------------------
    def stats(self, now: float) -> dict[str, QueueStats]:
        snap = self.fold()
        assert snap is not None
        out: dict[str, QueueStats] = {}
        since = int(now) - 60
        for fsq, q in sorted(snap["queues"].items()):
            qs = _stats(q, since)
            if qs is not None:
                out[from_fs_name(fsq)] = qs
        return out

    # -- folding ---------------------------------------------------------------------------
    def fold(self, *, blocking: bool = True) -> Snapshot | None:
        """Fold every journal into ``counts.json`` (recounting if a writer died mid-move);
        None if not ``blocking`` and another process is folding."""
        with self._store.named_lock("counts-fold").hold(blocking) as held:
            if not held:
                return None
            self._store.journal.folded()
            snap = self._load()
            if snap is None:
                return self._recount(_empty())
            changed, dirty, gone = self._read_journals(snap)
            if dirty:
                return self._recount(snap)
            if changed:
                self._save(snap)
            self._remove(gone)
            return snap

    def recount(self) -> None:
        """Count the jobs in the directories afresh (the upgrade of an existing store)."""
        with self._store.named_lock("counts-fold").hold():
            snap = self._load() or _empty()
            self._recount(snap)

    def _recount(self, snap: Snapshot) -> Snapshot:
        """Under the fold lock: hold every mover off, fold the journals to their ends, then
        replace the counts with what the directories hold (keeping the completions ring)."""
        with self._store.named_lock("counts").hold():
            _changed, dirty, gone = self._read_journals(snap)
            if dirty:
                log.warning(
                    "files store %s: a process died between moving a job and counting "
                    "it; recounting the jobs",
                    self._store.root,
                )
            rings = {fsq: q["done"] for fsq, q in snap["queues"].items()}
            snap["queues"] = {}
            for fsq in self._store.listdir(self._store.queues):
                if ignorable(fsq):
                    continue
                q = _count_dir(self._store, fsq)
                q["done"] = rings.pop(fsq, {})
                snap["queues"][fsq] = q
            self._save(snap)
        self._remove(gone)
        return snap

    def _read_journals(self, snap: Snapshot) -> tuple[bool, bool, list[str]]:
        """Apply what each journal added since the last fold; return (anything applied,
        a gone writer left a group open, the journals whose writers are gone)."""
        directory = self._store.counts
        names = [
            n
            for n in self._store.listdir(directory)
            if n.endswith(".log") and not n.startswith(".")
        ]
        journals: dict[str, list[int]] = snap["journals"]
        for name in [n for n in journals if n not in names]:
            del journals[name]  # removed after a fold that had folded it entirely
        changed = dirty = False
        gone: list[str] = []
        queues = snap["queues"]
        for name in sorted(names):
            offset, open_groups = journals.get(name, (0, 0))
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:  # its writer's lock is free: the writer is gone, nothing more will come
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    ended = True
                except BlockingIOError:
                    ended = False
                os.lseek(fd, offset, os.SEEK_SET)
                chunks = [b""]
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
            finally:
                os.close(fd)
            data = b"".join(chunks)
            end = data.rfind(b"\n") + 1  # whole lines only
            for line in data[:end].decode().splitlines():
                if line == "?":
                    open_groups += 1
                elif line == "!":
                    open_groups -= 1
                elif line:
                    _apply(queues, line)
            if end:
                changed = True
            journals[name] = [offset + end, open_groups]
            if ended:
                gone.append(name)
                dirty = dirty or open_groups > 0
                journals[name][1] = 0
        ring_from = str(int(time.time()) - _RING_SECONDS)
        for q in queues.values():
            done = q["done"]
            for sec in [s for s in done if len(s) < len(ring_from) or s < ring_from]:
                del done[sec]
        return changed or bool(gone), dirty, gone

    def _remove(self, gone: list[str]) -> None:
        """Remove the journals of gone writers (their content is in the saved counts; the next
        fold drops their entries)."""
        for name in gone:
            with contextlib.suppress(FileNotFoundError):
                (self._store.counts / name).unlink()
        self._clean_hidden()

    def _clean_hidden(self) -> None:
        """A journal a writer died making (hidden, never written to) is free to remove."""
        for name in self._store.listdir(self._store.counts):
            if name.startswith(".") and name.endswith(".log"):
                path = self._store.counts / name
                with contextlib.suppress(OSError):
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                        if os.fstat(fd).st_mtime < time.time() - 60:
                            path.unlink()
                    finally:
                        os.close(fd)

    # -- the file --------------------------------------------------------------------------
    def _load(self) -> Snapshot | None:
        try:
            snap = orjson.loads(read_file(self._path))
            for q in snap["queues"].values():
                q["fine"] = {int(k): v for k, v in q["fine"].items()}
                q["coarse"] = {int(k): v for k, v in q["coarse"].items()}
                q["n"] = {**dict.fromkeys(_PLACES, 0), **q["n"]}
            assert isinstance(snap["journals"], dict)
            return dict(snap)
        except FileNotFoundError:
            return None
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            AssertionError,
        ) as exc:
            log.warning(
                "files store %s: %s is damaged (%s); recounting the jobs",
                self._store.root,
                self._path,
                exc,
            )
            return None

    def _save(self, snap: Snapshot) -> None:
        self._store.write(self._path, orjson.dumps(snap, option=orjson.OPT_NON_STR_KEYS))


def _empty() -> Snapshot:
    return {"version": 1, "journals": {}, "queues": {}}


def _count_dir(store: Store, fsq: str) -> Queue:
    """A queue's counts from its directories (names only, no job is read)."""
    q = _new_queue()
    base = store.queues / fsq
    for sdir in KEYED_DIRS:
        for name in store.listdir(base / sdir):
            if not keyed_job_name(name):
                continue
            q["n"]["w" if sdir == WAITING else name[-6]] += 1
            q["ps"] += _PRIORITY_ZERO - int(name[:10])
            if sdir == READY:
                _add_due(q, int(name[11:28]), 1)
    for sdir in FIXED_DIRS:
        q["n"][sdir] = sum(
            1 for n in store.listdir(base / sdir) if n.endswith(".json") and not ignorable(n)
        )
    return q


def _stats(q: Queue, since: int) -> QueueStats | None:
    n = {k: max(v, 0) for k, v in q["n"].items()}
    qs = QueueStats()
    qs.counts[State.PENDING] = n["p"] + n["w"]
    qs.counts[State.RETRYING] = n["r"]
    for sdir in FIXED_DIRS:
        qs.counts[State(sdir)] = n[sdir]
    if not any(qs.counts.values()):
        return None
    waiting = n["p"] + n["r"] + n["w"]
    if waiting:
        qs.avg_priority = q["ps"] / waiting
    fine = [k for k, v in q["fine"].items() if v > 0]
    if fine:
        oldest_ms = min(fine)
    else:
        coarse = [k for k, v in q["coarse"].items() if v > 0]
        oldest_ms = min(coarse) * 1000 if coarse else None
    if oldest_ms is not None and n["p"] + n["r"]:
        qs.oldest_ready_at = datetime.fromtimestamp(oldest_ms / 1000, UTC)
    qs.completed_last_minute = sum(v for k, v in q["done"].items() if int(k) >= since)
    return qs
