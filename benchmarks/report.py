"""Render the merged results (benchmarks/results/results.json) as docs/benchmarks.md plus PNG
plots under docs/images/bench-*.png. Hand-written analysis lives in benchmarks/notes.md and is
included as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.orchestrate import (
    BENCH,
    COMPETITORS,
    LIBS,
    PAYLOAD_SIZES,
    ROOT,
    SCALE_PROCESSES,
)

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
    "e2e_p50_ms": ("enqueue→start p50, ms", False, lambda v: f"{v:.1f}"),
    "rss_mb": ("worker RSS, MB", False, lambda v: f"{v:.0f}"),
    "start_s": ("worker start, s", False, lambda v: f"{v:.2f}"),
}


def med(data: dict[str, Any], lib: str, backend: str, metric: str,
        mode: str = "standard") -> float | None:
    entry = data["entries"].get(f"{lib}|{backend}|{mode}")
    if not entry:
        return None
    value = entry.get("median", {}).get(metric)
    return float(value) if value is not None else None


def best_other(data: dict[str, Any], lib: str, backend: str, metric: str
               ) -> tuple[str, float] | None:
    """The best figure among the other libraries (not the ceiling) on this backend."""
    higher = COLUMNS[metric][1]
    found = [(other, v) for other in ("taskqueue", *COMPETITORS) if other != lib
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
    present = [lib.name for lib in LIBS
               if f"{lib.name}|{backend}|standard" in data["entries"]]
    rest = [n for n in present if n not in ("taskqueue", "ceiling")]
    rest.sort(key=lambda n: -(med(data, n, backend, "drain_rate") or 0))
    head = ["taskqueue"] if "taskqueue" in present else []
    tail = ["ceiling"] if "ceiling" in present else []
    return head + rest + tail


def backend_table(data: dict[str, Any], backend: str) -> list[str]:
    libs = libs_on(data, backend)
    if not libs:
        return []
    cols = list(COLUMNS)
    out = ["| library | " + " | ".join(COLUMNS[c][0] for c in cols) + " |",
           "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for lib in libs:
        entry = data["entries"][f"{lib}|{backend}|standard"]
        name = f"**{lib}**" if lib == "taskqueue" else lib
        if lib == "ceiling":
            name = "ceiling (hand-written loop)"
        if not entry.get("median"):
            why = "; ".join(entry.get("errors") or ["no result"])
            out.append(f"| {name} | not measured: {why.replace('|', '/')} |"
                       + " |" * (len(cols) - 1))
            continue
        out.append(f"| {name} | " + " | ".join(cell(data, lib, backend, c) for c in cols) + " |")
    return out


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}/s"


def targets(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, what was measured, comparison, met)"""
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
            med(data, "taskqueue", backend, "drain_rate"), goal, True, " jobs/s")
    p99s: tuple[tuple[str, float], ...] = (("redis", 1.0), ("sqlite", 1.0), ("postgres", 2.0))
    for backend, goal in p99s:
        add(f"single enqueue p99 < {goal:g} ms on {BACKEND_TITLES[backend]}",
            med(data, "taskqueue", backend, "single_p99_ms"), goal, False, " ms", "{:.2f}")
    e2es: tuple[tuple[str, float], ...] = (("redis", 1.0), ("postgres", 5.0))
    for backend, goal in e2es:
        add(f"enqueue→start p50 < {goal:g} ms on an idle {BACKEND_TITLES[backend]} worker",
            med(data, "taskqueue", backend, "e2e_p50_ms"), goal, False, " ms", "{:.1f}")
    for backend in ("sqlite", "postgres", "redis"):
        add(f"idle worker RSS < 35 MB ({BACKEND_TITLES[backend]})",
            med(data, "taskqueue", backend, "rss_mb"), 35.0, False, " MB", "{:.1f}")
    for backend in ("sqlite", "postgres", "redis"):
        add(f"worker start < 0.3 s ({BACKEND_TITLES[backend]})",
            med(data, "taskqueue", backend, "start_s"), 0.3, False, " s", "{:.2f}")
    for backend in ("postgres", "redis"):
        one = med(data, "taskqueue", backend, "drain_rate")
        many = med(data, "taskqueue", backend, f"drain_rate_x{SCALE_PROCESSES}",
                   f"scale:{SCALE_PROCESSES}")
        label = f"{SCALE_PROCESSES} worker processes ≥ 3× one on {BACKEND_TITLES[backend]}"
        if one and many:
            rows.append((label, f"{many:,.0f}/s vs {one:,.0f}/s = {many / one:.2f}×",
                         f"{many / one / 3:.2f}× the target", many / one >= 3))
        else:
            rows.append((label, "not measured", "", None))
    for backend in BACKEND_ORDER:
        best = best_other(data, "taskqueue", backend, "drain_rate")
        v = med(data, "taskqueue", backend, "drain_rate")
        if best is None or v is None:
            continue
        rows.append((f"drain faster than every other library on {BACKEND_TITLES[backend]}",
                     f"{v:,.0f}/s vs {best[0]} {best[1]:,.0f}/s", f"{v / best[1]:.2f}×",
                     v > best[1]))
    # the original's promises
    worst_drain = min((v for b in BACKEND_ORDER
                       if (v := med(data, "taskqueue", b, "drain_rate")) is not None),
                      default=None)
    add("original: 10K+ jobs per minute per worker (slowest backend)",
        None if worst_drain is None else worst_drain * 60, 10_000, True, " jobs/min")
    worst_p99 = max((v for b in BACKEND_ORDER
                     if (v := med(data, "taskqueue", b, "single_p99_ms")) is not None),
                    default=None)
    add("original: enqueue latency < 10 ms (worst p99 over backends)", worst_p99, 10.0, False,
        " ms", "{:.2f}")
    worst_rss = max((v for b in BACKEND_ORDER
                     if (v := med(data, "taskqueue", b, "rss_mb")) is not None), default=None)
    add("original: < 50 MB per worker (worst backend)", worst_rss, 50.0, False, " MB", "{:.1f}")
    mb = [(b, v) for b in ("sqlite", "postgres", "redis")
          if (v := med(data, "taskqueue", b, "drain_rate", "payload:1000000")) is not None]
    rows.append(("original: 1 MB payloads (compressed + encrypted)",
                 ", ".join(f"{BACKEND_TITLES[b]} {v:,.1f} jobs/s" for b, v in mb)
                 or "not measured", "", bool(mb) if mb else None))
    worst_start = max((v for b in BACKEND_ORDER
                       if (v := med(data, "taskqueue", b, "start_s")) is not None), default=None)
    add("original: worker start < 1 s (worst backend)", worst_start, 1.0, False, " s", "{:.2f}")
    return rows


