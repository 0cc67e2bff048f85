"""A small Jepsen-style harness: ledgers kept outside the store, fault injectors, a checker.

* The **producer ledger** has one line per job the test tried to push: ``ok`` (the push returned),
  ``failed`` (refused before anything was sent) or ``unknown`` (the push raised mid-flight: the
  job may or may not exist). Job ids are chosen before the push, so an unknown push can still be
  looked up afterwards.
* The **effect ledger** is written by the tasks of ``tests.apps.chaos_tasks`` (start, end) and by
  the worker's events (accepted completion, rejected settle): see that module.
* The **checker** reads both ledgers and the store and counts lost, stuck, unexpected and
  double-accepted jobs (all must be 0) and duplicate executions, split into those explained by a
  fault (the worker running it was killed or frozen, or the run overlapped an outage) and the
  rest (must be 0).

Everything runs on loopback against stores the tests create; processes are stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from taskqueue import QueueManager, State
from taskqueue.drivers import JobFilter
from taskqueue.jobs.model import JobRecord, NewJob
from tests.apps import chaos_tasks

ROOT = Path(__file__).resolve().parents[2]
APP = ("--app", "tests.apps.chaos_tasks")
QUEUE = "chaos"
#: Set to a file path to collect every test's figures as JSON lines (docs/reliability.md).
REPORT_ENV = "TQ_CHAOS_REPORT"


# -- processes ------------------------------------------------------------------------------------

def cli(*args: str, env: dict[str, str] | None = None,
        stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "taskqueue", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, text=True,
                            stdout=stdout, stderr=stderr)


def start_workers(url: str, acks: str, *args: str, lease: float = 3.0,
                  log: Path | None = None, env: dict[str, str] | None = None
                  ) -> subprocess.Popen[str]:
    """``taskqueue work`` on the chaos queue, its stderr to ``log`` (never a full pipe)."""
    sink = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return cli("--url", url, "--log-level", "warning", "work", "--queue", QUEUE, *APP,
                   *args, env={"TASKQUEUE_LEASE_SECONDS": str(lease),
                               chaos_tasks.ACKS_ENV: acks, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=sink)
    finally:
        if log is not None:
            sink.close()


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    """SIGTERM the supervisor (its own pid), escalating to SIGKILL of it and its workers."""
    if proc.poll() is None:
        children = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def _children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def worker_pids(supervisor_pid: int) -> list[int]:
    """The supervisor's live worker processes: the children of its fork server(s)."""
    try:
        servers = psutil.Process(supervisor_pid).children()
    except psutil.NoSuchProcess:
        return []
    pids = []
    for server in servers:
        try:
            children = server.children()
        except psutil.Error:  # exited meanwhile
            continue
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    pids.append(child.pid)
            except psutil.Error:
                continue
    return pids


