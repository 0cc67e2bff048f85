"""Prometheus metrics read from the store at scrape time, and the HTTP server that serves them.

Everything comes from the store, so one endpoint shows every worker process on every node:

=========================================  =========  ==========================================
name                                       type       labels / meaning
=========================================  =========  ==========================================
``taskqueue_up``                           gauge      1 if the store answered this scrape
``taskqueue_queue_depth``                  gauge      queue, state: jobs per state now
``taskqueue_queue_oldest_job_age_seconds`` gauge      queue: how long the oldest due job waited
``taskqueue_workers``                      gauge      state: live workers (running, paused...)
``taskqueue_worker_memory_bytes``          gauge      worker: resident memory of each worker
``taskqueue_jobs_total``                   counter    queue, task, state: enqueued, completed,
                                                      failed, retried, cancelled, lost
``taskqueue_job_duration_seconds``         histogram  queue, task: run time of finished runs
``taskqueue_job_wait_seconds``             histogram  queue, task: enqueue (or due) to start
=========================================  =========  ==========================================

Counters and histograms are summed from the per-minute buckets that every
:class:`~taskqueue.observability.stats.StatsRecorder` stores (flushed every few seconds). A
bucket only grows, so the collector adds what each bucket gained since the previous scrape: the
counters stay monotonic when old buckets expire. The first scrape starts from the hour of
history the store holds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from taskqueue.drivers.base import Driver, QueueStats
from taskqueue.errors import ConfigError
from taskqueue.observability import health
from taskqueue.observability.stats import BOUNDS, COUNTS, History, TaskStats, oldest_age

log = logging.getLogger("taskqueue.metrics")

#: Histogram buckets shown to Prometheus: a subset of the stored bucket bounds.
PROMETHEUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
                      100.0, 250.0, 500.0, 1000.0, 2500.0)
_CUMULATE = [sum(1 for b in BOUNDS if b <= le * (1 + 1e-9)) for le in PROMETHEUS_BUCKETS]


@dataclass
class _Series:
    """Monotonic totals of one (queue, task)."""

    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0.0))
    run: list[float] = field(default_factory=lambda: [0.0] * (len(BOUNDS) + 1))
    wait: list[float] = field(default_factory=lambda: [0.0] * (len(BOUNDS) + 1))
    run_sum: float = 0.0
    wait_sum: float = 0.0


class Totals:
    """Turns stored, growing buckets into monotonic totals (what each gained, added up)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}
        self._seen: dict[tuple[int, str, str], TaskStats] = {}

    def update(self, history: History) -> None:
        for key, now in history.cells.items():
            before = self._seen.get(key, TaskStats())
            series = self.series.setdefault(key[1:], _Series())
            for name, n in now.counts.items():
                series.counts[name] = series.counts.get(name, 0.0) + max(
                    0, n - before.counts.get(name, 0))
            series.run_sum += max(0.0, now.run.total - before.run.total)
            series.wait_sum += max(0.0, now.wait.total - before.wait.total)
            for index, n in now.run.buckets.items():
                series.run[index] += max(0, n - before.run.buckets.get(index, 0))
            for index, n in now.wait.buckets.items():
                series.wait[index] += max(0, n - before.wait.buckets.get(index, 0))
        self._seen = dict(history.cells)


def _histogram(buckets: list[float]) -> list[tuple[str, float]]:
    out = [(repr(le), float(sum(buckets[:upto])))
           for le, upto in zip(PROMETHEUS_BUCKETS, _CUMULATE, strict=True)]
    return [*out, ("+Inf", float(sum(buckets)))]


