"""Read-side scans of the files backend: search, count, prune candidates (due jobs are found
through ``_files_index``; ``stats`` reads counters, ``_files_counts``).

They list directories and read names first, and open a job file only when its content is
needed. Nothing here takes a lock: records are replaced atomically, so a reader sees a whole
record; one that moves while a scan runs is followed by id (``read``), or missed or counted
once more in that one scan. This backend is meant for small deployments, where a scan is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from taskqueue.drivers._files_record import Rec, to_job_record
from taskqueue.drivers._files_store import (
    FIXED_DIRS,
    KEYED_DIRS,
    READY,
    STATE_DIRS,
    WAITING,
    Store,
    fixed_id,
    parse_ready,
)
from taskqueue.drivers.base import JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

Find = Callable[[str], Path | None]
Read = Callable[[str, Path | None], Rec | None]


class Candidate(NamedTuple):
    """A due job as its ready file name describes it."""

    key: tuple[int, int, str]
    queue: str
    name: str
    job_id: str


class Entry(NamedTuple):
    """A job file found by a scan, with the state its place says."""

    job_id: str
    queue: str
    path: Path
    state: State


def _state_dir(store: Store, queue: str, sdir: str) -> Path | None:
    try:
        return store.state_dir(queue, sdir)
    except ValueError:  # a queue name no job can have
        return None


def finished_before(store: Store, queue: str, state: str, cutoff: float) -> list[tuple[Path, str]]:
    """Finished job files that may have finished before ``cutoff``. A finished record's
    file mtime is set to its finish time, so younger files are skipped without being read
    (a later mtime, e.g. from a backup tool, only delays pruning)."""
    directory = store.state_dir(queue, state)
    out: list[tuple[Path, str]] = []
    for name in store.listdir(directory):
        job_id = fixed_id(name)
        if job_id is None:
            continue
        try:
            if os.stat(directory / name).st_mtime >= cutoff + 1.0:
                continue
        except FileNotFoundError:
            continue
        out.append((directory / name, job_id))
    return out


# -- search and count ------------------------------------------------------------------------

def _dirs_for(states: Sequence[State]) -> tuple[str, ...]:
    if not states:
        return STATE_DIRS
    wanted = {State(s) for s in states}
    dirs = [d for d in FIXED_DIRS if State(d) in wanted]
    if wanted & {State.PENDING, State.RETRYING}:
        dirs.append(READY)
    if State.PENDING in wanted:
        dirs.append(WAITING)
    return tuple(dirs)


def _entry(queue: str, directory: Path, name: str) -> Entry | None:
    if directory.name in KEYED_DIRS:
        parsed = parse_ready(name)
        if parsed is None:
            return None
        state = State.PENDING if directory.name == WAITING else parsed.state
        return Entry(parsed.job_id, queue, directory / name, state)
    job_id = fixed_id(name)
    return None if job_id is None else Entry(job_id, queue, directory / name,
                                              State(directory.name))


def _listed(store: Store, criteria: JobFilter) -> list[Entry]:
    out: list[Entry] = []
    for queue in criteria.queues or store.queue_names():
        for sdir in _dirs_for(criteria.states):
            directory = _state_dir(store, queue, sdir)
            for name in store.listdir(directory) if directory else ():
                entry = _entry(queue, directory, name) if directory else None
                if entry is not None:
                    out.append(entry)
    return out


def _by_id(store: Store, ids: Sequence[str], find: Find) -> list[Entry]:
    out: list[Entry] = []
    for job_id in dict.fromkeys(ids):
        path = find(job_id)
        queue = store.queue_of(job_id)
        entry = _entry(queue, path.parent, path.name) if path and queue else None
        if entry is not None:
            out.append(entry)
    return out


def entries(store: Store, criteria: JobFilter, find: Find) -> list[Entry]:
    """Job files matching the criteria that names alone can decide, ordered by id."""
    found = _by_id(store, criteria.ids, find) if criteria.ids else _listed(store, criteria)
    states = {State(s) for s in criteria.states}
    after = criteria.after_id
    unique: dict[str, Entry] = {}
    for entry in found:
        if criteria.queues and entry.queue not in criteria.queues:
            continue
        if states and entry.state not in states:
            continue
        if after is not None and (entry.job_id >= after if criteria.newest_first
                                  else entry.job_id <= after):
            continue
        unique.setdefault(entry.job_id, entry)
    return sorted(unique.values(), key=lambda e: e.job_id, reverse=criteria.newest_first)


def _needs_content(criteria: JobFilter) -> bool:
    return bool(criteria.names or criteria.tag is not None or criteria.batch_id is not None
                or criteria.exception_contains)


def matches(rec: Rec, criteria: JobFilter) -> bool:
    """The full filter, on a record's content (LIKE-style text match: case-insensitive)."""
    checks = (
        not criteria.queues or rec["queue_name"] in criteria.queues,
        not criteria.states or rec["state"] in {State(s).value for s in criteria.states},
        not criteria.names or rec["name"] in criteria.names,
        not criteria.ids or rec["id"] in criteria.ids,
        criteria.tag is None or criteria.tag in rec["tags"],
        criteria.batch_id is None or rec["batch_id"] == criteria.batch_id,
        criteria.after_id is None or (rec["id"] < criteria.after_id if criteria.newest_first
                                      else rec["id"] > criteria.after_id),
        not criteria.exception_contains or criteria.exception_contains.casefold()
        in (rec["exception"] or "").casefold(),
    )
    return all(checks)


def search(store: Store, criteria: JobFilter, find: Find, read: Read) -> list[JobRecord]:
    out: list[JobRecord] = []
    skip = max(criteria.offset, 0)
    for entry in entries(store, criteria, find):
        if 0 <= criteria.limit <= len(out):
            break
        rec = read(entry.job_id, entry.path)
        if rec is None or not matches(rec, criteria):
            continue
        if skip:
            skip -= 1
            continue
        out.append(to_job_record(rec))
    return out


def count(store: Store, criteria: JobFilter, find: Find, read: Read) -> int:
    found = entries(store, criteria, find)
    if not _needs_content(criteria):
        return len(found)
    return sum(1 for e in found if (rec := read(e.job_id, e.path)) and matches(rec, criteria))