def wait_for(predicate: Callable[[], object], timeout: float = 30,
             interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the producer and its ledger ------------------------------------------------------------------

@dataclass
class ProducerLedger:
    ok: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    pushed_at: dict[str, float] = field(default_factory=dict)

    @property
    def known(self) -> set[str]:
        return set(self.ok) | set(self.unknown)

    def save(self, path: Path) -> None:
        with open(path, "w") as fh:
            for status in ("ok", "unknown", "failed"):
                for job_id in getattr(self, status):
                    fh.write(f"{status} {job_id}\n")

    @classmethod
    def load(cls, path: Path) -> ProducerLedger:
        ledger = cls()
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in ("ok", "unknown", "failed"):
                    getattr(ledger, parts[0]).append(parts[1])
        return ledger


def prepare(manager: QueueManager, ledger: str, count: int, sleep: float = 0.0,
            **options: Any) -> list[NewJob]:
    from tests.apps.chaos_tasks import work

    return [manager.prepare(work.call([ledger], {"sleep": sleep} if sleep else {}),
                            queue=QUEUE, **options) for _ in range(count)]


def push_recorded(manager: QueueManager, jobs: Sequence[NewJob], book: ProducerLedger) -> bool:
    """Push one batch (one round trip) and record every id as ok or unknown."""
    now = time.time()
    for job in jobs:
        book.pushed_at[job.id] = now
    try:
        returned = manager.push_prepared(list(jobs))
    except Exception as exc:  # noqa: BLE001 - any error mid-push leaves the outcome unknown
        book.unknown.extend(j.id for j in jobs)
        book.errors[type(exc).__name__] += 1
        return False
    assert [str(r) for r in returned] == [j.id for j in jobs]
    book.ok.extend(j.id for j in jobs)
    return True


class Producer(threading.Thread):
    """Pushes ``total`` jobs in batches while faults happen, recording every outcome: a batch
    that could not even be sent (no connection to the store) is ``failed``, one whose push
    raised is ``unknown``."""

    def __init__(self, url: str, ledger: str, total: int, batch: int = 50,
                 pause: float = 0.05, sleep: float = 0.0) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.url, self.ledger, self.total, self.batch = url, ledger, total, batch
        self.pause, self.sleep = pause, sleep
        self.book = ProducerLedger()
        self.error: BaseException | None = None

    def run(self) -> None:
        manager: QueueManager | None = None
        offline = QueueManager(_NoStore())  # prepares (ids, payloads) without a store
        try:
            made = 0
            while made < self.total:
                count = min(self.batch, self.total - made)
                if manager is None:
                    try:
                        manager = QueueManager.from_url(self.url)
                    except Exception as exc:  # noqa: BLE001 - store down: nothing is sent
                        self.book.errors[type(exc).__name__] += 1
                        self.book.failed.extend(
                            j.id for j in prepare(offline, self.ledger, count, self.sleep))
                        made += count
                        time.sleep(0.2)
                        continue
                made += count
                jobs = prepare(manager, self.ledger, count, self.sleep)
                if not push_recorded(manager, jobs, self.book):
                    time.sleep(0.2)
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            if manager is not None:
                with contextlib.suppress(Exception):
                    manager.close()


class _NoStore:
    """A stand-in driver for preparing jobs while the store is unreachable."""

    name = "none"

    def get(self, job_id: str) -> None:
        return None

    def close(self) -> None:
        pass


# -- the effect ledger ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Effect:
    kind: str
    job: str
    attempt: int
    epoch: str
    pid: int
    worker: str
    at: float


def read_effects(path: str | Path) -> list[Effect]:
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        parts = line.split()
        if len(parts) != 7:
            continue  # a line cut by SIGKILL mid-write cannot happen with O_APPEND, but be safe
        kind, job, attempt, epoch, pid, worker, at = parts
        out.append(Effect(kind, job, int(attempt), epoch, int(pid), worker, float(at)))
    return out


def started(path: str | Path) -> int:
    return sum(1 for e in read_effects(path) if e.kind == "S")


# -- the store ------------------------------------------------------------------------------------

def records(manager: QueueManager, ids: Iterable[str], chunk: int = 500) -> dict[str, JobRecord]:
    ids = list(dict.fromkeys(ids))
    found: dict[str, JobRecord] = {}
    for start in range(0, len(ids), chunk):
        part = tuple(ids[start:start + chunk])
        for record in manager.search(JobFilter(ids=part, limit=len(part))):
            found[record.id] = record
    return found


def all_records(manager: QueueManager) -> dict[str, JobRecord]:
    found: dict[str, JobRecord] = {}
    after: str | None = None
    while True:
        page = manager.search(JobFilter(queues=(QUEUE,), limit=1000, after_id=after,
                                        newest_first=False))
        for record in page:
            found[record.id] = record
        if len(page) < 1000:
            return found
        after = page[-1].id


def finished_count(url: str, ids: Sequence[str]) -> int:
    """How many of ``ids`` are completed or failed (-1 while the store is unreachable)."""
    try:
        manager = QueueManager.from_url(url)
    except Exception:  # noqa: BLE001
        return -1
    try:
        return sum(1 for r in records(manager, ids).values()
                   if r.state in (State.COMPLETED, State.FAILED))
    except Exception:  # noqa: BLE001
        return -1
    finally:
        with contextlib.suppress(Exception):
            manager.close()


# -- the checker ----------------------------------------------------------------------------------

@dataclass
class Fault:
    """One injected fault: a process (kill -9, SIGSTOP) or a window of store trouble."""

    kind: str
    at: float
    until: float | None = None
    pid: int | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class OrphanWatch(threading.Thread):
    """Measures orphan recovery in the store: after a worker process is killed or frozen,
    the jobs whose lease it held (running AND prefetched) are noted; the time until each one is
    no longer held by it (recovered by another worker's sweep) is one sample."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        super().__init__(name="chaos-orphans", daemon=True)
        self.url, self.interval = url, interval
        self.samples: list[float] = []
        self.orphans = 0
        self._pending: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.manager = QueueManager.from_url(url)

    def held_by(self, pid: int) -> dict[str, str]:
        mark = f":{pid}:"
        held = self.manager.search(JobFilter(queues=(QUEUE,), states=(State.PROCESSING,),
                                             limit=1000))
        return {r.id: r.lease_owner or "" for r in held if mark in (r.lease_owner or "")}

    def fault(self, pid: int, at: float) -> None:
        """Call right after the process stopped: snapshot what it holds."""
        with self._lock:
            for job_id, owner in self.held_by(pid).items():
                self._pending[job_id] = (at, owner)
                self.orphans += 1

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            with self._lock:
                pending = dict(self._pending)
            if not pending:
                continue
            try:
                found = records(self.manager, pending)
            except Exception:  # noqa: BLE001 - the store may be down in some tests
                continue
            now = time.time()
            with self._lock:
                for job_id, (at, owner) in pending.items():
                    record = found.get(job_id)
                    if record is None or record.state != State.PROCESSING \
                            or record.lease_owner != owner:
                        self.samples.append(now - at)
                        self._pending.pop(job_id, None)

    def close(self) -> list[float]:
        self._halt.set()
        if self.is_alive():
            self.join(10)
        self.manager.close()
        return self.samples


@dataclass
class Report:
    name: str
    backend: str
    jobs: int = 0
    unknown_pushes: int = 0
    faults: int = 0
    completed: int = 0
    failed_with_reason: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    double_accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    unexplained_duplicates: list[str] = field(default_factory=list)
    rejected_settles: int = 0
    recovery: list[float] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def fmt(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {
            "test": self.name, "backend": self.backend, "jobs": self.jobs,
            "unknown_pushes": self.unknown_pushes, "faults": self.faults,
            "completed": self.completed, "failed_with_reason": self.failed_with_reason,
            "lost": len(self.lost), "stuck": len(self.stuck),
            "unexpected": len(self.unexpected), "double_accepted": len(self.double_accepted),
            "duplicates": self.duplicates,
            "unexplained_duplicates": len(self.unexplained_duplicates),
            "rejected_settles": self.rejected_settles,
            "recovery_p50": fmt(percentile(self.recovery, 50)),
            "recovery_p99": fmt(percentile(self.recovery, 99)),
            "recovery_max": fmt(max(self.recovery) if self.recovery else None),
            "seconds": round(self.seconds, 1), **self.extra,
        }

    def publish(self) -> dict[str, Any]:
        data = self.summary()
        print("CHAOS " + json.dumps(data))
        if path := os.environ.get(REPORT_ENV):
            with open(path, "a") as fh:
                fh.write(json.dumps(data) + "\n")
        return data

    def assert_safe(self) -> None:
        """The invariants: nothing lost, stuck, unexpected or accepted twice; every duplicate
        execution explained by a fault."""
        problems = {k: v[:5] for k, v in (
            ("lost", self.lost), ("stuck", self.stuck), ("unexpected", self.unexpected),
            ("double_accepted", self.double_accepted),
            ("unexplained_duplicates", self.unexplained_duplicates)) if v}
        assert not problems, f"{self.name}[{self.backend}]: {problems} -- {self.summary()}"


def check(name: str, backend: str, manager: QueueManager, book: ProducerLedger,
          effects_path: str | Path, faults: Sequence[Fault] = (), slack: float = 0.0,
          started_at: float = 0.0) -> Report:
    """Count everything (see the module docstring). ``slack`` widens outage windows: a run that
    started before an outage and ended within ``slack`` seconds after it may legitimately run
    again (its acknowledgement was cut off)."""
    report = Report(name, backend, jobs=len(book.ok), unknown_pushes=len(book.unknown),
                    faults=len(faults), seconds=time.time() - started_at if started_at else 0.0)
    effects = read_effects(effects_path)
    stored = all_records(manager)
    known = book.known
    finished_ok = (State.COMPLETED,)

    for job_id in book.ok:
        record = stored.get(job_id)
        if record is None:
            report.lost.append(job_id)
        elif record.state in finished_ok:
            report.completed += 1
        elif record.state == State.FAILED:
            if record.exception:
                report.failed_with_reason += 1
            else:
                report.lost.append(job_id)
        elif record.state == State.CANCELLED:
            report.lost.append(job_id)
        else:
            report.stuck.append(job_id)
    for job_id in book.unknown:  # may be absent; if it exists it must finish
        record = stored.get(job_id)
        if record is not None:
            if record.state == State.COMPLETED:
                report.completed += 1
            elif record.state not in (State.FAILED,):
                report.stuck.append(job_id)
    for job_id in book.failed:
        if job_id in stored:
            report.unexpected.append(job_id)

    report.unexpected += [j for j in stored if j not in known]
    runs: dict[str, list[Effect]] = defaultdict(list)
    acks: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        if effect.job not in known:
            report.unexpected.append(effect.job)
        if effect.kind == "S":
            runs[effect.job].append(effect)
        elif effect.kind == "A":
            acks[effect.job].append(effect)
        elif effect.kind == "R":
            report.rejected_settles += 1
    for job_id, record in stored.items():
        if record.state == State.COMPLETED and not runs.get(job_id):
            report.unexpected.append(job_id)  # completed without ever running
        accepted = acks.get(job_id, [])
        if len(accepted) > 1:
            report.double_accepted.append(job_id)
        if accepted and record.state != State.COMPLETED:
            report.unexpected.append(job_id)  # an accepted completion that did not stick
        if accepted and record.state == State.COMPLETED and record.result:
            result = json.loads(record.result)
            mine = f"{accepted[0].pid}:{accepted[0].attempt}"
            if result != mine:
                report.double_accepted.append(job_id)  # someone else's completion won later

    hit = {f.pid for f in faults if f.pid is not None}
    windows = [(f.at, (f.until or f.at) + slack) for f in faults if f.pid is None]
    for job_id, starts in runs.items():
        if len(starts) < 2:
            continue
        report.duplicates += 1
        healthy = [run for run in starts if not _faulted(run, job_id, effects, hit, windows)]
        if len(healthy) > 1:  # two runs and no fault to explain either of them
            report.unexplained_duplicates.append(job_id)
    return report


def _faulted(run: Effect, job_id: str, effects: Sequence[Effect], hit: set[int],
             windows: Sequence[tuple[float, float]]) -> bool:
    """Was this run hit by a fault: its process was killed/frozen, or it overlapped an outage
    (a run lasts until its settle call was answered -- completions may be buffered and
    acknowledged in batches -- else until its end, else forever)?"""
    if run.pid in hit:
        return True
    mine = [e for e in effects if e.job == job_id and e.pid == run.pid
            and e.attempt == run.attempt]
    settled = [e.at for e in mine if e.kind in ("A", "R")]
    ended = [e.at for e in mine if e.kind == "E"]
    end = (settled or ended or [float("inf")])[0]
    return any(run.at <= w_end and end >= w_start for w_start, w_end in windows)


def orphan_recovery(effects_path: str | Path, faults: Sequence[Fault]) -> list[float]:
    """For each killed/frozen process, the jobs it held unsettled (started, no accepted or
    refused settle call before the fault): seconds from the fault until the job started again
    in another process."""
    effects = read_effects(effects_path)
    by_job: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        by_job[effect.job].append(effect)
    times = []
    for fault in faults:
        if fault.pid is None:
            continue
        for events in by_job.values():
            mine = [e for e in events if e.kind == "S" and e.pid == fault.pid
                    and e.at <= fault.at]
            if not mine:
                continue
            run = mine[-1]
            if any(e.kind in ("A", "R") and e.pid == fault.pid and e.attempt == run.attempt
                   and e.at <= fault.at for e in events):
                continue  # settled (or refused) before the fault: not orphaned
            later = [e.at for e in events if e.kind == "S" and e.at > fault.at
                     and e.pid != fault.pid]
            if later:
                times.append(min(later) - fault.at)
    return times


def resume_times(effects_path: str | Path, faults: Sequence[Fault]) -> list[float]:
    """For each outage window: seconds from its end until the next job started."""
    starts = sorted(e.at for e in read_effects(effects_path) if e.kind == "S")
    out = []
    for fault in faults:
        end = fault.until or fault.at
        later = [t for t in starts if t >= end]
        if later:
            out.append(later[0] - end)
    return out


# -- a TCP proxy the test controls ----------------------------------------------------------------

class Proxy:
    """A loopback TCP proxy in a background thread, between workers and a server.

    ``blackhole()``: nothing is relayed any more, in either direction, and new connections
    hang (like a network partition: the bytes wait, TCP would retransmit); ``heal()``: traffic
    flows again, including what was held back; ``reset()``: every open connection is cut.
    ``hold_replies()``: requests still reach the server but replies are held (an indeterminate
    request, when followed by ``reset()``).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._up: asyncio.Event
        self._down: asyncio.Event
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True,
                                       name="chaos-proxy")
        self.thread.start()
        assert ready.wait(10), "proxy did not start"

    # controls (thread-safe)
    def blackhole(self) -> None:
        self._call(lambda: (self._up.clear(), self._down.clear()))

    def hold_replies(self) -> None:
        self._call(lambda: (self._up.set(), self._down.clear()))

    def heal(self) -> None:
        self._call(lambda: (self._up.set(), self._down.set()))

    def reset(self) -> None:
        def cut() -> None:
            for writer in list(self._writers):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
            self._writers.clear()
        self._call(cut)

    def close(self) -> None:
        self.heal()
        self.reset()

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _call(self, fn: Callable[[], object]) -> None:
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(5)

    # the relay
    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._up, self._down = asyncio.Event(), asyncio.Event()
            self._up.set()
            self._down.set()
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._up.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer, self._up),
                             self._pump(up_reader, writer, self._down),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gate: asyncio.Event) -> None:
        try:
            while True:
                await gate.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await gate.wait()
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()


