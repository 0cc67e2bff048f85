"""Measure one library on one store, in the library's own interpreter; print one JSON object.

Run by the orchestrator as ``python -m benchmarks.harness --lib NAME --backend B --store JSON``
with the interpreter of the venv that holds the library. Phases, in this order:

1. preload N jobs with the library's bulk API (measured: bulk enqueue rate), or with single
   enqueues when it has none;
2. start ONE worker process (measured: spawn -> first job starts);
3. let it drain the N jobs (measured: jobs/s from the first job's start to the N-th's);
4. wait until idle, then read its resident memory (the whole process tree);
5. enqueue-to-start latency: one job at a time onto the idle worker, random gaps between;
6. stop the worker (SIGTERM by pid, SIGKILL after a grace period);
7. single enqueue rate and per-call latency (no worker running, so nothing competes for CPU).

Only the standard library and psutil are needed here; the adapter imports the library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

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


class Probe:
    """The harness end of ``benchmarks.probe``: a UDP socket on loopback."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.counts: dict[int, int] = {}

    def recv(self, deadline: float) -> tuple[str, int, int, float, float] | None:
        left = deadline - time.time()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(256)
        except TimeoutError:
            return None
        kind, pid, count, now, stamp = data.decode().split()
        self.counts[int(pid)] = max(self.counts.get(int(pid), 0), int(count))
        return kind, int(pid), int(count), float(now), float(stamp)

    def drain_pending(self) -> None:
        while self.recv(time.time() + 0.001) is not None:
            pass

    def close(self) -> None:
        self.sock.close()


def tree_rss_mb(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / (1024 * 1024)


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

            async def go_async() -> tuple[int, float]:
                done, t0 = 0, time.perf_counter()
                while done < n and time.perf_counter() - t0 < cap:
                    k = min(batch, n - done)
                    await a.enqueue_bulk(k)
                    done += k
                return done, time.perf_counter() - t0

            def go_sync() -> tuple[int, float]:
                done, t0 = 0, time.perf_counter()
                while done < n and time.perf_counter() - t0 < cap:
                    k = min(batch, n - done)
                    a.enqueue_bulk(k)
                    done += k
                return done, time.perf_counter() - t0

            done, elapsed = (self.loop.run_until_complete(go_async()) if self.loop
                             else go_sync())
            self.result["bulk_rate"] = done / elapsed
            self.result["bulk_batch"] = batch
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

    def worker_env(self, expect: int, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.a.worker_env())
        env["BENCH_PROBE_PORT"] = str(port)
        env["BENCH_EXPECT"] = str(expect)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, expect: int, probe: Probe, log: Any, processes: int = 1
              ) -> list[subprocess.Popen[bytes]]:
        env = self.worker_env(expect, probe.port)
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
                log.flush()
                log.seek(0)
                tail = log.read()[-1500:].decode(errors="replace")
                log.close()
                os.unlink(log.name)
                raise RuntimeError(f"{exc}; worker output: ...{tail}") from None
            if r.get("idle"):
                # no job left: give it a moment to settle, then read its memory
                time.sleep(0.5)
                r["rss_mb"] = tree_rss_mb(proc.pid)
                r["processes"] = 1 + len(psutil.Process(proc.pid).children(recursive=True))
                if args.e2e:
                    self.e2e(probe, proc, args.e2e, args.e2e_cap)
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
        log.seek(0)
        r["worker_log_tail"] = log.read()[-3000:].decode(errors="replace")
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
            if msg[0] in "FD":
                first = msg
        r["start_s"] = first[3] - t_spawn
        t_first = first[3]
        last = (1, t_first)
        deadline = t_first + args.drain_cap
        done = n == 1
        while not done:
            msg = probe.recv(deadline)
            if msg is None:
                break
            kind, _pid, count, now, _ = msg
            if kind == "D":
                last, done = (count, now), True
            elif kind == "P":
                last = (count, now)
        if last[1] > t_first:
            r["drain_rate"] = (last[0] - 1) / (last[1] - t_first)
        r["drain_complete"] = done
        r["drained"] = last[0]
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
                if msg[0] == "D":
                    r["idle"] = True
                    break
            else:
                pass
        else:
            r["idle"] = True

    def e2e(self, probe: Probe, proc: subprocess.Popen[bytes], k: int, cap: float) -> None:
        a, r = self.a, self.result
        probe.drain_pending()
        lat: list[float] = []
        t_end = time.time() + cap
        missed = 0
        rnd = random.Random(7)
        while len(lat) < k and time.time() < t_end:
            time.sleep(rnd.uniform(0.005, 0.05))
            stamp = time.time()
            self.call(a.enqueue, stamp)
            deadline = time.time() + max(2.0, t_end - time.time())
            while True:
                msg = probe.recv(deadline)
                if msg is None:
                    missed += 1
                    break
                if msg[0] == "L" and msg[4] == stamp:
                    lat.append(msg[3] - stamp)
                    break
            if missed:
                break
        if lat:
            r["e2e_p50_ms"] = percentile(lat, 0.5) * 1000  # type: ignore[operator]
            r["e2e_p90_ms"] = percentile(lat, 0.9) * 1000  # type: ignore[operator]
            r["e2e_n"] = len(lat)
        if missed:
            r["notes"].append("an enqueue-to-start sample did not arrive in time")

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
                if msg[0] in "FP":
                    first = msg[3]
            base = sum(probe.counts.values())
            target = int(n * 0.9)
            t_last, total = first, base
            deadline = first + args.drain_cap
            while total < target:
                msg = probe.recv(deadline)
                if msg is None:
                    break
                total = sum(probe.counts.values())
                t_last = msg[3]
            r[f"drain_rate_x{processes}"] = (total - base) / (t_last - first)
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
            log.seek(0)
            if not r.get("drain_complete"):
                r["worker_log_tail"] = log.read()[-2000:].decode(errors="replace")
            log.close()
            os.unlink(log.name)
        if r.get("drain_rate"):
            r["drain_mb_s"] = r["drain_rate"] * size / 1e6


def load_adapter(lib: str, backend: str, store: dict[str, Any]) -> Adapter:
    module = importlib.import_module(f"benchmarks.adapters.{lib.replace('-', '_')}")
    cls: type[Adapter] = module.ADAPTER
    return cls(backend, store)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness")
    p.add_argument("--lib", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--store", required=True, help="JSON: the store the orchestrator made")
    p.add_argument("--mode", default="standard", help="standard | scale:K | payload:BYTES")
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--single", type=int, default=2_000)
    p.add_argument("--single-cap", type=float, default=3.0)
    p.add_argument("--e2e", type=int, default=50)
    p.add_argument("--e2e-cap", type=float, default=5.0)
    p.add_argument("--preload-cap", type=float, default=8.0)
    p.add_argument("--drain-cap", type=float, default=10.0)
    p.add_argument("--finish-cap", type=float, default=20.0,
                   help="after a capped drain, wait this long for the rest before idle tests")
    p.add_argument("--start-cap", type=float, default=30.0)
    p.add_argument("--payload-budget-mb", type=float, default=40.0)
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
