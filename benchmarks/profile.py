"""``python -m benchmarks profile``: profile one taskqueue worker draining N no-op jobs.

N jobs are pushed first, then ONE worker (``benchmarks.adapters.taskqueue_worker``, with
``stop_when_empty``) runs under py-spy (sampling, native-free, 250 Hz; ``--tool py-spy``) or
pyinstrument (``--tool pyinstrument``) until the queue is empty. Writes, per backend, the raw
profile and a summary of the hottest functions (self and inclusive time, main thread's work)
under ``benchmarks/results/profiles/``.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import stores
from benchmarks.orchestrate import ROOT


def summarize_raw(path: Path, top: int = 25, within: str | None = None) -> str:
    """Self and inclusive time per function from py-spy's ``raw`` (collapsed stacks) output;
    ``within``: only stacks that pass through a frame containing this text."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    files: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if within and not any(within in f for f in frames):
            continue
        total += n
        self_t[short(frames[-1])] += n
        for f in {short(x) for x in frames}:
            incl[f] += n
        for f in {module_of(x) for x in frames}:
            files[f] += n
    if not total:
        return "no samples\n"
    out = [f"{total} samples (active threads)", "", "self time:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in self_t.most_common(top)]
    out += ["", "inclusive time (function and what it calls):"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in incl.most_common(top + 15)]
    out += ["", "inclusive time per source file:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in files.most_common(top)]
    return "\n".join(out) + "\n"


def short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def module_of(frame: str) -> str:
    where = short(frame).partition(" (")[2].rstrip(")")
    return where.rsplit(":", 1)[0]


def profile_backend(backend: str, jobs: int, tool: str, out_dir: Path) -> dict[str, Any]:
    from benchmarks.adapters import taskqueue as tqa

    result: dict[str, Any] = {"backend": backend, "jobs": jobs, "tool": tool}
    with stores.fresh_store(backend) as store:
        os.environ["BENCH_STORE"] = json.dumps(store)
        adapter = tqa.TaskqueueAdapter(backend, store)
        adapter.setup()
        for start in range(0, jobs, 1000):
            adapter.enqueue_bulk(min(1000, jobs - start))
        adapter.close()
        env = dict(os.environ)
        env.update(adapter.worker_env())
        env["BENCH_TQ_OPTIONS"] = json.dumps({"stop_when_empty": True})
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        worker = [sys.executable, "-m", "benchmarks.adapters.taskqueue_worker"]
        if tool == "py-spy":
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            raw = out_dir / f"{backend}-py-spy.txt"
            argv = [spy, "record", "--rate", "250", "--format", "raw", "--output", str(raw),
                    "--nonblocking", "--", *worker]
        else:
            raw = out_dir / f"{backend}-pyinstrument.txt"
            argv = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--outfile",
                    str(raw), "--show-all", "-m", "benchmarks.adapters.taskqueue_worker"]
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        elapsed = time.perf_counter() - t0
        result.update(seconds=round(elapsed, 2), rate_under_profiler=round(jobs / elapsed),
                      returncode=proc.returncode, output=str(raw.relative_to(ROOT)))
        if proc.returncode:
            result["stderr"] = proc.stderr[-2000:]
    if tool == "py-spy" and raw.exists():
        summary = out_dir / f"{backend}-py-spy-top.txt"
        summary.write_text(
            f"taskqueue worker draining {jobs} no-op jobs on {backend} ({elapsed:.1f}s under "
            f"py-spy, including start)\n\n== the drain loop only (stacks under Worker._loop)"
            f"\n\n{summarize_raw(raw, within='Worker._loop')}\n== the whole process "
            f"(start-up imports included)\n\n{summarize_raw(raw, top=15)}")
        result["summary"] = str(summary.relative_to(ROOT))
    return result


def main(args: Any) -> int:
    out_dir = Path(args.out_dir)
    out_dir = out_dir if out_dir.is_absolute() else ROOT / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for backend in [b.strip() for b in args.backend.split(",") if b.strip()]:
        if reason := stores.check(backend):
            print(f"{backend}: skipped, {reason}")
            continue
        r = profile_backend(backend, args.jobs, args.tool, out_dir)
        print(json.dumps(r, indent=1))
        if r.get("summary"):
            print((ROOT / r["summary"]).read_text()[:4000])
    return 0