def code(src: dict[str, Any]) -> str:
    if not src:
        return "?"
    text = f"{src.get('head', '?')}, src sha1 {src.get('src_sha1', '?')}"
    if src.get("src_modified_files"):
        text += f" ({src['src_modified_files']} files in src/ modified)"
    return text


def when(data: dict[str, Any], lib: str, backend: str, mode: str = "standard") -> str:
    entry = data["entries"].get(f"{lib}|{backend}|{mode}")
    return entry.get("run_id", "?") if entry else "?"


def write(data: dict[str, Any], out: Path, plots: bool = True) -> None:
    out = out if out.is_absolute() else ROOT / out
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
      "PgQueuer on the same machine and the same servers (issue #10), plus a **ceiling**: a "
      "minimal batch reserve/acknowledge loop written directly against each store. Every "
      "figure is the median of several runs; the figure in brackets is the ratio to the best "
      "*other* library on the same backend (ceiling excluded), in **bold** when better "
      "(for rates above 1 is better; for latency, memory and start time below 1 is better).")
    w("")
    w("```sh")
    w(".venv/bin/python -m benchmarks setup        # once: venvs with the competitors")
    w(".venv/bin/python -m benchmarks run          # everything, ~15 min")
    w(".venv/bin/python -m benchmarks run --quick  # ~2 min, to benchmarks/results/quick.md")
    w(".venv/bin/python -m benchmarks run --only taskqueue,ceiling   # re-measure ours, merge")
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
          f"{s.get('repeat', '?')} | {s.get('jobs', '?'):,} | "
          f"{meta.get('load_avg_median') or 0:.1f} / {meta.get('load_avg_max') or 0:.1f} | "
          f"{code(meta.get('taskqueue_source', {}))}{changed} |")
    w("")
    w("The machine has 2 cores and was shared with other engineers' test suites during these "
      "runs (see the load average, on 2 cores): absolute figures are depressed and noisy, "
      "ratios between libraries measured in the same run are the meaningful numbers. "
      "Each row's run is in the tables' notes when runs were merged.")
    w("")
    w("## Issue #10 targets")
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
        ours = med(data, "taskqueue", backend, "drain_rate")
        if ceiling and ours:
            w(f"taskqueue drains at **{ours / ceiling:.1%} of the ceiling** on "
              f"{BACKEND_TITLES[backend]} ({ours:,.0f} vs {ceiling:,.0f} jobs/s).")
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
    w("| backend | metric | taskqueue | ceiling | taskqueue / ceiling |")
    w("| --- | --- | ---: | ---: | ---: |")
    for backend in BACKEND_ORDER:
        for metric in ("drain_rate", "single_rate", "bulk_rate", "single_p50_ms",
                       "e2e_p50_ms", "rss_mb", "start_s"):
            a = med(data, "taskqueue", backend, metric)
            c = med(data, "ceiling", backend, metric)
            if a is None or c is None:
                continue
            title, _, f = COLUMNS[metric]
            w(f"| {BACKEND_TITLES[backend]} | {title} | {f(a)} | {f(c)} | {a / c:.2f} |")
    w("")
    payload_rows = []
    for backend in BACKEND_ORDER:
        for size in PAYLOAD_SIZES:
            entry = data["entries"].get(f"taskqueue|{backend}|payload:{size}")
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
        many = med(data, "taskqueue", backend, f"drain_rate_x{SCALE_PROCESSES}",
                   f"scale:{SCALE_PROCESSES}")
        one = med(data, "taskqueue", backend, "drain_rate")
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
    w("## Libraries, versions and configurations")
    w("")
    w("| library | version | delivery | worker configuration (one process) | measured on | "
      "not measured on |")
    w("| --- | --- | --- | --- | --- | --- |")
    for spec in LIBS:
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
        try:
            make_plots(data, images)
        except ImportError as exc:
            print(f"plots skipped: {exc} (pip install matplotlib)")


