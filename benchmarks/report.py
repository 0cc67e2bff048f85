"""Render the merged results (benchmarks/results/results.json) as docs/benchmarks.md plus PNG
plots under docs/images/bench-*.png. Hand-written analysis lives in benchmarks/notes.md and is
included as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.orchestrate import (
    BEFORE,
    BENCH,
    COMPETITORS,
    LIBS,
    NO_RECYCLE,
    OURS,
    PAYLOAD_SIZES,
    ROOT,
    SCALE_PROCESSES,
)

#: the engine's row (payload sweep, scaling and issue #10's targets are measured on it)
API = "taskqueue-api"
ROW_TITLES = {"taskqueue": "**taskqueue work** (CLI, defaults)",
              API: "taskqueue `Worker` API (in-process)", "ceiling": "ceiling (hand-written loop)"}

BACKEND_TITLES = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite",
                  "mysql": "MySQL / MariaDB", "files": "Files"}
BACKEND_ORDER = ("redis", "postgres", "sqlite", "mysql", "files")

#: metric -> (column title, higher is better, format)
COLUMNS: dict[str, tuple[str, bool, Callable[[float], str]]] = {
    "drain_rate": ("drain, jobs/s", True, lambda v: f"{v:,.0f}"),
    "single_rate": ("enqueue, jobs/s", True, lambda v: f"{v:,.0f}"),
    "bulk_rate": ("bulk enqueue, jobs/s", True, lambda v: f"{v:,.0f}"),
    "single_p50_ms": ("enqueue p50, ms", False, lambda v: f"{v:.2f}"),
    "single_p99_ms": ("enqueue p99, ms", False, lambda v: f"{v:.2f}"),
    "bulk_p99_ms": ("bulk p99 per 1,000, ms", False, lambda v: f"{v:.1f}"),
    "e2e_p50_ms": ("enqueue→start p50, ms", False, lambda v: f"{v:.1f}"),
    "e2e_p99_ms": ("enqueue→start p99, ms", False, lambda v: f"{v:.1f}"),
    "processes": ("processes", False, lambda v: f"{v:.0f}"),
    "rss_mb": ("tree RSS, MB", False, lambda v: f"{v:.0f}"),
    "pss_mb": ("tree PSS, MB", False, lambda v: f"{v:.0f}"),
    "start_s": ("spawn → first job, s", False, lambda v: f"{v:.2f}"),
}
#: columns of the per-backend tables (the rest appear in the CLI section)
TABLE_COLUMNS = ("drain_rate", "single_rate", "bulk_rate", "single_p99_ms", "e2e_p50_ms",
                 "e2e_p99_ms", "processes", "rss_mb", "pss_mb", "start_s")


def med(data: dict[str, Any], lib: str, backend: str, metric: str,
        mode: str = "standard") -> float | None:
    entry = data["entries"].get(f"{lib}|{backend}|{mode}")
    if not entry:
        return None
    value = entry.get("median", {}).get(metric)
    return float(value) if value is not None else None


def best_other(data: dict[str, Any], lib: str, backend: str, metric: str
               ) -> tuple[str, float] | None:
    """The best figure among the other libraries on this backend: not the ceiling, and for
    taskqueue's rows not taskqueue's other row (competitors compare with the CLI row)."""
    higher = COLUMNS[metric][1]
    candidates = ("taskqueue", *COMPETITORS)
    if lib in OURS:
        candidates = COMPETITORS
    found = [(other, v) for other in candidates if other != lib
             if (v := med(data, other, backend, metric)) is not None]
    if not found:
        return None
    return (max if higher else min)(found, key=lambda x: x[1])


def ratio(data: dict[str, Any], lib: str, backend: str, metric: str) -> float | None:
    v = med(data, lib, backend, metric)
    best = best_other(data, lib, backend, metric)
    if v is None or best is None or best[1] == 0:
        return None
    return v / best[1]


def cell(data: dict[str, Any], lib: str, backend: str, metric: str) -> str:
    v = med(data, lib, backend, metric)
    if v is None:
        return "—"
    text = COLUMNS[metric][2](v)
    if lib == "ceiling":
        return text
    r = ratio(data, lib, backend, metric)
    if r is None:
        return text
    higher = COLUMNS[metric][1]
    better = r > 1 if higher else r < 1
    mark = f"**{r:.2f}×**" if better else f"{r:.2f}×"
    return f"{text} ({mark})"


def libs_on(data: dict[str, Any], backend: str) -> list[str]:
    present = [lib.name for lib in LIBS if lib.name not in BEFORE
               and f"{lib.name}|{backend}|standard" in data["entries"]]
    rest = [n for n in present if n not in (*OURS, "ceiling")]
    rest.sort(key=lambda n: -(med(data, n, backend, "drain_rate") or 0))
    head = [n for n in OURS if n in present]
    tail = ["ceiling"] if "ceiling" in present else []
    return head + rest + tail


def backend_table(data: dict[str, Any], backend: str) -> list[str]:
    libs = libs_on(data, backend)
    if not libs:
        return []
    cols = list(TABLE_COLUMNS)
    out = ["| library | " + " | ".join(COLUMNS[c][0] for c in cols) + " |",
           "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for lib in libs:
        entry = data["entries"][f"{lib}|{backend}|standard"]
        name = ROW_TITLES.get(lib, lib)
        if not entry.get("median"):
            why = "; ".join(entry.get("errors") or ["no result"])
            out.append(f"| {name} | not measured: {why.replace('|', '/')} |"
                       + " |" * (len(cols) - 1))
            continue
        out.append(f"| {name} | " + " | ".join(cell(data, lib, backend, c) for c in cols) + " |")
    return out


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}/s"


def fmt(v: float | None, f: Callable[[float], str]) -> str:
    return "—" if v is None else f(v)


def cli_section(data: dict[str, Any]) -> list[str]:
    """Issue 17: the CLI path next to the engine, per backend, and its process tree."""
    rows = []
    for b in BACKEND_ORDER:
        cli, norec, api = (med(data, "taskqueue", b, "drain_rate"),
                           med(data, "taskqueue", b, "drain_rate", NO_RECYCLE),
                           med(data, API, b, "drain_rate"))
        if cli is None and api is None:
            continue
        best = best_other(data, "taskqueue", b, "drain_rate")

        def m(metric: str, f: Callable[[float], str], b: str = b) -> str:
            return fmt(med(data, "taskqueue", b, metric), f)

        overhead = (1e6 / norec - 1e6 / api) if norec and api else None
        rows.append(
            f"| {BACKEND_TITLES[b]} | {fmt(cli, '{:,.0f}'.format)} | "
            f"{fmt(norec, '{:,.0f}'.format)} | {fmt(api, '{:,.0f}'.format)} | "
            f"{fmt(cli and api and cli / api, '{:.0%}'.format)} | "
            f"{f'{best[0]} {best[1]:,.0f}' if best else '—'} | "
            f"{m('recycles', '{:.0f}'.format)} | {m('recycle_lost_ms', '{:.1f}'.format)} | "
            f"{fmt(overhead, '{:.1f}'.format)} | {m('processes', '{:.0f}'.format)} | "
            f"{m('worker_rss_mb', '{:.1f}'.format)} | {m('pss_mb', '{:.1f}'.format)} | "
            f"{m('peak_rss_mb', '{:.0f}'.format)} | {m('start_s', '{:.2f}'.format)} |")
    if not rows:
        return []
    out = ["## The path users run: `taskqueue work` against the engine (issue 17)", "",
           "`taskqueue work --app … --queue q` started as a subprocess with every default (a "
           "supervisor and one worker process, recycled after `WORKER_MAX_JOBS`=1000 jobs), the "
           "same with `--max-jobs 1000000` (no recycling), and the in-process `Worker` API, each "
           "draining the same backlog of N no-op jobs; drain rates in jobs/s from the first "
           "job's start to the N-th's (process start before the first job is in the next-but-last "
           "column). *Lost per recycle*: the drain's time beyond what its steady rate (read from "
           "the stretches of 64 jobs away from every recycle) would have taken, divided by the "
           "recycles: the hand-over, the standby's start and the old process's exit, each "
           "measured by what it slowed the drain (the gap from the last job of a recycled worker "
           "to the first of its replacement is in the results as `recycle_gap_ms`; it holds "
           "one ordinary batch boundary, a reservation, and misses the rest). *CLI cost per "
           "job*: 10⁶/(CLI rate without recycling) − 10⁶/(API rate), in µs: what the supervisor "
           "and the CLI's worker add to every job. Process count, worker RSS and tree PSS are "
           "read on the idle tree after the drain; peak RSS is the tree's, sampled every "
           "0.25 s during the drain.", "",
           "| store | CLI, defaults | CLI, no recycling | `Worker` API | CLI / API | best other "
           "library (its CLI) | recycles | lost per recycle, ms | CLI cost per job, µs | "
           "processes | worker RSS, MB | tree PSS, MB | tree peak RSS, MB | spawn → first job, "
           "s |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | "
           "---: | ---: |", *rows, ""]
    trees = []
    for b in BACKEND_ORDER:
        entry = data["entries"].get(f"taskqueue|{b}|standard") or {}
        for row in entry.get("tree", []):
            trees.append(f"| {BACKEND_TITLES[b]} | {row.get('role', '?')} | `{row['cmd']}` | "
                         f"{row['rss_mb']:.1f} | {row['pss_mb']:.1f} |")
    if trees:
        out += ["The idle `taskqueue work` tree after the drain (last repeat):", "",
                "| store | process | command line | RSS, MB | PSS, MB |",
                "| --- | --- | --- | ---: | ---: |",
                *trees, ""]
    return out


def before_after(data: dict[str, Any]) -> list[str]:
    """Issue 17's table, before and after, when the run measured ``--before-src`` too."""
    rows = []
    for b in BACKEND_ORDER:
        cells = [med(data, lib, b, "drain_rate", mode) for lib, mode in (
            ("taskqueue-before", "standard"), ("taskqueue-before", NO_RECYCLE),
            ("taskqueue-api-before", "standard"), ("taskqueue", "standard"),
            ("taskqueue", NO_RECYCLE), (API, "standard"))]
        if cells[0] is None and cells[2] is None:
            continue
        best = best_other(data, "taskqueue", b, "drain_rate")
        rows.append(f"| {BACKEND_TITLES[b]} | "
                    + " | ".join(fmt(c, "{:,.0f}".format) for c in cells)
                    + f" | {f'{best[0]} {best[1]:,.0f}' if best else '—'} |")
    if not rows:
        return []
    src = next((meta.get("taskqueue_before_source") for meta in data.get("runs", {}).values()
                if meta.get("taskqueue_before_source")), None) or {}
    return ["## Before and after (issue 17)", "",
            f"Drain of the same N no-op jobs, jobs/s; *before* is the code of "
            f"{code(src)}, measured in the same run, each row right after its *after* "
            "counterpart.", "",
            "| store | before: `taskqueue work` | before: `--max-jobs 1000000` | before: "
            "`Worker` API | after: `taskqueue work` | after: `--max-jobs 1000000` | after: "
            "`Worker` API | best other library, its CLI |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |", *rows, ""]