class StoreCollector(Collector):
    """Reads queue depths, workers and the stored statistics at every scrape."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.totals = Totals()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                stats = self.driver.stats()
                workers = self.driver.registry_list(health.WORKER)
                history = History.load(self.driver)
                store_now = self.driver.now().timestamp()
            except Exception as exc:  # noqa: BLE001 - a scrape must answer even then
                log.warning("metrics: store unavailable: %s", exc)
                yield GaugeMetricFamily("taskqueue_up", "The store answered.", value=0)
                return
            self.totals.update(history)
            yield GaugeMetricFamily("taskqueue_up", "The store answered.", value=1)
            yield from _queue_gauges(stats, store_now)
            yield from _worker_gauges(workers)
            yield from self._job_metrics()

    def _job_metrics(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily("taskqueue_jobs", "Jobs by outcome.",
                                   labels=["queue", "task", "state"])
        run = HistogramMetricFamily("taskqueue_job_duration_seconds", "Run time of jobs.",
                                    labels=["queue", "task"])
        wait = HistogramMetricFamily("taskqueue_job_wait_seconds",
                                     "Time from enqueue (or due time) to start.",
                                     labels=["queue", "task"])
        for (queue, task), series in sorted(self.totals.series.items()):
            for state, value in series.counts.items():
                jobs.add_metric([queue, task, state], value)
            run.add_metric([queue, task], _histogram(series.run), series.run_sum)
            wait.add_metric([queue, task], _histogram(series.wait), series.wait_sum)
        yield from (jobs, run, wait)


def _queue_gauges(stats: dict[str, QueueStats], store_now: float) -> Iterator[Metric]:
    depth = GaugeMetricFamily("taskqueue_queue_depth", "Jobs per queue and state.",
                              labels=["queue", "state"])
    age = GaugeMetricFamily("taskqueue_queue_oldest_job_age_seconds",
                            "Seconds the oldest due job of the queue has waited.",
                            labels=["queue"])
    for name, qs in sorted(stats.items()):
        for state, n in qs.counts.items():
            depth.add_metric([name, state.value], n)
        seconds = oldest_age(qs, store_now)
        age.add_metric([name], seconds or 0.0)
    yield from (depth, age)


def _worker_gauges(entries: list[dict[str, Any]]) -> Iterator[Metric]:
    workers = GaugeMetricFamily("taskqueue_workers", "Live workers by state.", labels=["state"])
    by_state: dict[str, int] = {"running": 0}
    for entry in entries:
        state = str(entry.get("state", "unknown"))
        by_state[state] = by_state.get(state, 0) + 1
    for state, n in sorted(by_state.items()):
        workers.add_metric([state], n)
    memory = GaugeMetricFamily("taskqueue_worker_memory_bytes", "Resident memory of a worker.",
                               labels=["worker"])
    for entry in entries:
        if entry.get("rss_mb") is not None:
            memory.add_metric([str(entry.get("id"))], float(entry["rss_mb"]) * 1024 * 1024)
    yield from (workers, memory)


def make_registry(driver: Driver, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding the store collector (and this process's CPU/memory metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(driver))
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type (for the dashboard's own route)."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -- HTTP ---------------------------------------------------------------------------------------

class ObservabilityServer:
    """``/metrics``, ``/health`` (liveness) and ``/ready`` (readiness) on a background thread.

    ``alive`` may report the host process's own liveness (say, the supervisor loop ticking);
    without it, answering at all means alive.
    """

    def __init__(self, driver: Driver, port: int = 9100, host: str = "0.0.0.0",
                 policy: health.HealthPolicy | None = None,
                 alive: Callable[[], bool] | None = None) -> None:
        self.driver = driver
        self.registry = make_registry(driver)
        self.policy = policy or health.HealthPolicy()
        self.alive = alive
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:  # the port is taken, or the address is not this host's
            raise ConfigError(f"cannot serve metrics on {host}:{port}: "
                              f"{exc.strerror or exc}; choose another port") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="taskqueue-metrics",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> ObservabilityServer:
        self._thread.start()
        log.info("serving /metrics, /health and /ready on port %d", self.port)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def respond(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of ``path``."""
        route = urlsplit(path).path.rstrip("/") or "/"
        if route == "/metrics":
            body, kind = render(self.registry)
            return 200, body, kind
        if route == "/health":
            ok = self.alive() if self.alive else True
            return _json(200 if ok else 503, {"status": "ok" if ok else "fail"})
        if route == "/ready":
            report = health.readiness(self.driver, self.policy)
            return _json(200 if report.ok else 503, report.to_dict())
        return _json(404, {"error": "not found", "paths": ["/metrics", "/health", "/ready"]})


def _json(status: int, data: dict[str, Any]) -> tuple[int, bytes, str]:
    return status, json.dumps(data).encode(), "application/json"


def _handler(server: ObservabilityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            try:
                status, body, kind = server.respond(self.path)
            except Exception as exc:  # noqa: BLE001 - answer 500 rather than drop the socket
                log.exception("error serving %s", self.path)
                status, body, kind = _json(500, {"error": str(exc)})
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(driver: Driver, port: int, host: str = "0.0.0.0", **options: Any) -> ObservabilityServer:
    """Start serving in the background and return the server (``.port``, ``.close()``)."""
    return ObservabilityServer(driver, port, host, **options).start()
