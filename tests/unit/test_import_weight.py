"""A worker's import path stays light: the heavy optional dependencies load only when the feature
that needs them is used (issue #10: idle worker RSS and start time).

Each check runs in a fresh interpreter, because the test session itself imports everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Never needed to run a plain job from SQLite: each belongs to one feature (in brackets).
HEAVY = [
    "cryptography",  # payload encryption (a key is configured)
    "opentelemetry",  # tracing (the application uses OpenTelemetry)
    "croniter",  # cron schedules
    "dateutil",  # croniter's dependency
    "rich",  # the CLI
    "click",  # the CLI
    "prometheus_client",  # metrics
    "asyncio",  # async jobs and the async client API
    "taskqueue.scheduling.natural",  # English schedule phrases
    "taskqueue.scheduling.scheduler",  # the scheduler
]

#: Standard-library modules that `taskqueue work` once imported on its way to the first job
#: and never used there (issue #17 goal 3: spawn to first job). The supervisor imports them
#: before it forks the fork server, so every worker inherited them too.
STARTUP_STDLIB = [
    "subprocess",  # only to start a fresh fork server (SIGUSR1, a dead server)
    "tempfile",  # status boards off Linux (memfd_create elsewhere); with shutil, lzma, bz2
    "shutil",
    "secrets",  # a worker id suffix and a socket name: os.urandom does; with hmac, _hashlib
    "hmac",
    "importlib.resources",  # reading the SQL/Lua files; with zipfile
    "zipfile",
    "difflib",  # the "did you mean" hint of an unknown task or option
    "ctypes",  # a thread's soft timeout, when a job overruns
    "importlib.metadata",  # with email, csv, zipfile: 30-70 ms; version lookups load it on use
    "email",
]

WORKER = """
import json, sys
import taskqueue
from taskqueue import QueueManager, task
from taskqueue.worker.runner import Worker, WorkerOptions
import taskqueue.drivers.sqlite

@task(name="weight.noop")
def noop(x: int) -> int:
    return x + 1

manager = QueueManager.from_url(sys.argv[1])
manager.driver.migrate()
job = noop.push((1,), manager=manager)
worker = Worker(manager, WorkerOptions(queues=["default"], max_jobs=1))
worker.run()
assert manager.result(job, timeout=5) == 2, "the job did not run"
manager.close()
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(code: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if h in modules or any(m.startswith(h + ".") for m in modules))


def test_a_worker_running_a_job_from_sqlite_loads_no_heavy_module(tmp_path: Path) -> None:
    modules = loaded_after(WORKER, f"sqlite:///{tmp_path / 'q.db'}")
    assert "taskqueue.worker.runner" in modules and "taskqueue.scheduling" in modules
    assert heavy(modules) == []


SUPERVISOR = """
import json, sys
from taskqueue.cli import cli
cli.main(["--url", sys.argv[1], "work", "--stop-when-empty", "--json"], standalone_mode=False)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_worker_start_path_loads_no_unneeded_stdlib_module(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    supervisor = loaded_after(SUPERVISOR, url)  # what the fork server and workers inherit
    worker = loaded_after(WORKER, url)  # what a worker adds running a job
    assert {"taskqueue.worker.forkserver", "taskqueue.drivers.sqlite"} <= supervisor
    assert sorted(set(STARTUP_STDLIB) & supervisor) == []
    assert sorted(set(STARTUP_STDLIB) & worker) == []


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql://nobody@nowhere/db", "taskqueue.drivers.postgres"),
    ("file:///nowhere", "taskqueue.drivers.files"),
    ("sqlite:///nowhere.db", "taskqueue.drivers.sqlite"),
])
def test_a_preloaded_driver_loads_no_openssl_hashlib(url: str, driver: str) -> None:
    """What the fork server preloads for a worker (issue #17 goal 3): hashlib's OpenSSL backend
    (``_hashlib``) is 3.4 MB of a worker's RSS; the PostgreSQL driver only needs blake2b for
    its migration lock key, the files driver sha256 for idempotency keys (loaded then)."""
    code = ("import json, sys\nfrom taskqueue.drivers import preload_driver\n"
            "preload_driver(sys.argv[1])\nprint(json.dumps(sorted(sys.modules)))")
    modules = loaded_after(code, url)
    if driver not in modules:
        pytest.skip(f"{driver}: its extra is not installed")
    assert "_hashlib" not in modules


def test_importing_taskqueue_loads_neither_worker_nor_codec() -> None:
    modules = loaded_after("import json, sys, taskqueue; print(json.dumps(sorted(sys.modules)))")
    assert heavy(modules) == []
    assert not {"taskqueue.manager", "taskqueue.worker.runner", "orjson"} & modules


@pytest.mark.parametrize(("code", "module"), [
    ("from taskqueue import QueueManager; QueueManager.from_url('sqlite:///:memory:', "
     "encryption_key=__import__('taskqueue').generate_key())", "cryptography"),
    ("from taskqueue.scheduling import normalize_cron; normalize_cron('*/5 * * * *')", "croniter"),
    ("from taskqueue.scheduling import compile_phrase; compile_phrase('every day at 2:30')",
     "taskqueue.scheduling.natural"),
])
def test_a_feature_loads_its_dependency_when_used(code: str, module: str) -> None:
    modules = loaded_after(code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))")
    assert module in modules


def test_a_worker_does_not_load_psutil(tmp_path: Path) -> None:
    assert "psutil" not in loaded_after(WORKER, f"sqlite:///{tmp_path / 'q.db'}")


def test_rss_without_psutil_matches_psutil() -> None:
    psutil = pytest.importorskip("psutil")
    from taskqueue.observability.process import rss_bytes

    assert abs(rss_bytes() - psutil.Process().memory_info().rss) < 4 * 1024 * 1024