def enqueue_before_after(data: dict[str, Any]) -> list[str]:
    """Issue 17, goals 4 and 5, before and after: the CLI row's enqueue and enqueue->start
    figures on the old and the new code, each beside the competitor the goal names."""
    peers = {"redis": "huey", "postgres": "pgqueuer", "sqlite": "huey"}
    rows = []
    for b in BACKEND_ORDER:
        if data["entries"].get(f"taskqueue-before|{b}|standard") is None:
            continue
        cells = []
        for metric, form in (("single_rate", "{:,.0f}/s"), ("single_p99_ms", "{:.2f} ms"),
                             ("bulk_rate", "{:,.0f}/s"), ("e2e_p50_ms", "{:.2f} ms")):
            old, new = (med(data, lib, b, metric) for lib in ("taskqueue-before", "taskqueue"))
            cells.append(f"{fmt(old, form.format)} → {fmt(new, form.format)}")
        peer = peers.get(b)
        theirs = ", ".join(f"{name} {fmt(med(data, peer, b, metric), form.format)}"
                           for name, metric, form in (
                               ("single", "single_rate", "{:,.0f}/s"),
                               ("p99", "single_p99_ms", "{:.2f} ms"),
                               ("bulk", "bulk_rate", "{:,.0f}/s"),
                               ("e2e", "e2e_p50_ms", "{:.2f} ms"))
                           if peer and med(data, peer, b, metric) is not None)
        commit = med(data, "taskqueue", b, "pg_commit_ms")
        note = f"; a commit's flush {commit:.2f} ms" if commit is not None else ""
        rows.append(f"| {BACKEND_TITLES[b]} | " + " | ".join(cells)
                    + f" | {peer + ': ' + theirs if theirs else '—'}{note} |")
    if not rows:
        return []
    return ["### Enqueue and enqueue→start, before → after (issue 17, goals 4 and 5)", "",
            "The CLI row (`taskqueue work` for the enqueue→start figure; the enqueues are the "
            "same client calls in every row), old code → new code, same run.", "",
            "| store | single enqueue | single p99 | bulk enqueue | enqueue→start p50 | "
            "the peer of goal 4, same run |",
            "| --- | ---: | ---: | ---: | ---: | --- |", *rows, ""]


