"""A real /metrics endpoint, scraped over HTTP and parsed; /health and /ready; and
``taskqueue health`` exit codes from a real process, against live and killed workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import tests.apps.sample_tasks as tasks
from taskqueue import QueueManager
from taskqueue.drivers import Driver
from taskqueue.errors import DriverUnavailable
from taskqueue.observability.metrics import ObservabilityServer, serve
from taskqueue.observability.stats import KIND, StatsRecorder, TaskStats
from tests.integration.conftest import drain

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> Samples:
    status, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def wait_for(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


@pytest.fixture
def server(manager: QueueManager) -> Iterator[ObservabilityServer]:
    srv = serve(manager.driver, 0, "127.0.0.1")
    yield srv
    srv.close()


def fresh_worker(queues: list[str]) -> dict[str, Any]:
    return {"id": "host:1:w", "queues": queues, "paused_queues": [], "state": "running",
            "rss_mb": 64.0, "last_heartbeat": time.time()}


def test_metrics_are_scraped_and_parsed(manager: QueueManager, server: ObservabilityServer,
                                        ledger: str) -> None:
    recorder = StatsRecorder.install(manager, flush_interval=3600)
    for _ in range(4):
        tasks.mark.push((ledger,), manager=manager, queue="mail")
    tasks.permanent.push((ledger,), manager=manager, queue="mail")
    drain(manager, queues=["mail"])
    tasks.add.push((1, 2), manager=manager, queue="mail")   # left waiting
    recorder.flush()
    manager.driver.registry_put("worker", "host:1:w", fresh_worker(["mail"]), 30)

    samples = scrape(server.port)
    assert sample(samples, "taskqueue_up") == 1
    mark = {"queue": "mail", "task": "tests.mark"}
    assert sample(samples, "taskqueue_jobs_total", **mark, state="completed") == 4
    assert sample(samples, "taskqueue_jobs_total", **mark, state="enqueued") == 4
    assert sample(samples, "taskqueue_jobs_total", queue="mail", task="tests.permanent",
                  state="failed") == 1
    assert sample(samples, "taskqueue_job_duration_seconds_count", **mark) == 4
    assert sample(samples, "taskqueue_job_duration_seconds_bucket", **mark, le="+Inf") == 4
    assert sample(samples, "taskqueue_job_duration_seconds_bucket", **mark, le="0.005") == 0 or \
        sample(samples, "taskqueue_job_duration_seconds_bucket", **mark, le="2.5") == 4
    assert sample(samples, "taskqueue_job_wait_seconds_count", **mark) == 4
    assert sample(samples, "taskqueue_queue_depth", queue="mail", state="completed") == 4
    assert sample(samples, "taskqueue_queue_depth", queue="mail", state="pending") == 1
    assert sample(samples, "taskqueue_queue_oldest_job_age_seconds", queue="mail") >= 0
    assert sample(samples, "taskqueue_workers", state="running") == 1
    assert sample(samples, "taskqueue_worker_memory_bytes", worker="host:1:w") == 64 * 2**20
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)

    # another node's bucket from half an hour ago adds up; when it expires, counters stay
    old = {"v": 1, "minute": int(time.time() // 60) - 30, "source": "other",
           "queues": {"mail": {"tests.mark": TaskStats({"completed": 7}).to_json()}}}
    manager.driver.registry_put(KIND, "old:other", old, 3600)
    assert sample(scrape(server.port), "taskqueue_jobs_total", **mark, state="completed") == 11
    manager.driver.registry_remove(KIND, "old:other")
    assert sample(scrape(server.port), "taskqueue_jobs_total", **mark, state="completed") == 11
    tasks.mark.push((ledger,), manager=manager, queue="mail")
    drain(manager, queues=["mail"])
    recorder.flush()
    assert sample(scrape(server.port), "taskqueue_jobs_total", **mark, state="completed") == 12


def test_health_and_ready_endpoints(manager: QueueManager, server: ObservabilityServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert get(base + "/health") == (200, json.dumps({"status": "ok"}))
    status, body = get(base + "/ready")
    assert status == 503 and json.loads(body)["status"] == "fail"
    assert "no live worker" in body
    manager.driver.registry_put("worker", "host:1:w", fresh_worker(["default"]), 30)
    status, body = get(base + "/ready")
    assert status == 200 and [c["name"] for c in json.loads(body)["checks"]] == [
        "store", "workers", "heartbeats"]
    assert get(base + "/nope")[0] == 404


class Outage:
    """A driver whose store can be switched off (only the verbs the server uses)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.name = driver.name
        self.down = False

    def __getattr__(self, verb: str) -> Any:
        real = getattr(self.driver, verb)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise DriverUnavailable(f"{self.name} is down")
            return real(*args, **kwargs)

        return call


