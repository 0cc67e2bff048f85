"""Measure one library on one store, in the library's own interpreter; print one JSON object.

Run by the orchestrator as ``python -m benchmarks.harness --lib NAME --backend B --store JSON``
with the interpreter of the venv that holds the library. Phases, in this order:

1. preload N jobs with the library's bulk API (measured: bulk enqueue rate and per-batch p99),
   or with single enqueues when it has none;
2. start the worker the way the library's users do (its CLI; for taskqueue ``taskqueue work``
   with its defaults, or the in-process ``Worker`` API for the second row) (measured: spawn ->
   first job starts);
3. let it drain the N jobs (measured: jobs/s from the first job's start to the N-th's, peak RSS
   of the process tree, and, when the worker recycles, the gap between the last job of one
   process and the first of its replacement);
4. wait until idle, then read the process tree: how many processes, RSS and PSS;
5. enqueue-to-start latency on the idle worker: one job every 5 ms (open loop), p50/p99;
6. stop the worker (SIGTERM by pid, SIGKILL after a grace period);
7. single enqueue rate and per-call latency (no worker running, so nothing competes for CPU).

``--mode mixed`` (taskqueue's CLI only) is the mixed-duration benchmark instead: two workers,
a stream of 1 ms jobs with one 2 s job in every 500 (wait of the short jobs, p50/p99), then a
backlog of the same mix (drain rate).

Only the standard library and psutil are needed here; the adapter imports the library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import psutil

from benchmarks.adapters import Adapter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Msg(NamedTuple):
    kind: str
    pid: int
    total: int  # drain jobs started so far in the whole run (the shared count file)
    local: int  # drain jobs started so far by this process
    now: float
    stamp: float


class Probe:
    """The harness end of ``benchmarks.probe``: a UDP socket on loopback, and the count file
    that the worker processes of one run share."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self.count_file = tempfile.mkstemp(prefix="bench-count-", dir=shm)
        os.close(fd)
        self.last_pid = 0

    def recv(self, deadline: float) -> Msg | None:
        left = deadline - time.time()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(256)
        except TimeoutError:
            return None
        kind, pid, total, local, now, stamp = data.decode().split()
        self.last_pid = int(pid)
        return Msg(kind, int(pid), int(total), int(local), float(now), float(stamp))

    def total(self) -> int:
        """Drain jobs started so far (the size of the count file)."""
        return os.stat(self.count_file).st_size

    def reset(self) -> None:
        os.truncate(self.count_file, 0)

    def drain_pending(self) -> None:
        while self.recv(time.time() + 0.001) is not None:
            pass

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.count_file)


MB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / MB


def tree_memory(pid: int, worker_pid: int) -> dict[str, Any]:
    """The process tree under ``pid`` (the process the harness started): how many processes,
    RSS and PSS of each and in total, and the RSS of the worker that ran the last job (else
    the largest process)."""
    rows: list[dict[str, Any]] = []
    for p in tree(pid):
        try:
            full = p.memory_full_info()
            cmd = " ".join(os.path.basename(a) if a.startswith("/") else a
                           for a in p.cmdline())[:120]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rows.append({"pid": p.pid, "cmd": cmd, "rss_mb": round(full.rss / MB, 1),
                     "pss_mb": round(getattr(full, "pss", full.rss) / MB, 1)})
    if not rows:
        return {}
    worker = next((row for row in rows if row["pid"] == worker_pid),
                  max(rows, key=lambda row: row["rss_mb"]))
    for row in rows:
        row["role"] = ("the command started" if row["pid"] == pid else
                       "worker (ran the last job)" if row is worker else
                       "resource tracker" if "resource_tracker" in row["cmd"] else "other")
    return {"processes": len(rows), "rss_mb": sum(row["rss_mb"] for row in rows),
            "pss_mb": sum(row["pss_mb"] for row in rows), "worker_rss_mb": worker["rss_mb"],
            "tree": rows}


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the worker we started (by pid), then SIGKILL it and its descendants."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for child in descendants:
        try:
            child.wait(1.0)
        except psutil.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def lost_per_recycle(progress: list[tuple[int, float]], boundaries: list[int],
                     margin: int = 64) -> float | None:
    """Seconds a drain lost per recycle: its duration minus what its steady rate would have
    taken, over the number of recycles. ``progress`` holds (jobs started so far, time) points
    (about every 64 jobs), ``boundaries`` the run count of each replacement's first job. The
    steady rate comes from the segments between two points that are ``margin`` jobs or more
    away from every boundary; None without recycles or without such segments."""
    points = sorted(set(progress))
    if not boundaries or len(points) < 2:
        return None
    steady_jobs, steady_time = 0, 0.0
    for (n_a, t_a), (n_b, t_b) in zip(points, points[1:], strict=False):
        if all(b < n_a - margin or b > n_b + margin for b in boundaries):
            steady_jobs += n_b - n_a
            steady_time += t_b - t_a
    if not steady_jobs or steady_time <= 0:
        return None
    (n_0, t_0), (n_n, t_n) = points[0], points[-1]
    return ((t_n - t_0) - (n_n - n_0) * steady_time / steady_jobs) / len(boundaries)