# -- a private MariaDB ----------------------------------------------------------------------------

class OwnMariaDB:
    """A private ``mariadbd`` in a temp dir on a spare port (as root with --user=root)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/chaos"

    def init(self) -> None:
        import shutil

        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        assert installer, "mariadb-install-db not found"
        subprocess.run([installer, "--no-defaults", f"--datadir={self.data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=180)

    def start(self) -> None:
        import shutil

        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.data}", "--user=root",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.base}/sock",
             f"--pid-file={self.base}/pid", "--skip-log-bin", "--skip-name-resolve",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
             "--performance-schema=OFF"],
            stdout=subprocess.DEVNULL, stderr=open(self.base / "err.log", "ab"))  # noqa: SIM115
        import pymysql

        deadline = time.monotonic() + 90
        while True:
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                       password="", connect_timeout=1, autocommit=True)
                with conn.cursor() as cur:
                    cur.execute("CREATE DATABASE IF NOT EXISTS chaos")
                conn.close()
                return
            except pymysql.Error:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


@contextlib.contextmanager
def own_mariadb(tmp: Path) -> Iterator[OwnMariaDB]:
    import shutil

    server = OwnMariaDB(tmp / "mariadb")
    server.base.mkdir(parents=True, exist_ok=True)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.base, ignore_errors=True)