def test_a_store_outage_fails_readiness_but_not_liveness(manager: QueueManager) -> None:
    store = Outage(manager.driver)
    manager.driver.registry_put("worker", "host:1:w", fresh_worker(["default"]), 30)
    srv = serve(store, 0, "127.0.0.1")
    try:
        base = f"http://127.0.0.1:{srv.port}"
        assert get(base + "/ready")[0] == 200
        store.down = True
        status, body = get(base + "/ready")
        assert status == 503 and "store unreachable" in body
        assert get(base + "/health")[0] == 200
        assert sample(scrape(srv.port), "taskqueue_up") == 0
    finally:
        srv.close()


# -- real processes -----------------------------------------------------------------------------

def taskqueue_command() -> list[str]:
    """``python -m taskqueue``, or the same group with the observe commands added while
    cli/__init__.py does not register them yet."""
    from taskqueue.cli import cli

    if "health" in cli.commands:
        return [sys.executable, "-m", "taskqueue"]
    return [sys.executable, "-c", "import sys; from taskqueue.cli import cli, observe; "
            "[cli.add_command(c) for c in observe.COMMANDS]; cli(prog_name='taskqueue')"]


def run(url: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*taskqueue_command(), "--url", url, *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_command_when_the_store_is_down() -> None:
    result = run("postgresql://postgres@127.0.0.1:1/nothing", "health")
    assert result.returncode == 1
    assert "FAIL store" in result.stdout and "unreachable" in result.stdout


def test_health_command_with_live_then_killed_workers(manager: QueueManager, sqlite_url: str,
                                                      ledger: str) -> None:
    env = {"TASKQUEUE_LEASE_SECONDS": "3"}
    no_worker = run(sqlite_url, "health", "--json", env=env)
    assert no_worker.returncode == 1
    assert json.loads(no_worker.stdout)["checks"][1]["detail"] == "no live worker registered"

    port = free_port()
    proc = subprocess.Popen(
        [*taskqueue_command(), "--url", sqlite_url, "work", "--workers=2",
         "--app", "tests.apps.sample_tasks", "--metrics-port", str(port)],
        cwd=ROOT, env={**os.environ, **env}, text=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: run(sqlite_url, "health", env=env).returncode == 0, timeout=60)
        for _ in range(5):
            tasks.mark.push((ledger,), manager=manager)

        def completed_in_metrics() -> bool:
            try:
                samples = scrape(port)
            except OSError:
                return False
            key = ("taskqueue_jobs_total", frozenset({"queue": "default", "task": "tests.mark",
                                                      "state": "completed"}.items()))
            return samples.get(key) == 5 and sample(samples, "taskqueue_workers",
                                                    state="running") == 2

        wait_for(completed_in_metrics, timeout=60)   # worker processes flush every 5 s
        assert get(f"http://127.0.0.1:{port}/ready")[0] == 200
    finally:
        os.killpg(proc.pid, signal.SIGKILL)           # supervisor and workers, at once
        proc.wait(timeout=30)

    def dead() -> bool:
        return run(sqlite_url, "health", env=env).returncode == 1

    wait_for(dead, timeout=30)
    report = json.loads(run(sqlite_url, "health", "--json", env=env).stdout)
    failing = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failing & {"workers", "heartbeats"}


def test_metrics_serve_command(manager: QueueManager, sqlite_url: str) -> None:
    tasks.add.push((1, 2), manager=manager, queue="q1")
    proc = subprocess.Popen([*taskqueue_command(), "--url", sqlite_url, "metrics:serve",
                             "--port", "0", "--host", "127.0.0.1"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        samples = scrape(port)
        assert sample(samples, "taskqueue_queue_depth", queue="q1", state="pending") == 1
        assert get(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