class Runner:
    def __init__(self, adapter: Adapter, args: argparse.Namespace) -> None:
        self.a = adapter
        self.args = args
        self.loop = asyncio.new_event_loop() if adapter.is_async else None
        if self.loop is not None:
            asyncio.set_event_loop(self.loop)
        self.result: dict[str, Any] = {"lib": adapter.name, "backend": adapter.backend,
                                       "mode": args.mode, "notes": []}

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        out = fn(*args)
        if self.loop is not None and asyncio.iscoroutine(out):
            return self.loop.run_until_complete(out)
        return out

    # -- phases -----------------------------------------------------------------------------
    def preload(self, n: int, cap: float) -> int:
        """Bulk-enqueue n jobs (or single-enqueue them when the library has no bulk API)."""
        a = self.a
        if a.has_bulk:
            batch = a.bulk_batch
            lat: list[float] = []
            done, t0 = 0, time.perf_counter()
            while done < n and time.perf_counter() - t0 < cap:
                k = min(batch, n - done)
                s = time.perf_counter()
                self.call(a.enqueue_bulk, k)
                lat.append(time.perf_counter() - s)
                done += k
            elapsed = time.perf_counter() - t0
            self.result["bulk_rate"] = done / elapsed
            self.result["bulk_batch"] = batch
            full = lat[:-1] if len(lat) > 1 and n % batch else lat  # full batches only
            self.result["bulk_p99_ms"] = percentile(full, 0.99) * 1000  # type: ignore[operator]
        else:
            done, elapsed, _ = self.single(n, cap)
            self.result["preload_single_rate"] = done / elapsed
        self.result["jobs"] = done
        if done < n:
            self.result["notes"].append(f"preload capped at {cap:.0f}s: {done} of {n} jobs")
        return done

    def single(self, n: int, cap: float) -> tuple[int, float, list[float]]:
        a = self.a
        lat: list[float] = []

        async def go_async() -> tuple[int, float]:
            t0 = time.perf_counter()
            for _ in range(n):
                s = time.perf_counter()
                await a.enqueue(0.0)
                e = time.perf_counter()
                lat.append(e - s)
                if e - t0 > cap:
                    break
            return len(lat), time.perf_counter() - t0

        def go_sync() -> tuple[int, float]:
            t0 = time.perf_counter()
            for _ in range(n):
                s = time.perf_counter()
                a.enqueue(0.0)
                e = time.perf_counter()
                lat.append(e - s)
                if e - t0 > cap:
                    break
            return len(lat), time.perf_counter() - t0

        done, elapsed = self.loop.run_until_complete(go_async()) if self.loop else go_sync()
        return done, elapsed, lat

    def worker_env(self, expect: int, probe: Probe) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.a.worker_env())
        env["BENCH_PROBE_PORT"] = str(probe.port)
        env["BENCH_COUNT_FILE"] = probe.count_file
        env["BENCH_EXPECT"] = str(expect)
        env["BENCH_LAST_AT"] = str(self.a.recycle_after or 0)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, expect: int, probe: Probe, log: Any, processes: int = 1
              ) -> list[subprocess.Popen[bytes]]:
        env = self.worker_env(expect, probe)
        return [subprocess.Popen(self.a.worker_argv(), env=env, cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                for _ in range(processes)]

    def run_standard(self) -> None:
        args, r = self.args, self.result
        n = self.preload(args.jobs, args.preload_cap)
        probe = Probe()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives across the phases
            "w+b", prefix=f"bench-{self.a.name}-", suffix=".log", delete=False)
        r["worker_log"] = log.name
        t_spawn = time.time()
        (proc,) = self.spawn(n, probe, log)
        try:
            try:
                self.drain(probe, proc, n, t_spawn)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; worker output: ...{tail(log, 1500)}") from None
            if r.get("idle"):
                # no job left: give it a moment to settle; one more job makes sure a worker
                # that recycled on the last job of the drain has its replacement running
                time.sleep(0.5)
                self.warm_up(probe, args.start_cap)
                time.sleep(0.3)
                r.update(tree_memory(proc.pid, probe.last_pid))
                if args.e2e:
                    self.e2e(probe, args.e2e, args.e2e_cap)
            else:
                r["notes"].append("the drain did not finish: no idle measurements")
        finally:
            stop_process(proc)
            probe.close()
        if args.single:
            done, elapsed, lat = self.single(args.single, args.single_cap)
            r["single_rate"] = done / elapsed
            r["single_p50_ms"] = percentile(lat, 0.5) * 1000  # type: ignore[operator]
            r["single_p99_ms"] = percentile(lat, 0.99) * 1000  # type: ignore[operator]
            r["single_n"] = done
        r["worker_log_tail"] = tail(log, 3000)
        log.close()
        os.unlink(log.name)
        r.pop("worker_log")

    def drain(self, probe: Probe, proc: subprocess.Popen[bytes], n: int, t_spawn: float) -> None:
        args, r = self.args, self.result
        deadline = time.time() + args.start_cap
        first = None
        while first is None:
            msg = probe.recv(min(deadline, time.time() + 0.5))
            if msg is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode} before any job")
                if time.time() >= deadline:
                    raise RuntimeError(f"no job started within {args.start_cap:.0f}s")
                continue
            if msg.kind in "FD":
                first = msg
        r["start_s"] = first.now - t_spawn
        t_first = first.now
        firsts, lasts = [first], []
        last = (1, t_first)
        progress = [(1, t_first)]
        deadline = t_first + args.drain_cap
        done = n == 1
        peak, next_sample = tree_rss_mb(proc.pid), time.time() + 0.25
        while not done:
            msg = probe.recv(min(deadline, next_sample))
            now = time.time()
            if now >= next_sample:
                peak = max(peak, tree_rss_mb(proc.pid))
                next_sample = now + 0.25
            if msg is None:
                if now >= deadline:
                    break
                continue
            if msg.kind == "D":
                last, done = (msg.total, msg.now), True
                progress.append(last)
            elif msg.kind == "P":
                last = max(last, (msg.total, msg.now))
                progress.append((msg.total, msg.now))
            elif msg.kind == "F":
                firsts.append(msg)
            elif msg.kind == "M":
                lasts.append(msg)
        r["peak_rss_mb"] = max(peak, tree_rss_mb(proc.pid))
        if last[1] > t_first:
            r["drain_rate"] = (last[0] - 1) / (last[1] - t_first)
        r["drain_complete"] = done
        r["drained"] = last[0]
        self.recycles(firsts, lasts, progress)
        if not done:
            r["notes"].append(f"drain capped at {args.drain_cap:.0f}s: rate from {last[0]} of "
                              f"{n} jobs")
            if proc.poll() is not None:
                r["notes"].append(f"worker exited with {proc.returncode} during the drain")
            # let it finish, so that the idle measurements that follow see an idle worker
            deadline = time.time() + args.finish_cap
            while proc.poll() is None:
                msg = probe.recv(deadline)
                if msg is None:
                    break
                if msg.kind == "D":
                    r["idle"] = True
                    break
        else:
            r["idle"] = True

    def recycles(self, firsts: list[Msg], lasts: list[Msg],
                 progress: list[tuple[int, float]]) -> None:
        """Recycle cost. The gap: for each process that took over from a recycled one, the
        time from the old process's last job (its ``M``) to the new one's first job (its
        ``F``). The loss: the drain's time beyond what its steady rate would have taken, per
        recycle, with the steady rate read from the 64-job progress segments that hold no
        recycle and neighbour none (the gap alone holds one ordinary batch boundary, a
        reservation every worker makes every batch, and misses what a recycle costs around
        it: the standby's start, the old process's exit)."""
        r = self.result
        r["worker_processes_used"] = len({m.pid for m in firsts})
        gaps = []
        for f in sorted(firsts, key=lambda m: m.now)[1:]:
            before = [m for m in lasts if m.pid != f.pid and m.total < f.total]
            if before:
                gaps.append(f.now - max(before, key=lambda m: m.total).now)
        if not gaps:
            return
        r["recycles"] = len(gaps)
        r["recycle_gap_ms"] = percentile(gaps, 0.5) * 1000  # type: ignore[operator]
        r["recycle_gap_max_ms"] = max(gaps) * 1000
        lost = lost_per_recycle(progress, [f.total for f in firsts[1:]])
        if lost is not None:
            r["recycle_lost_ms"] = lost * 1000

    def warm_up(self, probe: Probe, cap: float) -> None:
        """Run one job through the idle worker and wait for it to start."""
        stamp = time.time()
        self.call(self.a.enqueue, stamp)
        deadline = time.time() + cap
        while (msg := probe.recv(deadline)) is not None:
            if msg.stamp == stamp:
                return
        self.result["notes"].append(f"the warm-up job did not start within {cap:.0f}s")

    def e2e(self, probe: Probe, k: int, cap: float, period: float = 0.005) -> None:
        """Open loop: one job every ``period`` seconds onto the idle worker; the latency of
        each is from just before its enqueue call to its first line."""
        a, r = self.a, self.result
        probe.drain_pending()
        waiting: set[float] = set()
        lat: list[float] = []
        sent = 0
        t_end = time.time() + cap
        t_next = time.time()
        while time.time() < t_end and (sent < k or waiting):
            now = time.time()
            if sent < k and now >= t_next:
                stamp = time.time()
                self.call(a.enqueue, stamp)
                waiting.add(stamp)
                sent += 1
                t_next = max(t_next + period, time.time())
                continue
            msg = probe.recv(min(t_next, t_end) if sent < k else t_end)
            if msg is not None and msg.kind == "L" and msg.stamp in waiting:
                waiting.discard(msg.stamp)
                lat.append(msg.now - msg.stamp)
        if lat:
            r["e2e_p50_ms"] = percentile(lat, 0.5) * 1000  # type: ignore[operator]
            r["e2e_p90_ms"] = percentile(lat, 0.9) * 1000  # type: ignore[operator]
            r["e2e_p99_ms"] = percentile(lat, 0.99) * 1000  # type: ignore[operator]
            r["e2e_n"] = len(lat)
        if waiting:
            r["notes"].append(f"{len(waiting)} of {sent} enqueue-to-start samples did not "
                              f"arrive within {cap:.0f}s")

    def run_scale(self, processes: int) -> None:
        """Drain N jobs with several worker processes (taskqueue's scaling target)."""
        args, r = self.args, self.result
        n = self.preload(args.jobs, args.preload_cap)
        probe = Probe()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in `finally`
            "w+b", prefix=f"bench-{self.a.name}-", delete=False)
        procs = self.spawn(0, probe, log, processes)
        try:
            deadline = time.time() + args.start_cap
            first = None
            while first is None:
                msg = probe.recv(deadline)
                if msg is None:
                    raise RuntimeError("no job started")
                if msg.kind in "FP":
                    first = msg
            base = first.total
            target = int(n * 0.9)
            t_last, total = first.now, base
            deadline = first.now + args.drain_cap
            while total < target:
                msg = probe.recv(deadline)
                if msg is None:
                    break
                if msg.total > total:
                    total, t_last = msg.total, msg.now
            r[f"drain_rate_x{processes}"] = (total - base) / (t_last - first.now)
            r["drained"] = total
        finally:
            for p in procs:
                stop_process(p)
            probe.close()
            log.close()
            os.unlink(log.name)

    def run_payload(self, size: int) -> None:
        """taskqueue only: enqueue and drain jobs carrying ``size`` bytes of JSON."""
        args, r = self.args, self.result
        n = max(10, min(args.jobs, 2_000, int(args.payload_budget_mb * 1e6 / size)))
        r["size"] = size
        a = self.a
        a.set_payload(size)  # type: ignore[attr-defined]
        lat: list[float] = []
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            a.enqueue(0.0)
            lat.append(time.perf_counter() - s)
            if time.perf_counter() - t0 > args.preload_cap:
                break
        elapsed = time.perf_counter() - t0
        done = len(lat)
        r["single_rate"] = done / elapsed
        r["single_p50_ms"] = percentile(lat, 0.5) * 1000  # type: ignore[operator]
        r["stored_bytes"] = a.stored_size()  # type: ignore[attr-defined]
        r["jobs"] = done
        probe = Probe()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in `finally`
            "w+b", prefix=f"bench-{self.a.name}-", delete=False)
        t_spawn = time.time()
        (proc,) = self.spawn(done, probe, log)
        try:
            self.drain(probe, proc, done, t_spawn)
        finally:
            stop_process(proc)
            probe.close()
            if not r.get("drain_complete"):
                r["worker_log_tail"] = tail(log, 2000)
            log.close()
            os.unlink(log.name)
        if r.get("drain_rate"):
            r["drain_mb_s"] = r["drain_rate"] * size / 1e6

    def mixed_backlog(self, starts: dict[int, float], kinds: list[bool]) -> None:
        """The backlog's drain rate, and how many short jobs were held behind a long one: a
        short job is *held* when it started more than 1 s after the jobs enqueued next to it
        (the median start of its 50 neighbours), which in a first-in first-out drain only
        happens when it sat in the buffer of a worker busy with a 2 s job."""
        r, backlog = self.result, len(kinds)
        if len(starts) < backlog:
            r["notes"].append(f"the mixed backlog: {len(starts)} of {backlog} jobs started")
        if len(starts) < 2:
            return
        first, last = min(starts.values()), max(starts.values())
        work = (backlog - sum(kinds)) * MIXED_SHORT_S + sum(kinds) * MIXED_LONG_S
        r["mixed_drain_rate"] = (len(starts) - 1) / (last - first)
        r["mixed_drain_ideal"] = backlog / (work / 2)
        late = []
        for i, t in starts.items():
            if kinds[i]:
                continue
            near = [starts[j] for j in range(max(0, i - 25), min(backlog, i + 26))
                    if j != i and j in starts and not kinds[j]]
            if near:
                late.append(t - percentile(near, 0.5))  # type: ignore[operator]
        if late:
            r["mixed_held"] = sum(1 for x in late if x > 1.0)
            r["mixed_short_jobs"] = len(late)
            r["mixed_lateness_p99_ms"] = percentile(late, 0.99) * 1000  # type: ignore[operator]

    def run_mixed(self) -> None:
        """The mixed-duration benchmark (issue 17, goal 6), taskqueue's CLI with two workers:

        1. a stream of 1 ms jobs, one every 1/rate s, with one 2 s job in every 500: the wait
           (enqueue -> start) of the short jobs, p50/p99/max;
        2. a backlog of the same mix pushed at once: the drain rate (first start to last
           start), next to the best two workers could do (the jobs' total work / 2), and how
           many short jobs were held behind a long one (``mixed_backlog``).
        """
        args, r = self.args, self.result
        a = self.a
        a.extra_args = ["--workers", "2"]
        every, long_s = args.mixed_every, MIXED_LONG_S
        backlog = args.mixed_backlog
        probe = Probe()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in `finally`
            "w+b", prefix=f"bench-{a.name}-", delete=False)
        t_spawn = time.time()
        (proc,) = self.spawn(0, probe, log)
        try:
            # warm up: the first job tells that the pool is running
            stamp = time.time()
            a.enqueue_mixed(stamp, False)  # type: ignore[attr-defined]
            deadline = time.time() + args.start_cap
            while True:
                msg = probe.recv(min(deadline, time.time() + 0.5))
                if msg is not None and msg.stamp == stamp:
                    r["start_s"] = msg.now - t_spawn
                    break
                if proc.poll() is not None or time.time() >= deadline:
                    raise RuntimeError(f"no job started within {args.start_cap:.0f}s; worker "
                                       f"output: ...{tail(log, 1500)}")
            # 1. the stream
            period = 1.0 / args.mixed_rate
            count = max(every, int(args.mixed_rate * args.mixed_seconds))
            waiting: dict[float, bool] = {}
            short: list[float] = []
            long_waits: list[float] = []
            t0 = time.time()
            sent = 0
            t_end = t0 + count * period + long_s * 2 + args.mixed_settle
            while time.time() < t_end and (sent < count or waiting):
                if sent < count and time.time() >= t0 + sent * period:
                    stamp = time.time()
                    is_long = sent % every == every // 5
                    a.enqueue_mixed(stamp, is_long)  # type: ignore[attr-defined]
                    waiting[stamp] = is_long
                    sent += 1
                    continue
                msg = probe.recv(min(t0 + sent * period, t_end) if sent < count else t_end)
                if msg is not None and msg.stamp in waiting:
                    is_long = waiting.pop(msg.stamp)
                    (long_waits if is_long else short).append(msg.now - msg.stamp)
            r["mixed_sent"] = sent
            r["mixed_rate"] = args.mixed_rate
            r["mixed_long_jobs"] = sent // every + (1 if sent % every > every // 5 else 0)
            if short:
                r["mixed_wait_p50_ms"] = percentile(short, 0.5) * 1000  # type: ignore[operator]
                r["mixed_wait_p99_ms"] = percentile(short, 0.99) * 1000  # type: ignore[operator]
                r["mixed_wait_max_ms"] = max(short) * 1000
            if waiting:
                r["notes"].append(f"{len(waiting)} of {sent} stream jobs had not started "
                                  f"{args.mixed_settle:.0f}s after the stream")
            # 2. the backlog: job i carries -(i + 1), so the probe reports which job started when
            probe.drain_pending()
            kinds = [i % every == every // 2 for i in range(backlog)]
            push = a.enqueue_mixed_bulk  # type: ignore[attr-defined]
            for start in range(0, backlog, 1000):
                push(kinds[start:start + 1000], -(start + 1))
            starts: dict[int, float] = {}
            deadline = time.time() + args.drain_cap + long_s * (backlog // every + 1)
            while len(starts) < backlog:
                msg = probe.recv(deadline)
                if msg is None:
                    break
                if msg.stamp < 0:
                    starts[int(-msg.stamp) - 1] = msg.now
            self.mixed_backlog(starts, kinds)
        finally:
            stop_process(proc, grace=2 * long_s + 5)
            probe.close()
            if not r.get("mixed_drain_rate") or r["notes"]:
                r["worker_log_tail"] = tail(log, 2000)
            log.close()
            os.unlink(log.name)


#: the mixed benchmark's jobs (``benchmarks.adapters.taskqueue``: bench.short, bench.long)
MIXED_SHORT_S = 0.001
MIXED_LONG_S = 2.0


def tail(log: Any, size: int) -> str:
    log.flush()
    log.seek(0)
    data: bytes = log.read()
    return data[-size:].decode(errors="replace")


def load_adapter(lib: str, backend: str, store: dict[str, Any]) -> Adapter:
    module = importlib.import_module(f"benchmarks.adapters.{lib.replace('-', '_')}")
    cls: type[Adapter] = module.ADAPTER
    return cls(backend, store)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness")
    p.add_argument("--lib", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--store", required=True, help="JSON: the store the orchestrator made")
    p.add_argument("--mode", default="standard",
                   help="standard | max-jobs:K (taskqueue's CLI with --max-jobs K) | mixed | "
                   "scale:K | payload:BYTES")
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--single", type=int, default=2_000)
    p.add_argument("--single-cap", type=float, default=3.0)
    p.add_argument("--e2e", type=int, default=200, help="samples, one every 5 ms")
    p.add_argument("--e2e-cap", type=float, default=5.0)
    p.add_argument("--preload-cap", type=float, default=8.0)
    p.add_argument("--drain-cap", type=float, default=10.0)
    p.add_argument("--finish-cap", type=float, default=20.0,
                   help="after a capped drain, wait this long for the rest before idle tests")
    p.add_argument("--start-cap", type=float, default=30.0)
    p.add_argument("--payload-budget-mb", type=float, default=40.0)
    p.add_argument("--mixed-rate", type=float, default=200.0,
                   help="mixed: jobs enqueued per second in the stream")
    p.add_argument("--mixed-seconds", type=float, default=10.0, help="mixed: stream length")
    p.add_argument("--mixed-every", type=int, default=500, help="mixed: one 2 s job in EVERY")
    p.add_argument("--mixed-backlog", type=int, default=2_000, help="mixed: backlog size")
    p.add_argument("--mixed-settle", type=float, default=10.0,
                   help="mixed: how long to wait for the stream's last jobs")
    args = p.parse_args(argv)
    # the orchestrator stops a hung harness with SIGTERM: unwind so `finally` stops the worker
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    store = json.loads(args.store)
    os.environ["BENCH_STORE"] = args.store
    out: dict[str, Any]
    adapter = runner = None
    try:
        adapter = load_adapter(args.lib, args.backend, store)
        runner = Runner(adapter, args)
        runner.result["load_before"] = os.getloadavg()[0]
        runner.call(adapter.setup)
        runner.result["version"] = adapter.version()
        runner.result["config"] = adapter.config
        if args.mode == "standard":
            runner.run_standard()
        elif args.mode.startswith("max-jobs:"):
            adapter.recycle_after = int(args.mode.split(":")[1])
            adapter.extra_args = ["--max-jobs", str(adapter.recycle_after)]
            runner.run_standard()
        elif args.mode == "mixed":
            runner.run_mixed()
        elif args.mode.startswith("scale:"):
            runner.run_scale(int(args.mode.split(":")[1]))
        elif args.mode.startswith("payload:"):
            runner.run_payload(int(args.mode.split(":")[1]))
        else:
            raise SystemExit(f"unknown mode {args.mode}")
        runner.result["load_after"] = os.getloadavg()[0]
        out = runner.result
    except Exception as exc:  # noqa: BLE001 - reported as the row's error
        out = {"lib": args.lib, "backend": args.backend, "mode": args.mode,
               "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    finally:
        if adapter is not None and runner is not None:
            with contextlib.suppress(Exception):
                runner.call(adapter.close)
    sys.stdout.write("\nBENCH-RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
