"""Plan the measurements, run them interleaved (every repeat visits every library once, in a
rotated order), keep the medians, merge them into the results file, and write the report.

Each measurement runs ``benchmarks.harness`` in a subprocess with the interpreter of the venv
that holds the library (taskqueue and the ceiling: ``benchmarks/.venvs/taskqueue``, else this
interpreter; competitors: ``benchmarks/.venvs/<name>``; ``BENCH_VENVS`` points elsewhere),
against a store made fresh for it and dropped after. taskqueue's code is always the ``src/`` of
this tree (or ``--taskqueue-src``), put first on ``PYTHONPATH``.

taskqueue has two rows: ``taskqueue`` is the path users run (``taskqueue work`` as a
subprocess, defaults), ``taskqueue-api`` the in-process ``Worker`` API.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks import stores

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
VENVS = Path(os.environ.get("BENCH_VENVS") or BENCH / ".venvs")
RESULTS = BENCH / "results" / "results.json"
BACKENDS = ("sqlite", "postgres", "redis", "mysql", "files")


@dataclass(frozen=True)
class Lib:
    name: str
    venv: str | None  # None: the interpreter running this command (the project's .venv)
    backends: tuple[str, ...]
    #: backend -> why the library is not measured there
    unsupported: dict[str, str] = field(default_factory=dict)
    guarantee: str = ""


LIBS: tuple[Lib, ...] = (
    Lib("taskqueue", "taskqueue", ("sqlite", "postgres", "redis", "mysql", "files"),
        guarantee="at-least-once, leases with fencing, ack after run"),
    Lib("taskqueue-api", "taskqueue", ("sqlite", "postgres", "redis", "mysql", "files"),
        guarantee="at-least-once, leases with fencing, ack after run"),
    # the same two rows on older code (`--before-src`), for before/after figures from one run
    Lib("taskqueue-before", "taskqueue", ("sqlite", "postgres", "redis", "mysql", "files"),
        guarantee="at-least-once, leases with fencing, ack after run"),
    Lib("taskqueue-api-before", "taskqueue", ("sqlite", "postgres", "redis", "mysql", "files"),
        guarantee="at-least-once, leases with fencing, ack after run"),
    Lib("celery", "main", ("redis",), {
        "postgres": "only through kombu's SQLAlchemy transport, which kombu calls experimental",
        "sqlite": "only through kombu's SQLAlchemy transport (experimental)",
        "mysql": "only through kombu's SQLAlchemy transport (experimental)"},
        guarantee="at-most-once by default (ack before run; acks_late for at-least-once)"),
    Lib("rq", "main", ("redis",), {"postgres": "Redis only", "sqlite": "Redis only",
                                   "mysql": "Redis only", "files": "Redis only"},
        guarantee="at-least-once (started-job registry, abandoned jobs re-queued)"),
    Lib("dramatiq", "main", ("redis",), {"postgres": "Redis and RabbitMQ only",
                                         "sqlite": "Redis and RabbitMQ only",
                                         "mysql": "Redis and RabbitMQ only"},
        guarantee="at-least-once (ack after run)"),
    Lib("huey", "main", ("redis", "sqlite", "files"),
        {"postgres": "no PostgreSQL storage in huey itself",
         "mysql": "no MySQL storage in huey itself"},
        guarantee="at-most-once (job removed on dequeue)"),
    Lib("arq", "arq", ("redis",), {"postgres": "Redis only", "sqlite": "Redis only",
                                   "mysql": "Redis only", "files": "Redis only"},
        guarantee="at-least-once (in-progress key, re-run after timeout)"),
    Lib("saq", "saq", ("redis", "postgres"), {"sqlite": "Redis and PostgreSQL only",
                                              "mysql": "Redis and PostgreSQL only"},
        guarantee="at-least-once (sweeps stuck jobs)"),
    Lib("taskiq", "main", ("redis",), {
        "postgres": "only through third-party brokers (taskiq-pg, taskiq-psqlpy); not measured",
        "sqlite": "no SQLite broker", "mysql": "no MySQL broker"},
        guarantee="at-most-once with ListQueueBroker (RedisStreamBroker acks)"),
    Lib("procrastinate", "main", ("postgres",), {"redis": "PostgreSQL only",
                                                 "sqlite": "PostgreSQL only",
                                                 "mysql": "PostgreSQL only"},
        guarantee="at-least-once (job row locked while running)"),
    Lib("pgqueuer", "main", ("postgres",), {"redis": "PostgreSQL only",
                                            "sqlite": "PostgreSQL only",
                                            "mysql": "PostgreSQL only"},
        guarantee="at-least-once (heartbeat, re-picked after timeout)"),
    Lib("ceiling", "taskqueue", ("sqlite", "postgres", "redis"),
        guarantee="reserve with a lease, ack in batches (no retries, no bookkeeping)"),
)
LIB_BY_NAME = {lib.name: lib for lib in LIBS}
#: taskqueue's rows: the CLI (the headline) and the in-process Worker API
OURS = ("taskqueue", "taskqueue-api")
#: the same rows measured on the code of ``--before-src``
BEFORE = ("taskqueue-before", "taskqueue-api-before")
COMPETITORS = tuple(lib.name for lib in LIBS if lib.name not in (*OURS, *BEFORE, "ceiling"))

#: taskqueue-only extra measurements: mode -> backends
PAYLOAD_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCALE_PROCESSES = 4
#: the CLI without recycling (the issue's "--max-jobs 1000000" column)
NO_RECYCLE = "max-jobs:1000000"


@dataclass
class Settings:
    jobs: int = 10_000
    repeat: int = 3
    single: int = 1_000
    single_cap: float = 2.0
    e2e: int = 200
    e2e_cap: float = 5.0
    preload_cap: float = 6.0
    drain_cap: float = 8.0
    finish_cap: float = 15.0
    #: after the first repeat, size N so that a drain takes about this long
    drain_target: float = 4.0
    min_jobs: int = 200
    payload_sizes: tuple[int, ...] = PAYLOAD_SIZES
    payload_backends: tuple[str, ...] = ("sqlite", "postgres", "redis")
    payload_budget_mb: float = 20.0
    scale_backends: tuple[str, ...] = ("postgres", "redis")
    #: taskqueue's CLI without recycling, on these backends
    no_recycle_backends: tuple[str, ...] = BACKENDS
    #: the mixed-duration benchmark (taskqueue's CLI, two workers), on these backends
    mixed_backends: tuple[str, ...] = BACKENDS
    mixed_rate: float = 200.0
    mixed_seconds: float = 10.0
    mixed_backlog: int = 2_000
    timeout: float = 150.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(jobs=2_000, repeat=1, single=300, single_cap=1.0, e2e=100, e2e_cap=3.0,
                   preload_cap=2.0, drain_cap=3.0, finish_cap=4.0, drain_target=2.0,
                   min_jobs=100, payload_sizes=(1_000, 1_000_000), payload_backends=("sqlite",),
                   payload_budget_mb=5.0, scale_backends=(), no_recycle_backends=(),
                   mixed_seconds=5.0, mixed_backlog=1_000, timeout=60.0)


@dataclass
class Task:
    lib: str
    backend: str
    mode: str = "standard"

    @property
    def key(self) -> str:
        return f"{self.lib}|{self.backend}|{self.mode}"


def interpreter(lib: Lib) -> str | None:
    if lib.venv is None:
        return sys.executable
    py = VENVS / lib.venv / "bin" / "python"
    if lib.venv == LEAN and not py.exists():
        return sys.executable  # before `setup`: the project's dev venv (heavier than a user's)
    return str(py) if py.exists() else None


def plan(only: list[str] | None, backends: list[str], settings: Settings,
         skipped: dict[str, str], before: bool = False) -> list[Task]:
    """What to measure; the ``-before`` rows only with ``before`` (a ``--before-src``), right
    after the row they compare with, so that both see the same load."""
    names = [n for n in only or LIB_BY_NAME if n not in BEFORE]
    tasks: list[Task] = []
    for name in names:
        lib = LIB_BY_NAME[name]
        for backend in lib.backends:
            if backend not in backends:
                continue
            if interpreter(lib) is None:
                skipped[f"{name}|{backend}|standard"] = (
                    f"not installed: run `python -m benchmarks setup` (venv {lib.venv})")
                continue
            tasks.append(Task(name, backend))
            if name == "taskqueue":
                if backend in settings.no_recycle_backends:
                    tasks.append(Task(name, backend, NO_RECYCLE))
                if backend in settings.mixed_backends:
                    tasks.append(Task(name, backend, "mixed"))
            if name == "taskqueue-api":
                tasks += [Task(name, backend, f"payload:{size}")
                          for size in settings.payload_sizes
                          if backend in settings.payload_backends]
                if backend in settings.scale_backends:
                    tasks.append(Task(name, backend, f"scale:{SCALE_PROCESSES}"))
    if before:
        tasks = [x for t in tasks for x in (
            [t, Task(f"{t.lib}-before", t.backend, t.mode)]
            if t.lib in OURS and t.mode in ("standard", NO_RECYCLE) else [t])]
    return tasks


def jobs_for(task: Task, settings: Settings, hints: dict[str, list[dict[str, Any]]],
             stored: dict[str, Any]) -> int:
    """N for this run: the requested N, trimmed so that a slow library's drain (and preload,
    when it has no bulk API) fits the time target. Rates come from this run's previous
    repeat, else from the stored results, else N is at most 3,000 for the first repeat.
    taskqueue's rows always get the requested N: the CLI and the Worker API are compared on
    the same backlog (issue 17, goal 1)."""
    n = settings.jobs
    if task.lib in (*OURS, *BEFORE) and task.mode in ("standard", NO_RECYCLE):
        return n
    done = [s for s in hints.get(task.key, []) if "error" not in s]
    if done:
        last = done[-1]
    elif stored.get("entries", {}).get(task.key, {}).get("median"):
        last = stored["entries"][task.key]["median"]
    else:
        return min(n, 3_000)
    for rate_key, target in (("drain_rate", settings.drain_target),
                             (f"drain_rate_x{SCALE_PROCESSES}", settings.drain_target),
                             ("preload_single_rate", settings.preload_cap * 0.8)):
        if last.get(rate_key):
            n = min(n, int(last[rate_key] * target))
    return max(settings.min_jobs, n)


#: taskqueue's settings from the environment (config.py): none may leak into a measurement,
#: so that the CLI runs with the defaults a user gets
TASKQUEUE_ENV = ("TASKQUEUE_", "WORKER_", "MAX_WORKERS", "DB_", "ENCRYPTION_")


def run_task(task: Task, settings: Settings, jobs: int, log: Any,
             taskqueue_src: Path | None = None, before_src: Path | None = None
             ) -> dict[str, Any]:
    lib = LIB_BY_NAME[task.lib]
    py = interpreter(lib)
    assert py is not None
    if reason := stores.check(task.backend):
        return {"lib": task.lib, "backend": task.backend, "mode": task.mode, "error": reason}
    env = {k: v for k, v in os.environ.items() if not k.startswith(TASKQUEUE_ENV)}
    path = [str(ROOT)]
    if task.lib in BEFORE:
        assert before_src is not None
        path.insert(0, str(before_src))
    elif lib.venv == LEAN:  # taskqueue and the ceiling: this tree's code, not the venv's copy
        path.insert(0, str(taskqueue_src or ROOT / "src"))
    env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Every library runs from compiled bytecode, as installed code does (competitors' .pyc are
    # written at install; ours, an editable install, by `compile_sources` before the run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if task.mode.startswith("payload:"):
        from taskqueue.codec.crypto import generate_key

        env["ENCRYPTION_KEY"] = generate_key()
    else:
        env.pop("ENCRYPTION_KEY", None)
    started = time.time()
    preload_cap, drain_cap = settings.preload_cap, settings.drain_cap
    if task.lib in (*OURS, *BEFORE):
        # taskqueue's rows drain the full N (100,000 for the goal): caps that fit it at
        # 500 jobs/s and a loaded machine, whatever the competitors' trimmed N is sized for
        preload_cap = max(preload_cap, 15.0, jobs / 500)
        drain_cap = max(drain_cap, 15.0, jobs / 500)
    timeout = max(settings.timeout, preload_cap + drain_cap + settings.finish_cap + 90)
    if task.mode == "mixed":
        timeout += settings.mixed_seconds + 60
    commit_ms: float | None = None
    with stores.fresh_store(task.backend) as store:
        argv = [py, "-m", "benchmarks.harness", "--lib", task.lib, "--backend", task.backend,
                "--store", json.dumps(store), "--mode", task.mode, "--jobs", str(jobs),
                "--single", str(settings.single), "--single-cap", str(settings.single_cap),
                "--e2e", str(settings.e2e), "--e2e-cap", str(settings.e2e_cap),
                "--preload-cap", str(preload_cap), "--drain-cap", str(drain_cap),
                "--finish-cap", str(settings.finish_cap),
                "--payload-budget-mb", str(settings.payload_budget_mb),
                "--mixed-rate", str(settings.mixed_rate),
                "--mixed-seconds", str(settings.mixed_seconds),
                "--mixed-backlog", str(settings.mixed_backlog)]
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_tree(proc)
            out = proc.stdout.read() if proc.stdout else b""
            result: dict[str, Any] = {"error": f"timed out after {timeout:.0f}s"}
        except KeyboardInterrupt:  # the run is being stopped: no harness or worker left over
            stop_tree(proc)
            raise
        else:
            result = {}
        if task.backend == "postgres":
            try:
                commit_ms = stores.pg_commit_ms(store["pg_dsn"])
            except Exception:  # noqa: BLE001 - context for the report, never a failure
                commit_ms = None
    text = out.decode(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.startswith("BENCH-RESULT ")]
    if lines:
        result = {**json.loads(lines[-1][len("BENCH-RESULT "):]), **result}
    elif not result:
        result = {"error": f"harness exited {proc.returncode} without a result: "
                           f"{text[-1500:]}"}
    result.update(lib=task.lib, backend=task.backend, mode=task.mode,
                  wall_s=round(time.time() - started, 2), requested_jobs=jobs)
    if commit_ms is not None:
        result["pg_commit_ms"] = round(commit_ms, 3)
    if result.get("drain_complete") and "error" not in result:
        result.pop("worker_log_tail", None)  # kept only when something went wrong
    log.write(json.dumps(result) + "\n")
    log.flush()
    return result


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop a harness we started: SIGTERM (it stops its worker), then SIGKILL by pid."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for child in family:
        try:
            if child.is_running():
                os.kill(child.pid, signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


METRICS = ("drain_rate", "single_rate", "bulk_rate", "single_p50_ms", "single_p99_ms",
           "bulk_p99_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms", "rss_mb", "pss_mb",
           "worker_rss_mb", "peak_rss_mb", "start_s", "stored_bytes", "drain_mb_s",
           f"drain_rate_x{SCALE_PROCESSES}", "processes", "jobs", "preload_single_rate",
           "recycles", "recycle_gap_ms", "recycle_gap_max_ms", "recycle_lost_ms",
           "worker_processes_used", "mixed_wait_p50_ms", "mixed_wait_p99_ms",
           "mixed_wait_max_ms", "mixed_drain_rate", "mixed_drain_ideal", "mixed_sent",
           "mixed_held", "mixed_short_jobs", "mixed_lateness_p99_ms", "mixed_rate",
           "pg_commit_ms")


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [s for s in samples if "error" not in s]
    median: dict[str, Any] = {}
    for m in METRICS:
        values = [s[m] for s in ok if s.get(m) is not None]
        if values:
            median[m] = statistics.median(values)
            median[f"{m}_n"] = len(values)
    entry: dict[str, Any] = {"median": median, "samples": samples,
                             "errors": sorted({s["error"].splitlines()[0][:300]
                                               for s in samples if "error" in s}),
                             "notes": sorted({n for s in ok for n in s.get("notes", [])})}
    for s in ok:
        entry.setdefault("version", s.get("version"))
        entry.setdefault("config", s.get("config"))
        if s.get("tree"):
            entry["tree"] = s["tree"]  # the last repeat's process tree, for the report
    return entry


def load_results(path: Path) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {"entries": {}, "runs": {}}


def compile_sources(src: Path | None = None, before: Path | None = None) -> None:
    """Write the .pyc files of taskqueue and the benchmark package, so that no worker start
    pays for compiling them (installed libraries have theirs from the installation)."""
    import compileall

    for folder in (src or ROOT / "src", ROOT / "benchmarks", before):
        if folder is not None:
            compileall.compile_dir(str(folder), quiet=1)


def source_dir(option: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).resolve()
    if not (path / "taskqueue" / "__init__.py").is_file():
        raise SystemExit(f"{option}: {path} holds no taskqueue package (give a src/ directory)")
    return path


def run(args: Any) -> int:
    taskqueue_src = source_dir("--taskqueue-src", args.taskqueue_src)
    before_src = source_dir("--before-src", args.before_src)
    compile_sources(taskqueue_src, before_src)
    settings = Settings.quick() if args.quick else Settings()
    if args.jobs:
        settings.jobs = args.jobs
    if args.repeat:
        settings.repeat = args.repeat
    only = [x.strip() for x in args.only.split(",")] if args.only else None
    for name in only or []:
        if name not in LIB_BY_NAME or name in BEFORE:
            known = ", ".join(n for n in LIB_BY_NAME if n not in BEFORE)
            raise SystemExit(f"--only: unknown library {name!r} (known: {known}; the -before "
                             "rows come with --before-src)")
    backends = [x.strip() for x in args.backend.split(",")] if args.backend else list(BACKENDS)
    for b in backends:
        if b not in BACKENDS:
            raise SystemExit(f"--backend: unknown backend {b!r} (known: {', '.join(BACKENDS)})")
    if args.no_extras:
        settings.payload_sizes, settings.scale_backends = (), ()
        settings.no_recycle_backends = ()
    if args.no_mixed:
        settings.mixed_backends = ()
    modes = {x.strip() for x in args.mode.split(",")} if args.mode else set()
    # a mode asked for by name is measured even where --quick would leave it out
    if NO_RECYCLE in modes:
        settings.no_recycle_backends = BACKENDS
    if "mixed" in modes:
        settings.mixed_backends = BACKENDS
    skipped: dict[str, str] = {}
    tasks = plan(only, backends, settings, skipped, before=before_src is not None)
    if modes:
        tasks = [t for t in tasks if t.mode in modes]
        skipped = {k: v for k, v in skipped.items() if k.split("|")[2] in modes}
        if not tasks:
            raise SystemExit(f"--mode: nothing to measure for {args.mode!r} with these "
                             "libraries and backends")
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_path = Path(args.results)
    raw_path = results_path.parent / f"raw-{run_id}.jsonl"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"benchmark run {run_id}: {len(tasks)} measurements x {settings.repeat} repeats "
          f"(N={settings.jobs}); raw samples in {rel(raw_path)}", flush=True)
    samples: dict[str, list[dict[str, Any]]] = {t.key: [] for t in tasks}
    previous = load_results(results_path)
    source_before = source_fingerprint(taskqueue_src)
    t0 = time.time()
    loads: list[float] = []
    def merge(repeats_done: int, complete: bool) -> dict[str, Any]:
        """Merge the medians of what has been measured so far into the results file (after
        every repeat, so that a run stopped later keeps its finished repeats)."""
        data = load_results(results_path)
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        for task in tasks:
            if not samples[task.key]:
                continue
            entry = summarize(samples[task.key])
            entry.update(lib=task.lib, backend=task.backend, mode=task.mode, run_id=run_id,
                         measured_at=measured_at)
            data["entries"][task.key] = entry
        for key, reason in skipped.items():
            lib, backend, mode = key.split("|")
            data["entries"][key] = {"lib": lib, "backend": backend, "mode": mode, "median": {},
                                    "samples": [], "errors": [reason], "notes": [],
                                    "run_id": run_id, "measured_at": measured_at}
        data["runs"][run_id] = {
            "started": datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - t0),
            "settings": {k: v for k, v in vars(settings).items()},
            "repeats_done": repeats_done, "complete": complete,
            "only": only, "backends": backends,
            "load_avg_median": statistics.median(loads) if loads else None,
            "load_avg_max": max(loads) if loads else None,
            "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "taskqueue_source": source_before,
            "taskqueue_before_source": before_src and source_fingerprint(before_src),
            # the measured code: a commit of docs during the run changes HEAD, not src/
            "taskqueue_source_changed_during_run":
                source_fingerprint(taskqueue_src)["src_sha1"] != source_before["src_sha1"],
        }
        results_path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return data

    from benchmarks import report

    done = 0
    try:
        with raw_path.open("w") as log:
            for r in range(settings.repeat):
                offset = (r * max(1, len(tasks) // max(1, settings.repeat))) % max(1, len(tasks))
                if tasks[offset].lib in BEFORE:  # each -before row right after its counterpart
                    offset = (offset + 1) % len(tasks)
                order = tasks[offset:] + tasks[:offset]
                t_repeat = time.time()
                for i, task in enumerate(order, 1):
                    jobs = jobs_for(task, settings, samples, previous)
                    loads.append(os.getloadavg()[0])
                    result = run_task(task, settings, jobs, log, taskqueue_src, before_src)
                    samples[task.key].append(result)
                    print(f"[{r + 1}/{settings.repeat} {i:>2}/{len(order)} "
                          f"{time.time() - t0:6.0f}s] {task.key:<34} {brief(result)}",
                          flush=True)
                done = r + 1
                if done < settings.repeat:
                    merge(done, complete=False)
                    took = time.time() - t_repeat
                    print(f"repeat {done} took {took / 60:.1f} min, merged into "
                          f"{rel(results_path)}; about {took * (settings.repeat - done) / 60:.0f} "
                          "min to go", flush=True)
    except KeyboardInterrupt:
        data = merge(done, complete=False)
        print(f"\ninterrupted: {done} complete repeat(s) and the measurements of the one under "
              f"way merged into {rel(results_path)}", flush=True)
        report.publish(data, Path(args.out), plots=not args.no_plots)
        return 130
    data = merge(done, complete=True)
    print(f"results merged into {rel(results_path)} ({time.time() - t0:.0f}s)", flush=True)
    report.publish(data, Path(args.out), plots=not args.no_plots)
    return 0


def source_fingerprint(src: Path | None = None) -> dict[str, Any]:
    """Which taskqueue code was measured: HEAD, whether src/ had local changes, and a hash of
    src/taskqueue/**/*.py (read-only git commands)."""
    import hashlib

    src = src or ROOT / "src"
    digest = hashlib.sha1()
    for path in sorted((src / "taskqueue").rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode())
        digest.update(path.read_bytes())
    info: dict[str, Any] = {"src_sha1": digest.hexdigest()[:12]}
    if src != ROOT / "src":
        info["src"] = str(src)
    try:
        info["head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src,
                                      capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout
        info["src_modified_files"] = len(dirty.splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return "ERROR " + str(r["error"]).splitlines()[0][:150]
    parts = []
    for key, fmt in (("drain_rate", "drain {:,.0f}/s"), (f"drain_rate_x{SCALE_PROCESSES}",
                     "x4 drain {:,.0f}/s"), ("drain_mb_s", "{:.1f} MB/s"),
                     ("single_rate", "enq {:,.0f}/s"), ("bulk_rate", "bulk {:,.0f}/s"),
                     ("single_p99_ms", "p99 {:.2f}ms"), ("e2e_p50_ms", "e2e {:.1f}ms"),
                     ("processes", "{:.0f} procs"), ("rss_mb", "{:.0f}MB"),
                     ("pss_mb", "PSS {:.0f}MB"), ("start_s", "start {:.2f}s"),
                     ("recycle_lost_ms", "recycle {:.1f}ms"),
                     ("mixed_wait_p50_ms", "short wait p50 {:.1f}ms"),
                     ("mixed_wait_p99_ms", "p99 {:.1f}ms"),
                     ("mixed_drain_rate", "mixed drain {:,.0f}/s"),
                     ("mixed_held", "{:.0f} held behind a long job")):
        if r.get(key) is not None:
            parts.append(fmt.format(r[key]))
    parts.append(f"N={r.get('jobs', '?')} {r.get('wall_s', '?')}s")
    if r.get("notes"):
        parts.append("(" + "; ".join(r["notes"])[:120] + ")")
    return " ".join(parts)


#: The venv taskqueue (and the ceiling, which uses the same store clients) run in: what a user
#: gets from `pip install taskqueue[postgres,mysql,redis]`, without the dev tools (the dev venv
#: also holds OpenTelemetry's SDK, which redis-py imports whenever it is installed).
LEAN = "taskqueue"


def setup(args: Any) -> int:
    """Create benchmarks/.venvs/{main,arq,saq} from the requirements files, and the lean
    benchmarks/.venvs/taskqueue from the project itself."""
    base = getattr(sys, "_base_executable", sys.executable)
    lean = VENVS / LEAN
    if not (lean / "bin" / "python").exists():
        subprocess.run([base, "-m", "venv", str(lean)], check=True)
    print(f"installing taskqueue[postgres,mysql,redis] into {lean}", flush=True)
    subprocess.run([str(lean / "bin" / "pip"), "install", "-q", "-e",
                    f"{ROOT}[postgres,mysql,redis]", "psutil>=5.9"], check=True)
    files = {"main": "requirements.txt", "arq": "requirements-arq.txt",
             "saq": "requirements-saq.txt"}
    for name, req in files.items():
        venv = VENVS / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
        print(f"installing {req} into {venv}", flush=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(BENCH / req)],
                       check=True)
    return 0