def mixed_section(data: dict[str, Any]) -> list[str]:
    """Issue 17, goal 6: short jobs' wait with long jobs among them, next to the drain rates."""
    rows = []
    for b in BACKEND_ORDER:
        entry = data["entries"].get(f"taskqueue|{b}|mixed")
        if not entry:
            continue
        m = entry.get("median", {})
        if not m:
            rows.append(f"| {BACKEND_TITLES[b]} | failed: "
                        f"{'; '.join(entry.get('errors', []))[:200]} |" + " |" * 7)
            continue
        ideal = m.get("mixed_drain_ideal")
        rate = m.get("mixed_drain_rate")
        held = m.get("mixed_held")
        rows.append(
            f"| {BACKEND_TITLES[b]} | {fmt(m.get('mixed_rate'), '{:,.0f}/s'.format)} × "
            f"{fmt(m.get('mixed_sent'), '{:,.0f}'.format)} | "
            f"{fmt(m.get('mixed_wait_p50_ms'), '{:.1f}'.format)} | "
            f"{fmt(m.get('mixed_wait_p99_ms'), '{:.1f}'.format)} | "
            f"{fmt(m.get('mixed_wait_max_ms'), '{:.0f}'.format)} | "
            f"{fmt(rate, '{:,.0f}'.format)} (best possible {fmt(ideal, '{:,.0f}'.format)}) | "
            f"{fmt(held, '{:.0f}'.format)} of {fmt(m.get('mixed_short_jobs'), '{:,.0f}'.format)} | "
            f"{fmt(med(data, 'taskqueue', b, 'drain_rate'), '{:,.0f}'.format)} |")
    if not rows:
        return []
    return ["## Mixed durations: short jobs behind long ones (issue 17, goal 6)", "",
            "`taskqueue work --workers 2` (defaults otherwise). First a stream: one job every "
            "1/rate s, each a 1 ms job except one 2 s job in every 500; the wait of a short "
            "job is from just before its enqueue to its first line. A worker that reserves "
            "more than it can start soon makes the short jobs it holds wait behind a 2 s job "
            "while the other worker could run them. Then a backlog of the same mix pushed at "
            "once: its drain rate (first start to last start) against the best two workers "
            "could do (total work / 2), and how many short jobs were *held* behind a long one "
            "(started more than 1 s after the median start of the 50 jobs enqueued around "
            "them: in a first-in first-out drain that only happens to a job that sat in the "
            "buffer of a worker busy with a 2 s job), next to the no-op drain rate of the "
            "headline row.", "",
            "| store | stream | short wait p50, ms | p99, ms | max, ms | mixed backlog drain, "
            "jobs/s | short jobs held behind a long one | no-op drain (CLI), jobs/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, ""]


def commit_note(data: dict[str, Any], other: str | None = None) -> str:
    """What a durable commit (its WAL flush) cost on the PostgreSQL server right after the CLI
    row's measurement (and ``other``'s): the floor of a single enqueue, and of an
    enqueue→start twice over (the push, then the reservation)."""
    ours = med(data, "taskqueue", "postgres", "pg_commit_ms")
    if ours is None:
        return ""
    theirs = med(data, other, "postgres", "pg_commit_ms") if other else None
    also = f", {theirs:.2f} ms after {other}'s" if theirs is not None else ""
    return f" (a commit's WAL flush then: {ours:.2f} ms{also})"


def goals17(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 17's measurable goals on the CLI row: (goal, measured, met)."""
    rows: list[tuple[str, str, bool | None]] = []

    def add(label: str, value: float | None, ok: Callable[[float], bool], f: str,
            extra: str = "") -> None:
        if value is None:
            rows.append((label, "not measured", None))
        else:
            rows.append((label, f.format(value) + extra, ok(value)))

    for b in BACKEND_ORDER:
        cli, api = med(data, "taskqueue", b, "drain_rate"), med(data, API, b, "drain_rate")
        add(f"1. CLI drain ≥ 85 % of the `Worker` API on {BACKEND_TITLES[b]}",
            cli / api if cli and api else None, lambda v: v >= 0.85, "{:.0%}",
            f" ({cli:,.0f} vs {api:,.0f}/s)" if cli and api else "")
    for b in BACKEND_ORDER:
        add(f"1. a recycle loses < 10 ms on {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "recycle_lost_ms"), lambda v: v < 10, "{:.1f} ms")
    for b in ("sqlite", "redis", "postgres"):
        add(f"3. one worker: at most 3 processes on {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "processes"), lambda v: v <= 3, "{:.0f}")
    for b in ("sqlite", "redis"):
        add(f"3. worker RSS ≤ 30 MB on {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "worker_rss_mb"), lambda v: v <= 30, "{:.1f} MB")
        add(f"3. tree PSS ≤ 45 MB on {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "pss_mb"), lambda v: v <= 45, "{:.1f} MB")
    for b in ("sqlite", "redis", "postgres"):
        add(f"3. spawn → first job ≤ 0.3 s on {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "start_s"), lambda v: v <= 0.3, "{:.2f} s")

    def vs(label: str, ours: float | None, theirs: float | None, factor: float,
           who: str, extra: str = "") -> None:
        if ours is None or theirs is None:
            rows.append((label, "not measured", None))
        else:
            rows.append((label, f"{ours:,.0f}/s vs {who} {theirs:,.0f}/s = {ours / theirs:.2f}×"
                         + extra, ours >= factor * theirs))

    vs("4. single enqueue on Redis ≥ huey's", med(data, "taskqueue", "redis", "single_rate"),
       med(data, "huey", "redis", "single_rate"), 1.0, "huey")
    add("4. single enqueue p99 on Redis < 1 ms",
        med(data, "taskqueue", "redis", "single_p99_ms"), lambda v: v < 1, "{:.2f} ms")
    vs("4. single enqueue on PostgreSQL ≥ PgQueuer's",
       med(data, "taskqueue", "postgres", "single_rate"),
       med(data, "pgqueuer", "postgres", "single_rate"), 1.0, "pgqueuer",
       commit_note(data, "pgqueuer"))
    vs("4. bulk enqueue on PostgreSQL ≥ PgQueuer's",
       med(data, "taskqueue", "postgres", "bulk_rate"),
       med(data, "pgqueuer", "postgres", "bulk_rate"), 1.0, "pgqueuer")
    vs("4. single enqueue on SQLite ≥ 1.5× huey's",
       med(data, "taskqueue", "sqlite", "single_rate"),
       med(data, "huey", "sqlite", "single_rate"), 1.5, "huey")
    for b, goal in (("redis", 1.0), ("postgres", 3.0), ("sqlite", 3.0)):
        add(f"5. enqueue→start p50 < {goal:g} ms, idle CLI worker, {BACKEND_TITLES[b]}",
            med(data, "taskqueue", b, "e2e_p50_ms"), goal.__gt__, "{:.2f} ms",
            commit_note(data) if b == "postgres" else "")
    for b in BACKEND_ORDER:
        p50 = med(data, "taskqueue", b, "mixed_wait_p50_ms", "mixed")
        p99 = med(data, "taskqueue", b, "mixed_wait_p99_ms", "mixed")
        held = med(data, "taskqueue", b, "mixed_held", "mixed")
        drain = med(data, "taskqueue", b, "mixed_drain_rate", "mixed")
        ideal = med(data, "taskqueue", b, "mixed_drain_ideal", "mixed")
        if p50 is not None and p99 is not None:
            rows.append((f"6. mixed durations on {BACKEND_TITLES[b]}: short-job wait, drain "
                         "rate, held behind a long job",
                         f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; drain "
                         f"{fmt(drain, '{:,.0f}/s'.format)} (best possible "
                         f"{fmt(ideal, '{:,.0f}'.format)}); held {fmt(held, '{:.0f}'.format)}",
                         None))
    return rows


def targets(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Issue #10's targets, on the engine (the `Worker` API row, as they were set):
    (target, what was measured, comparison, met)"""
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(label: str, value: float | None, goal: float, higher: bool, unit: str,
            fmt: str = "{:,.0f}") -> None:
        if value is None:
            rows.append((label, "not measured", "", None))
            return
        met = value >= goal if higher else value < goal
        rows.append((label, fmt.format(value) + unit,
                     f"{value / goal:.2f}× the target", met))

    drains: tuple[tuple[str, float], ...] = (("redis", 12_000), ("postgres", 10_000),
                                             ("sqlite", 40_000))
    for backend, goal in drains:
        add(f"drain ≥ {goal:,.0f}/s on {BACKEND_TITLES[backend]}",
            med(data, API, backend, "drain_rate"), goal, True, " jobs/s")
    p99s: tuple[tuple[str, float], ...] = (("redis", 1.0), ("sqlite", 1.0), ("postgres", 2.0))
    for backend, goal in p99s:
        add(f"single enqueue p99 < {goal:g} ms on {BACKEND_TITLES[backend]}",
            med(data, API, backend, "single_p99_ms"), goal, False, " ms", "{:.2f}")
    e2es: tuple[tuple[str, float], ...] = (("redis", 1.0), ("postgres", 5.0))
    for backend, goal in e2es:
        add(f"enqueue→start p50 < {goal:g} ms on an idle {BACKEND_TITLES[backend]} worker",
            med(data, API, backend, "e2e_p50_ms"), goal, False, " ms", "{:.1f}")
    for backend in ("sqlite", "postgres", "redis"):
        add(f"idle worker RSS < 35 MB ({BACKEND_TITLES[backend]})",
            med(data, API, backend, "rss_mb"), 35.0, False, " MB", "{:.1f}")
    for backend in ("sqlite", "postgres", "redis"):
        add(f"worker start < 0.3 s ({BACKEND_TITLES[backend]})",
            med(data, API, backend, "start_s"), 0.3, False, " s", "{:.2f}")
    for backend in ("postgres", "redis"):
        one = med(data, API, backend, "drain_rate")
        many = med(data, API, backend, f"drain_rate_x{SCALE_PROCESSES}",
                   f"scale:{SCALE_PROCESSES}")
        label = f"{SCALE_PROCESSES} worker processes ≥ 3× one on {BACKEND_TITLES[backend]}"
        if one and many:
            rows.append((label, f"{many:,.0f}/s vs {one:,.0f}/s = {many / one:.2f}×",
                         f"{many / one / 3:.2f}× the target", many / one >= 3))
        else:
            rows.append((label, "not measured", "", None))
    for backend in BACKEND_ORDER:
        best = best_other(data, API, backend, "drain_rate")
        v = med(data, API, backend, "drain_rate")
        if best is None or v is None:
            continue
        rows.append((f"drain faster than every other library on {BACKEND_TITLES[backend]}",
                     f"{v:,.0f}/s vs {best[0]} {best[1]:,.0f}/s", f"{v / best[1]:.2f}×",
                     v > best[1]))
    # the original's promises
    worst_drain = min((v for b in BACKEND_ORDER
                       if (v := med(data, API, b, "drain_rate")) is not None),
                      default=None)
    add("original: 10K+ jobs per minute per worker (slowest backend)",
        None if worst_drain is None else worst_drain * 60, 10_000, True, " jobs/min")
    worst_p99 = max((v for b in BACKEND_ORDER
                     if (v := med(data, API, b, "single_p99_ms")) is not None),
                    default=None)
    add("original: enqueue latency < 10 ms (worst p99 over backends)", worst_p99, 10.0, False,
        " ms", "{:.2f}")
    worst_rss = max((v for b in BACKEND_ORDER
                     if (v := med(data, API, b, "rss_mb")) is not None), default=None)
    add("original: < 50 MB per worker (worst backend)", worst_rss, 50.0, False, " MB", "{:.1f}")
    mb = [(b, v) for b in ("sqlite", "postgres", "redis")
          if (v := med(data, API, b, "drain_rate", "payload:1000000")) is not None]
    rows.append(("original: 1 MB payloads (compressed + encrypted)",
                 ", ".join(f"{BACKEND_TITLES[b]} {v:,.1f} jobs/s" for b, v in mb)
                 or "not measured", "", bool(mb) if mb else None))
    worst_start = max((v for b in BACKEND_ORDER
                       if (v := med(data, API, b, "start_s")) is not None), default=None)
    add("original: worker start < 1 s (worst backend)", worst_start, 1.0, False, " s", "{:.2f}")
    return rows


README_START = ("<!-- performance: generated by `python -m benchmarks run` "
                "(benchmarks/report.py) -->")
README_END = "<!-- end of the generated performance figures -->"


def readme_section(data: dict[str, Any]) -> list[str]:
    """The README's performance figures: the CLI row first, as users run it."""
    import textwrap

    def para(text: str) -> list[str]:
        return [*textwrap.wrap(text, 100, break_on_hyphens=False), ""]

    backends = [b for b in ("sqlite", "redis", "postgres", "mysql", "files")
                if med(data, "taskqueue", b, "drain_rate") or med(data, API, b, "drain_rate")]
    used = {e.get("run_id") for k, e in data["entries"].items()
            if k.split("|")[1] in backends and e.get("median") and k.endswith("|standard")}
    n = max((j for b in backends if (j := med(data, "taskqueue", b, "jobs"))), default=None)
    others = ", ".join(sorted({LIB_TITLES.get(c, c) for c in COMPETITORS}, key=str.lower))
    out = [README_START, ""]
    out += para(f"`taskqueue work` as users start it (a subprocess with every default: a "
                f"supervisor and one worker process, recycled every 1,000 jobs, process start "
                f"included) draining {f'{n:,.0f}' if n else 'a backlog of'} no-op jobs on a "
                f"2-core machine, next to the in-process `Worker` API and to {others}, each "
                f"through its own command line ([docs/benchmarks.md](docs/benchmarks.md), "
                f"`python -m benchmarks run`; run{'s' if len(used) > 1 else ''} "
                f"{', '.join(sorted(str(u) for u in used)) or '—'}):")
    out += ["| store | `taskqueue work`, jobs/s | `Worker` API, jobs/s | best other library | "
            "single enqueue, jobs/s (p99) | enqueue→start p50, idle worker |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for b in backends:
        cli, api = med(data, "taskqueue", b, "drain_rate"), med(data, API, b, "drain_rate")
        best = best_other(data, "taskqueue", b, "drain_rate")
        single = med(data, "taskqueue", b, "single_rate")
        p99 = med(data, "taskqueue", b, "single_p99_ms")
        e2e = med(data, "taskqueue", b, "e2e_p50_ms")
        out.append(f"| {SHORT[b]} | {fmt(cli, '{:,.0f}'.format)} | {fmt(api, '{:,.0f}'.format)} "
                   f"| {f'{LIB_TITLES.get(best[0], best[0])} {best[1]:,.0f}' if best else '—'} | "
                   f"{fmt(single, '{:,.0f}'.format)} ({fmt(p99, '{:.2f} ms'.format)}) | "
                   f"{fmt(e2e, '{:.1f} ms'.format)} |")
    out.append("")

    def span(metric: str, f: str) -> str:
        vals = [v for b in BACKEND_ORDER if (v := med(data, "taskqueue", b, metric)) is not None]
        lo, hi = min(vals), max(vals)
        return f.format(lo) if f.format(lo) == f.format(hi) else f"{f.format(lo)}–{f.format(hi)}"

    if any(med(data, "taskqueue", b, "processes") for b in BACKEND_ORDER):
        out += para(f"Such a `taskqueue work` is {span('processes', '{:.0f}')} processes; its "
                    f"worker process idles at {span('worker_rss_mb', '{:.0f}')} MB RSS (the "
                    f"whole tree: {span('pss_mb', '{:.0f}')} MB PSS) and runs its first job "
                    f"{span('start_s', '{:.2f}')} s after the command starts.")
    else:
        out += para("`taskqueue work` has no figures in benchmarks/results/results.json yet "
                    "(the stored run measured the `Worker` API only): `python -m benchmarks "
                    "run` measures it.")
    return [*out, README_END]


def write_readme(data: dict[str, Any], readme: Path) -> bool:
    """Replace the generated part of the README's performance section; False when the README
    has no such part."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    readme.write_text(head + "\n".join(readme_section(data)) + tail)
    return True


def publish(data: dict[str, Any], out: Path, plots: bool = True) -> None:
    """Write the report; when it is docs/benchmarks.md, the README's figures too."""
    write(data, out, plots=plots)
    print(f"report written to {out}", flush=True)
    out = out if out.is_absolute() else ROOT / out
    if (out.resolve() == (ROOT / "docs" / "benchmarks.md").resolve()
            and write_readme(data, ROOT / "README.md")):
        print("README.md: performance figures updated", flush=True)


def stopped(meta: dict[str, Any]) -> str:
    """How far a run that was stopped got (its finished repeats were kept)."""
    if meta.get("complete", True):
        return ""
    return f" (stopped after {meta.get('repeats_done', 0)})"


def code(src: dict[str, Any]) -> str:
    if not src:
        return "?"
    text = f"{src.get('head') or src.get('src') or '?'}, src sha1 {src.get('src_sha1', '?')}"
    if src.get("src_modified_files"):
        text += f" ({src['src_modified_files']} files in src/ modified)"
    return text


def when(data: dict[str, Any], lib: str, backend: str, mode: str = "standard") -> str:
    entry = data["entries"].get(f"{lib}|{backend}|{mode}")
    return entry.get("run_id", "?") if entry else "?"


def write(data: dict[str, Any], out: Path, plots: bool = True) -> None:
    out = out if out.is_absolute() else ROOT / out
    if plots:
        try:
            import matplotlib  # noqa: F401 - only: are plots possible
        except ImportError as exc:  # no image links to pictures of another run
            print(f"plots skipped: {exc} (pip install -e '.[bench]')")
            plots = False
    images = out.parent / "images"
    lines: list[str] = []
    w = lines.append
    used = {e.get("run_id") for e in data["entries"].values()}
    runs = {k: v for k, v in data.get("runs", {}).items() if k in used}
    w("# Benchmarks")
    w("")
    w("<!-- Generated by `python -m benchmarks run` from benchmarks/results/results.json; "
      "edit benchmarks/report.py or benchmarks/notes.md, not this file. -->")
    w("")
    w("taskqueue against Celery, RQ, Dramatiq, Huey, arq, SAQ, Taskiq, Procrastinate and "
      "PgQueuer on the same machine and the same servers (issues #10 and 17), every library "
      "through its own command line. taskqueue's headline row is **`taskqueue work`** as the "
      "README starts it: a subprocess with every default (a supervisor and one worker process "
      "recycled every `WORKER_MAX_JOBS`=1000 jobs, process start included); the second row is "
      "the in-process `Worker` API, the engine without the command line around it. A "
      "**ceiling** row is a minimal batch reserve/acknowledge loop written directly against "
      "each store. Every figure is the median of several runs; the figure in brackets is the "
      "ratio to the best *other* library on the same backend (ceiling excluded; taskqueue's "
      "rows are compared with the competitors, the competitors with the CLI row), in **bold** "
      "when better (for rates above 1 is better; for latency, memory and start time below 1 "
      "is better).")
    w("")
    w("```sh")
    w(".venv/bin/python -m benchmarks setup        # once: venvs with the competitors")
    w(".venv/bin/python -m benchmarks run --jobs 100000   # everything; see benchmarks/README.md")
    w(".venv/bin/python -m benchmarks run --quick  # ~6 min, to benchmarks/results/quick.md")
    w(".venv/bin/python -m benchmarks run --only taskqueue,taskqueue-api   # ours only, merged")
    w("```")
    w("")
    w("## Runs in this report")
    w("")
    w("| run | started (UTC) | took | libraries | backends | repeats | N | load average "
      "(median / max) | taskqueue code |")
    w("| --- | --- | ---: | --- | --- | ---: | ---: | --- | --- |")
    for run_id, meta in sorted(runs.items()):
        s = meta.get("settings", {})
        changed = (" — changed during the run!"
                   if meta.get("taskqueue_source_changed_during_run") else "")
        w(f"| {run_id} | {meta.get('started', '?')} | {meta.get('seconds', 0) / 60:.1f} min | "
          f"{', '.join(meta.get('only') or ['all'])} | {', '.join(meta.get('backends', []))} | "
          f"{s.get('repeat', '?')}{stopped(meta)} | {s.get('jobs', '?'):,} | "
          f"{meta.get('load_avg_median') or 0:.1f} / {meta.get('load_avg_max') or 0:.1f} | "
          f"{code(meta.get('taskqueue_source', {}))}{changed} |")
    w("")
    w("The machine has 2 cores and was shared with other engineers' test suites during these "
      "runs (see the load average, on 2 cores): absolute figures are depressed and noisy, "
      "ratios between libraries measured in the same run are the meaningful numbers. "
      "Each row's run is in the tables' notes when runs were merged.")
    w("")
    w("## Issue 17 goals (the CLI row)")
    w("")
    w("| goal | measured | met |")
    w("| --- | --- | :---: |")
    for label, value, met in goals17(data):
        mark = "—" if met is None else ("✅ met" if met else "❌ not met")
        w(f"| {label} | {value} | {mark} |")
    w("")
    w("Goal 2 (supervision under 5 µs per job) is bounded by the *CLI cost per job* column "
      "below, which also holds the CLI worker's own per-job work. Goal 6 has no threshold: "
      "the figures are in the mixed-durations section.")
    w("")
    lines.extend(cli_section(data))
    lines.extend(before_after(data))
    lines.extend(enqueue_before_after(data))
    lines.extend(mixed_section(data))
    w("## Issue #10 targets (the engine: `Worker` API row)")
    w("")
    w("| target | taskqueue measured | vs target | met |")
    w("| --- | --- | --- | :---: |")
    for label, value, cmp, met in targets(data):
        mark = "—" if met is None else ("✅ met" if met else "❌ not met")
        w(f"| {label} | {value} | {cmp} | {mark} |")
    w("")
    w("## Results by backend")
    w("")
    if plots:
        w("![drain rate by backend](images/bench-drain.png)")
        w("")
    for backend in BACKEND_ORDER:
        table = backend_table(data, backend)
        if not table:
            continue
        w(f"### {BACKEND_TITLES[backend]}")
        w("")
        lines.extend(table)
        w("")
        rids = sorted({when(data, lib, backend) for lib in libs_on(data, backend)})
        if len(rids) > 1:
            w("Rows come from runs " + ", ".join(
                f"{lib}: {when(data, lib, backend)}" for lib in libs_on(data, backend)) +
              " (merged; ratios across runs are less reliable).")
            w("")
        ceiling = med(data, "ceiling", backend, "drain_rate")
        cli, api = (med(data, lib, backend, "drain_rate") for lib in OURS)
        if ceiling and cli and api:
            w(f"On {BACKEND_TITLES[backend]}, `taskqueue work` drains at **{cli / ceiling:.1%} of "
              f"the ceiling** and the `Worker` API at {api / ceiling:.1%} ({cli:,.0f} and "
              f"{api:,.0f} vs {ceiling:,.0f} jobs/s).")
            w("")
        notes = []
        for lib in libs_on(data, backend):
            entry = data["entries"][f"{lib}|{backend}|standard"]
            for n in entry.get("notes", []):
                notes.append(f"{lib}: {n}")
            if entry.get("median") and entry.get("errors"):
                for e in entry["errors"]:
                    notes.append(f"{lib}: a run failed: {e}")
        if notes:
            w("Notes: " + "; ".join(sorted(set(notes))) + ".")
            w("")
    if plots:
        w("![enqueue latency](images/bench-enqueue.png)")
        w("")
        w("![enqueue to start, memory, start time](images/bench-idle.png)")
        w("")
    w("## Distance to the ceiling")
    w("")
    w("| backend | metric | taskqueue work | `Worker` API | ceiling | CLI / ceiling | "
      "API / ceiling |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for backend in BACKEND_ORDER:
        for metric in ("drain_rate", "single_rate", "bulk_rate", "single_p50_ms",
                       "e2e_p50_ms", "rss_mb", "start_s"):
            cli, api = (med(data, lib, backend, metric) for lib in OURS)
            c = med(data, "ceiling", backend, metric)
            if c is None or (cli is None and api is None):
                continue
            title, _, f = COLUMNS[metric]
            w(f"| {BACKEND_TITLES[backend]} | {title} | {fmt(cli, f)} | {fmt(api, f)} | {f(c)} | "
              f"{fmt(cli and cli / c, '{:.2f}'.format)} | "
              f"{fmt(api and api / c, '{:.2f}'.format)} |")
    w("")
    payload_rows = []
    for backend in BACKEND_ORDER:
        for size in PAYLOAD_SIZES:
            entry = data["entries"].get(f"{API}|{backend}|payload:{size}")
            if not entry:
                continue
            m = entry.get("median", {})
            if not m:
                payload_rows.append(f"| {BACKEND_TITLES[backend]} | {human(size)} | failed: "
                                    f"{'; '.join(entry.get('errors', []))[:200]} | | | | |")
                continue
            payload_rows.append(
                f"| {BACKEND_TITLES[backend]} | {human(size)} | "
                f"{human(m['stored_bytes']) if m.get('stored_bytes') else '—'} | "
                f"{m.get('single_p50_ms', float('nan')):.2f} | "
                f"{m.get('single_rate', float('nan')):,.0f} | "
                f"{m.get('drain_rate', float('nan')):,.1f} | "
                f"{m.get('drain_mb_s', float('nan')):,.1f} |")
    if payload_rows:
        w("## Payload sizes (taskqueue, compression and AES-256-GCM encryption on)")
        w("")
        w("JSON payloads of typical application records (compress about 3×), "
          "`ENCRYPTION_KEY` set for the client and the worker. Stored = bytes after "
          "compression and encryption.")
        w("")
        w("| backend | payload | stored | enqueue p50, ms | enqueue, jobs/s | drain, jobs/s | "
          "drain, MB/s of payload |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        lines.extend(payload_rows)
        w("")
        if plots:
            w("![payload sweep](images/bench-payload.png)")
            w("")
    scale_rows = []
    for backend in BACKEND_ORDER:
        many = med(data, API, backend, f"drain_rate_x{SCALE_PROCESSES}",
                   f"scale:{SCALE_PROCESSES}")
        one = med(data, API, backend, "drain_rate")
        if many is not None and one:
            scale_rows.append(f"| {BACKEND_TITLES[backend]} | {one:,.0f} | {many:,.0f} | "
                              f"{many / one:.2f}× |")
    if scale_rows:
        w(f"## Scaling: {SCALE_PROCESSES} worker processes (taskqueue)")
        w("")
        w(f"| backend | 1 process, jobs/s | {SCALE_PROCESSES} processes, jobs/s | speed-up |")
        w("| --- | ---: | ---: | ---: |")
        lines.extend(scale_rows)
        w("")
        w(f"On 2 cores, {SCALE_PROCESSES} CPU-bound worker processes share 2 CPUs with the "
          "store server and the rest of the machine; 3× needs the single worker to be "
          "mostly waiting on the store.")
        w("")
    scale_file = BENCH / "results" / "scale.md"  # python -m benchmarks scale (issue 20)
    if scale_file.exists():
        w("## At a million jobs")
        w("")
        w(scale_file.read_text().rstrip())
        w("")
    w("## Libraries, versions and configurations")
    w("")
    w("| library | version | delivery | worker configuration (one process) | measured on | "
      "not measured on |")
    w("| --- | --- | --- | --- | --- | --- |")
    for spec in LIBS:
        if spec.name in BEFORE:
            continue
        entries = [e for k, e in data["entries"].items()
                   if k.startswith(f"{spec.name}|") and k.endswith("|standard")]
        version = next((e.get("version") for e in entries if e.get("version")), "—")
        config = next((e.get("config") for e in entries if e.get("config")), "—")
        measured = [BACKEND_TITLES[e["backend"]] for e in entries if e.get("median")]
        failed = [f"{BACKEND_TITLES[e['backend']]} ({'; '.join(e.get('errors', []))[:160]})"
                  for e in entries if not e.get("median")]
        unsupported = [f"{BACKEND_TITLES[b]} ({why})" for b, why in spec.unsupported.items()]
        w(f"| {spec.name} | {version} | {spec.guarantee} | {config} | "
          f"{', '.join(measured) or '—'} | {'; '.join(failed + unsupported) or '—'} |")
    w("")
    w("## Method")
    w("")
    w(METHOD)
    notes_file = BENCH / "notes.md"
    if notes_file.exists():
        w("")
        w(notes_file.read_text().rstrip())
    w("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if plots:
        make_plots(data, images)


METHOD = """\
* **One command, one machine.** `python -m benchmarks run` makes a fresh store for every \
measurement (a PostgreSQL or MariaDB database of its own, a redis-server of its own on a spare \
port, without persistence like the installed one, a temporary directory for SQLite and files), \
runs `benchmarks/harness.py` in the \
library's own interpreter (taskqueue and the ceiling in `benchmarks/.venvs/taskqueue`, the \
project installed with its `postgres,mysql,redis` extras and nothing else, as a user would, \
running the `src/` of the tree being measured; competitors in `benchmarks/.venvs/`, because \
their pins conflict with each other: arq needs redis-py < 6, SAQ < 8, taskiq-redis ≥ 8; every \
venv has hiredis), then drops the store. All code runs from compiled bytecode. No taskqueue \
setting from the environment (`WORKER_*`, `TASKQUEUE_*`…) reaches a measurement.
* **Interleaved repeats.** Each repeat measures every library once, in a rotated order, so \
that a burst of load from the rest of the machine hits libraries evenly; the reported figure is \
the median over repeats. After the first repeat N is trimmed for slow competitors so that one \
drain takes about four seconds (a library draining 100 jobs/s is measured on ~400 jobs, not \
10,000). taskqueue's rows always drain the N asked for (100,000 for issue 17's goal 1), so the \
CLI and the `Worker` API are compared on the same backlog.
* **The job** is a no-op that calls `benchmarks.probe.hit()`: it appends one byte to a count \
file shared by every process of the measurement and reads its own file position back (two \
system calls, under a microsecond: the run-wide number of jobs started, across a recycled \
worker's successors), and sends a UDP datagram to the harness on loopback for each process's \
first job, every 64th job, the N-th job, a recycled process's last job and every latency \
sample. No job touches the store.
* **The worker as users start it.** taskqueue's headline row runs `taskqueue work --app \
benchmarks.adapters.taskqueue --queue q` (the console script) with nothing else; the `Worker` \
API row runs `Worker(manager, WorkerOptions(queues=[q])).run()` in a process of its own. \
Competitors run their own CLI (table of configurations above).
* **Enqueue, single**: up to 1,000 calls (2 s at most) of the library's ordinary enqueue call \
(`delay`, `send`, `enqueue`, `kiq`, `defer_async`, `manager.push`…), one after the other, \
with no worker running; rate, and per-call p50/p99 latency. Async libraries are awaited in \
one event loop.
* **Enqueue, bulk**: the library's own bulk API in batches of 1,000 (`push_many`, \
`enqueue_many`, `batch_defer_async`, PgQueuer's list form), rate and the p99 of one batch call; \
libraries without one show —.
* **Drain**: N jobs are enqueued first (bulk API, else single calls); then the worker is \
started (by pid, stopped with SIGTERM, SIGKILL after 5 s); rate = (N − 1) / (time the N-th job \
started − time the first job started). Spawn → first job = from spawning the worker command to \
its first job starting (interpreter start, imports, connecting, first reservation).
* **Recycling** (taskqueue's CLI row): the probe marks each worker process's first and \
1,000th job; the processing a recycle loses is the drain's time beyond what its steady rate \
(the 64-job stretches away from every recycle) would have taken, divided by the recycles; the \
gap from a last job to the replacement's first is kept as `recycle_gap_ms`.
* **Process tree**: read with psutil on the idle tree right after the drain (so after it ran \
N jobs): number of processes, RSS and PSS (proportional set size: shared pages split between \
the processes sharing them) of each, and the worker's own RSS. Peak RSS of the tree is sampled \
every 0.25 s during the drain.
* **Enqueue → start**: on the idle worker, one job every 5 ms (open loop, 200 samples; 100 \
with `--quick`); time from just before the enqueue call to the first line of the job (wall \
clocks of the same machine); p50 and p99.
* **Mixed durations** (taskqueue's CLI, `--workers 2`): a stream of 200 jobs/s for 10 s, 1 ms \
jobs with one 2 s job in every 500 (wait of the short jobs, p50/p99/max), then a backlog of \
2,000 of the same mix pushed at once (drain rate, and short jobs held behind a long one).
* **Libraries run with their defaults** except what it takes to have one worker process that \
runs the job itself (table above): e.g. Celery `--pool=solo`, RQ `SimpleWorker`, huey one \
thread. Polling intervals are left at their defaults, which is why arq (0.5 s poll) and huey on \
SQLite/files (0.1 s, backing off) show long enqueue→start times.
* **The ceiling** (`benchmarks/adapters/ceiling*.py`) is a hand-written loop per store: \
SQLite `UPDATE … WHERE id IN (SELECT … LIMIT 100) RETURNING` in `BEGIN IMMEDIATE` and one \
transaction acknowledging the batch (WAL, `synchronous=NORMAL`, like taskqueue); PostgreSQL \
`FOR UPDATE SKIP LOCKED` CTE + `UPDATE … WHERE id = ANY(…)`, prepared, autocommit; Redis one Lua \
script popping 100 ids and recording leases, one acknowledging the batch. It decodes each \
payload and calls the no-op like a library would, and does nothing else. When the queue is \
empty it polls every millisecond (no wake-up mechanism), so its enqueue→start figure is a \
polling figure and its idle CPU use is not what a real worker could afford.
* **Payload sweep** (taskqueue's `Worker` API): JSON records of 1 KB to 1 MB, `ENCRYPTION_KEY` \
set, at most 2,000 jobs or 20 MB per size; enqueue with single calls, then one worker drains \
them.
* **Scaling** (`Worker` API): the same drain with 4 worker processes started together; rate \
from the workers' progress datagrams until 90 % of N have run.
* **Re-running part of it**: `--only taskqueue,taskqueue-api` re-measures those rows and \
merges them into `benchmarks/results/results.json`, keeping the other libraries' stored \
medians; the "Runs in this report" table and each backend's notes say which run every row \
comes from.
* **Servers**: as installed (PostgreSQL 15 with `fsync=on`, `synchronous_commit=on`; Redis 7.0 \
without persistence, the installed binary started for each measurement; MariaDB 10.11). A \
PostgreSQL commit costs a WAL flush, which dominates every per-job transaction on this disk; \
this hits all PostgreSQL libraries alike."""


def human(n: float) -> str:
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


# -- plots ----------------------------------------------------------------------------------------
COLORS = {"taskqueue": "#d62728", API: "#ff9896", "ceiling": "#9a9a9a", "huey": "#9467bd",
          "dramatiq": "#17becf", "taskiq": "#8c564b", "saq": "#e377c2", "celery": "#ff7f0e",
          "arq": "#bcbd22", "rq": "#2ca02c", "pgqueuer": "#1f77b4", "procrastinate": "#393b79"}
SHORT = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL",
         "files": "Files"}
LIB_TITLES = {"celery": "Celery", "rq": "RQ", "dramatiq": "Dramatiq", "huey": "huey",
              "arq": "arq", "saq": "SAQ", "taskiq": "Taskiq", "procrastinate": "Procrastinate",
              "pgqueuer": "PgQueuer"}


def make_plots(data: dict[str, Any], images: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images.mkdir(parents=True, exist_ok=True)
    backends = [b for b in BACKEND_ORDER if libs_on(data, b)]

    def grouped(ax: Any, metric: str, title: str, log: bool, with_ceiling: bool
                ) -> dict[str, tuple[float, float]]:
        spans: dict[str, tuple[float, float]] = {}
        x = 0.0
        ticks, labels = [], []
        seen: set[str] = set()
        for b in backends:
            libs = [n for n in libs_on(data, b) if med(data, n, b, metric) is not None
                    and (with_ceiling or n != "ceiling")]
            if not libs:
                continue
            start = x
            for n in libs:
                v = med(data, n, b, metric)
                ax.bar(x, v, color=COLORS.get(n, "#333"), width=0.8,
                       label=None if n in seen else n,
                       hatch="//" if n == "ceiling" else None, edgecolor="white")
                seen.add(n)
                x += 1
            ticks.append((start + x - 1) / 2)
            spans[b] = (start - 0.45, x - 0.55)
            labels.append(SHORT[b])
            x += 1.2
        ax.set_xticks(ticks, labels)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        return spans

    fig, ax = plt.subplots(figsize=(11, 5))
    spans = grouped(ax, "drain_rate",
                    "Drain rate of no-op jobs, one worker process (jobs/s, log scale)", True, True)
    first = True
    for b, goal in (("redis", 12_000), ("postgres", 10_000), ("sqlite", 40_000)):
        if b in spans:
            ax.hlines(goal, *spans[b], colors="black", linestyles="--", linewidth=1.2,
                      label="issue #10 target" if first else None)
            first = False
    fig.legend(*ax.get_legend_handles_labels(), ncol=6, fontsize=8, loc="lower center")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(images / "bench-drain.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    grouped(axes[0], "single_p50_ms", "Single enqueue latency p50 (ms, log)", True, True)
    grouped(axes[1], "single_p99_ms", "Single enqueue latency p99 (ms, log)", True, True)
    fig.legend(*axes[0].get_legend_handles_labels(), ncol=11, fontsize=8, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(images / "bench-enqueue.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    grouped(axes[0], "e2e_p50_ms", "Enqueue → start p50, idle worker (ms, log)", True, True)
    grouped(axes[1], "rss_mb", "Worker RSS after the drain (MB)", False, True)
    grouped(axes[2], "start_s", "Worker start to first job (s)", False, True)
    fig.legend(*axes[1].get_legend_handles_labels(), ncol=11, fontsize=8, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(images / "bench-idle.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    any_payload = False
    for b in BACKEND_ORDER:
        pts = [(s, med(data, API, b, "drain_mb_s", f"payload:{s}"),
                med(data, API, b, "single_p50_ms", f"payload:{s}")) for s in PAYLOAD_SIZES]
        pts = [p for p in pts if p[1] is not None]
        if not pts:
            continue
        any_payload = True
        xs = [p[0] / 1000 for p in pts]
        axes[0].plot(xs, [p[1] for p in pts], marker="o", label=BACKEND_TITLES[b])
        axes[1].plot(xs, [p[2] for p in pts], marker="o", label=BACKEND_TITLES[b])
    if any_payload:
        for ax, title in ((axes[0], "Drain throughput (MB/s of payload)"),
                          (axes[1], "Enqueue p50 latency (ms)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("payload (KB, JSON; compressed + encrypted)")
            ax.set_title(f"taskqueue: {title}")
            ax.grid(alpha=0.3, which="both")
            ax.legend()
        fig.tight_layout()
        fig.savefig(images / "bench-payload.png", dpi=110)
    plt.close(fig)
