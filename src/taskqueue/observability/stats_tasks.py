"""Per-task metrics over time: throughput, failure rate and run/wait time p50/p95 per task name,
read from the statistics the recorders store and the rollup keeps (see :mod:`stats` and
:mod:`stats_rollup`).

The last hour reads the recorders' own minute entries; six hours read the rolled-up 5-minute
buckets, longer ranges the hour buckets, each plus the minutes not folded into them yet.
Buckets are then summed into the range's step; histograms merge bucket by bucket, so a
percentile over a step or the whole range is as good as one over a minute.

A reader keeps what it decoded and summed: a folded kind is listed again only after a fold
wrote (the fold token, see ``_token``), and the sums of the hours that no longer change are
kept per range, so a request adds only the newest hour and the minutes not folded yet.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.observability.stats import (
    BUCKET_SECONDS,
    KIND,
    MINUTE_KIND,
    TaskStats,
    _parse,
    unfolded,
)
from taskqueue.observability.stats_rollup import (
    DETAIL_KIND,
    DETAIL_RETENTION,
    DETAIL_SECONDS,
    HOUR,
    HOUR_KIND,
    HOUR_RETENTION,
    STATE_KIND,
)

#: label -> (seconds covered, seconds per point)
RANGES: dict[str, tuple[int, int]] = {"1h": (3600, 60), "6h": (6 * 3600, 300),
                                      "24h": (86400, 3600), "7d": (7 * 86400, 3600)}
Key = tuple[int, str, str]  # (bucket start, epoch seconds; queue; task)


def _add(into: dict[Key, TaskStats], owned: set[Key], key: Key, figures: TaskStats) -> None:
    """Sum ``figures`` into ``into[key]``. The first figures of a key are kept as they are
    (they may be shared, decoded once for many requests); a second one merges into a copy."""
    have = into.get(key)
    if have is None:
        into[key] = figures
        return
    if key not in owned:
        owned.add(key)
        have = into[key] = _copy(have)
    have.merge(figures)


def _copy(figures: TaskStats) -> TaskStats:
    out = TaskStats()
    out.merge(figures)
    return out


#: The queue and task name of the figures of every task together (see ``load``).
ALL = "\x00all"


def _kind(step: int) -> tuple[str, int]:
    """The folded kind a step reads, and its bucket size in seconds."""
    return ((HOUR_KIND, HOUR) if step >= HOUR else
            (DETAIL_KIND, DETAIL_SECONDS) if step >= DETAIL_SECONDS else
            (MINUTE_KIND, BUCKET_SECONDS))


Listed = list[tuple[int, int, "Cells"]]  # (hour, through, its decoded cells), by hour
#: Per store and folded kind: the fold token (see ``_token``) seen before the kind was last
#: listed, and the (hour, through) of the entries listed then.
_LISTED: weakref.WeakKeyDictionary[Driver, dict[str, tuple[str, list[tuple[int, int]]]]] = \
    weakref.WeakKeyDictionary()


def _token(driver: Driver) -> str | None:
    """The token the last fold that wrote left (``stats_rollup``: each such fold writes its
    entries, then a new token): while it stays, the folded kinds are as last listed."""
    for entry in driver.registry_list(STATE_KIND):
        token = entry.get("token")
        return token if isinstance(token, str) else None
    return None


def _listed(driver: Driver, kind: str) -> tuple[list[dict[str, Any]], Listed]:
    """The recorders' entries, then the folded entries of ``kind`` by hour (in that order:
    see ``stats.unfolded``). The folded kind is listed (and every entry JSON-decoded by the
    store) only when a fold wrote since the last listing, or its cells are no longer kept."""
    recorded = driver.registry_list(KIND)
    token = _token(driver)
    with _DECODED_LOCK:
        known = _LISTED.get(driver, {}).get(kind) if _weak(driver) else None
        cache = _DECODED.get(driver, {}) if known is not None and known[0] == token else {}
        kept = [(h, t, cache.get((kind, h, t))) for h, t in known[1]] if known and cache else []
    if cache and all(cells is not None for _, _, cells in kept):
        return recorded, [(h, t, cells) for h, t, cells in kept if cells is not None]
    rolled = [e for e in driver.registry_list(kind) if "hour" in e and "through" in e]
    rolled.sort(key=lambda e: int(e["hour"]))
    listed = [(int(e["hour"]), int(e["through"]), _cells(driver, kind, e)) for e in rolled]
    if token is not None and _weak(driver):
        with _DECODED_LOCK:
            _LISTED.setdefault(driver, {})[kind] = (token, [(h, t) for h, t, _ in listed])
    return recorded, listed


def _weak(driver: Driver) -> bool:
    try:
        weakref.ref(driver)
    except TypeError:
        return False
    return True


def _summed(rolled: Listed, fresh: list[Any], start: float, step: int, every: bool
            ) -> dict[Key, TaskStats]:
    size = _kind(step)[1]
    out: dict[Key, TaskStats] = {}
    owned: set[Key] = set()
    for _, _, cells in rolled:
        for seconds, queue, task, figures in cells:
            if seconds + size > start and (every or queue != ALL):
                _add(out, owned, (seconds // step * step, queue, task), figures)
    for (minute, queue, task), figures in _parse(fresh).items():
        t = minute * BUCKET_SECONDS // step * step
        _add(out, owned, (t, queue, task), figures)
        if every:
            _add(out, owned, (t, ALL, ALL), figures)
    return out


def load(driver: Driver, start: float, step: int, every: bool = False
         ) -> dict[Key, TaskStats]:
    """Every stored figure since ``start``, summed per ``step`` seconds, queue and task (the
    figures may be shared with later calls: read them, never change them):
    hour buckets for steps of an hour, 5-minute buckets for steps of 5 minutes, folded
    minutes otherwise, and the recorders' minute entries not folded into those yet.
    ``every``: also the sum of all tasks per step, under the queue and task name ``ALL``."""
    kind = _kind(step)[0]
    recorded, rolled = _listed(driver, kind)
    fresh = unfolded(recorded, {h: t for h, t, _ in rolled}, since=start)
    return _summed(rolled, fresh, start, step, every)


Group = tuple[str, str]  # (queue, task)


class _Settled:
    """The figures of the folded hours that no longer change (see ``_gather``), per (queue,
    task) (``ALL`` included): per step, and their total. Shared: read, never changed."""

    __slots__ = ("points", "totals")

    def __init__(self, summed: Mapping[Key, TaskStats]) -> None:
        self.points: dict[Group, dict[int, TaskStats]] = {}
        for (t, queue, task), figures in summed.items():
            self.points.setdefault((queue, task), {})[t] = figures
        self.totals: dict[Group, TaskStats] = {}
        for group, points in self.points.items():
            total = self.totals[group] = TaskStats()
            for figures in points.values():
                total.merge(figures)


_EMPTY = _Settled({})
#: Settled sums per store, by (kind, step, start, the (hour, through) of the entries summed).
_SETTLED: weakref.WeakKeyDictionary[Driver, dict[tuple[Any, ...], _Settled]] = \
    weakref.WeakKeyDictionary()
SETTLED_MAX = 8


def _settled(driver: Driver, kind: str, entries: Listed, start: float, step: int
             ) -> _Settled:
    if not entries:
        return _EMPTY
    key = (kind, step, start, tuple((h, t) for h, t, _ in entries))
    with _DECODED_LOCK:
        try:
            cache = _SETTLED.setdefault(driver, {})
        except TypeError:  # a store object that cannot be weakly referenced: no caching
            cache = {}
        found = cache.get(key)
    if found is not None:
        return found
    made = _Settled(_summed(entries, [], start, step, True))
    with _DECODED_LOCK:
        while len(cache) >= SETTLED_MAX:
            del cache[next(iter(cache))]
        cache[key] = made
    return made


def _gather(driver: Driver, start: float, step: int, every: bool
            ) -> tuple[_Settled, dict[Key, TaskStats]]:
    """What ``load`` returns, in two parts: the folded hours before the newest one and before
    any minute not folded yet (they change rarely: their sums are cached, keyed by each
    entry's ``through``), and the rest, summed at every call. Steps never straddle hours,
    so no step has figures in both."""
    kind = _kind(step)[0]
    recorded, rolled = _listed(driver, kind)
    fresh = unfolded(recorded, {h: t for h, t, _ in rolled}, since=start)
    cut = max((h for h, _, _ in rolled), default=0)
    for entry in fresh:
        cut = min(cut, int(entry["minute"]) * BUCKET_SECONDS // HOUR)
    settled = [e for e in rolled if e[0] < cut]
    changing = [e for e in rolled if e[0] >= cut]
    return (_settled(driver, kind, settled, start, step),
            _summed(changing, fresh, start, step, every))


Cells = list[tuple[int, str, str, TaskStats]]
#: Decoded folded entries per store, by (kind, hour, through): an entry whose ``through`` has
#: not moved holds the same figures, so a reader decodes each hour once, not at every request.
_DECODED: weakref.WeakKeyDictionary[Driver, dict[tuple[str, int, int], Cells]] = \
    weakref.WeakKeyDictionary()
_DECODED_LOCK = threading.Lock()
#: Decoded entries kept per store (8 days of hours, 6 hours of 5-minute buckets and more).
DECODED_MAX = 512


def _cells(driver: Driver, kind: str, entry: Mapping[str, Any]) -> Cells:
    hour, through = int(entry["hour"]), int(entry["through"])
    with _DECODED_LOCK:
        try:
            cache = _DECODED.setdefault(driver, {})
        except TypeError:  # a store object that cannot be weakly referenced: no caching
            cache = {}
        found = cache.get((kind, hour, through))
    if found is not None:
        return found
    buckets = ([(hour * HOUR, entry["queues"])] if kind == HOUR_KIND else
               [(int(m) * BUCKET_SECONDS, q) for m, q in entry["buckets"].items()])
    cells: Cells = []
    for seconds, queues in buckets:
        together = TaskStats()
        for queue, tasks in queues.items():
            for task, raw in tasks.items():
                figures = TaskStats.from_json(raw)
                together.merge(figures)
                cells.append((seconds, str(queue), str(task), figures))
        cells.append((seconds, ALL, ALL, together))
    with _DECODED_LOCK:
        for key in [k for k in cache if k[:2] == (kind, hour)]:
            del cache[key]  # the same hour folded up to an earlier minute
        while len(cache) >= DECODED_MAX:
            del cache[next(iter(cache))]
        cache[(kind, hour, through)] = cells
    return cells


_EMPTY_POINT: dict[str, Any] = {"completed": 0, "failed": 0, "retried": 0,
                                "failure_rate": None, "run_p50": None, "run_p95": None}
#: A point's figures by the id of the (finished, never changed again) figures they come from,
#: the figures kept with them so the id stays theirs: hours decoded once are summarised once.
_POINTS: dict[int, tuple[TaskStats, dict[str, Any]]] = {}
POINTS_MAX = 50_000


def _point(t: int, figures: TaskStats | None) -> dict[str, Any]:
    if figures is None:
        return {"t": t, **_EMPTY_POINT}
    known = _POINTS.get(id(figures))
    if known is not None and known[0] is figures:
        return {"t": t, **known[1]}
    done, failed = figures.counts.get("completed", 0), figures.counts.get("failed", 0)
    p50, p95 = figures.run.quantiles((0.5, 0.95))
    point = {"completed": done, "failed": failed, "retried": figures.counts.get("retried", 0),
             "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
             "run_p50": p50, "run_p95": p95}
    with _DECODED_LOCK:
        while len(_POINTS) >= POINTS_MAX:
            del _POINTS[next(iter(_POINTS))]
        _POINTS[id(figures)] = (figures, point)
    return {"t": t, **point}


def _task(queue: str, task: str, points: dict[int, TaskStats], steps: range,
          minutes: float, total: TaskStats | None = None) -> dict[str, Any]:
    """A row: ``total`` is the sum of ``points`` (in their order) when the caller has it."""
    if total is None:
        total = TaskStats()
        for figures in points.values():
            total.merge(figures)
    done, failed = total.counts.get("completed", 0), total.counts.get("failed", 0)
    return {"queue": queue, "name": task,
            **{k: total.counts.get(k, 0) for k in ("enqueued", "completed", "failed",
                                                    "retried", "cancelled", "lost")},
            "throughput_per_min": round((done + failed) / minutes, 3),
            "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
            "run_time": total.run.summary(), "wait_time": total.wait.summary(),
            "series": [_point(t, points.get(t)) for t in steps]}


def _joined(settled: _Settled, rest: dict[Group, dict[int, TaskStats]], group: Group
            ) -> tuple[dict[int, TaskStats], TaskStats]:
    """A group's points and their total: the settled ones, then the rest (never the same
    steps), summed in that order (the order a plain sum over the hours takes)."""
    points = settled.points.get(group, {})  # settled sums start at ``first``
    total = settled.totals.get(group)
    more = rest.get(group)
    if more:
        points = {**points, **more}
        if total is not None:
            total = _copy(total)
            for figures in more.values():
                total.merge(figures)
    return points, total if total is not None else _sum(points)


def _sum(points: Mapping[int, TaskStats]) -> TaskStats:
    total = TaskStats()
    for figures in points.values():
        total.merge(figures)
    return total


def task_metrics(driver: Driver, window: str = "24h", *, queue: str | None = None,
                 name: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Per-task figures over ``window`` (one of :data:`RANGES`), with a series per step, and
    ``all``: the same over every task shown (percentiles from the merged histograms)."""
    if window not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    seconds, step = RANGES[window]
    now = time.time() if now is None else now
    last = int(now // step) * step
    first = last - (seconds // step - 1) * step
    unfiltered = queue is None and name is None
    settled, summed = _gather(driver, first, step, every=unfiltered)
    rest: dict[Group, dict[int, TaskStats]] = {}
    for (t, q, task), figures in summed.items():
        if t >= first:
            rest.setdefault((q, task), {})[t] = figures
    groups = [g for g in (*settled.points, *(g for g in rest if g not in settled.points))
              if g[0] != ALL and (queue is None or g[0] == queue)
              and (name is None or g[1] == name)]
    minutes = max(now - first, 60.0) / 60
    steps = range(first, last + step, step)
    grouped = {g: _joined(settled, rest, g) for g in groups}
    tasks = [_task(q, task, points, steps, minutes, total)
             for (q, task), (points, total) in grouped.items()]
    tasks.sort(key=lambda r: (-(r["completed"] + r["failed"]), r["queue"], r["name"]))
    if unfiltered:
        every, every_total = _joined(settled, rest, (ALL, ALL))
    else:  # the sums kept per bucket cover every task: add the ones shown
        every, every_total = {}, None
        for points, _ in grouped.values():
            for t, figures in points.items():
                every.setdefault(t, TaskStats()).merge(figures)
    return {"range": window, "step": step, "from": first, "to": now, "tasks": tasks,
            "all": _task("*", "*", every, steps, minutes, every_total),
            "ranges": list(RANGES),
            "retention": {"minutes_seconds": 3600.0, "five_minutes_seconds": DETAIL_RETENTION,
                          "hours_seconds": HOUR_RETENTION}}