METHOD = """\
* **One command, one machine.** `python -m benchmarks run` makes a fresh store for every \
measurement (a PostgreSQL or MariaDB database of its own, Redis database 14 emptied before and \
after, a temporary directory for SQLite and files), runs `benchmarks/harness.py` in the \
library's own interpreter (taskqueue and the ceiling in `benchmarks/.venvs/taskqueue`, the \
project installed with its `postgres,mysql,redis` extras and nothing else, as a user would; \
competitors in `benchmarks/.venvs/`, because their pins conflict with each other: arq needs \
redis-py < 6, SAQ < 8, taskiq-redis ≥ 8; every venv has hiredis), then drops the store. All \
code runs from compiled bytecode.
* **Interleaved repeats.** Each repeat measures every library once, in a rotated order, so \
that a burst of load from the rest of the machine hits libraries evenly; the reported figure is \
the median over repeats. After the first repeat N is trimmed for slow libraries so that one \
drain takes about four seconds (a library draining 100 jobs/s is measured on ~400 jobs, not \
10,000).
* **The job** is a no-op that calls `benchmarks.probe.hit()`: one integer increment, and a UDP \
datagram to the harness on loopback for the first job, every 64th job, the N-th job and every \
latency sample. No job touches the store.
* **Enqueue, single**: up to 1,000 calls (2 s at most) of the library's ordinary enqueue call \
(`delay`, `send`, `enqueue`, `kiq`, `defer_async`, `manager.push`…), one after the other, \
with no worker running; rate, and per-call p50/p99 latency. Async libraries are awaited in \
one event loop.
* **Enqueue, bulk**: the library's own bulk API in batches of 1,000 (`push_many`, \
`enqueue_many`, `batch_defer_async`, PgQueuer's list form); libraries without one show —.
* **Drain**: N jobs are enqueued first (bulk API, else single calls); then ONE worker process is \
started (by pid, stopped with SIGTERM, SIGKILL after 5 s); rate = (N − 1) / (time the N-th job \
started − time the first job started). Worker start = from spawning the worker process to its \
first job starting (interpreter start, imports, connecting, first reservation).
* **Worker RSS**: resident memory of the worker's whole process tree, idle, right after the \
drain (so after it ran N jobs).
* **Enqueue → start**: on the idle worker, up to 30 jobs one at a time with random 5-50 ms gaps; \
time from just before the enqueue call to the first line of the job (wall clocks of the same \
machine).
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
* **Payload sweep** (taskqueue only): JSON records of 1 KB to 1 MB, `ENCRYPTION_KEY` set, at \
most 2,000 jobs or 20 MB per size; enqueue with single calls, then one worker drains them.
* **Scaling**: the same drain with 4 worker processes started together; rate from the \
workers' progress datagrams until 90 % of N have run.
* **Re-running part of it**: `--only taskqueue,ceiling` re-measures those rows and merges \
them into `benchmarks/results/results.json`, keeping the other libraries' stored medians; \
the "Runs in this report" table and each backend's notes say which run every row comes from.
* **Servers**: as installed (PostgreSQL 15 with `fsync=on`, `synchronous_commit=on`; Redis 7.0 \
without persistence; MariaDB 10.11). A PostgreSQL commit costs a WAL flush, which dominates \
every per-job transaction on this disk; this hits all PostgreSQL libraries alike."""


def human(n: float) -> str:
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


# -- plots ----------------------------------------------------------------------------------------
COLORS = {"taskqueue": "#d62728", "ceiling": "#9a9a9a", "huey": "#9467bd",
          "dramatiq": "#17becf", "taskiq": "#8c564b", "saq": "#e377c2", "celery": "#ff7f0e",
          "arq": "#bcbd22", "rq": "#2ca02c", "pgqueuer": "#1f77b4", "procrastinate": "#393b79"}
SHORT = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL",
         "files": "Files"}


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
        pts = [(s, med(data, "taskqueue", b, "drain_mb_s", f"payload:{s}"),
                med(data, "taskqueue", b, "single_p50_ms", f"payload:{s}")) for s in PAYLOAD_SIZES]
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
