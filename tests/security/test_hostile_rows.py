"""Security 12 (issue #11), dynamic half: rows written straight into the store by an attacker
who can write to it (but not to the workers' code) never make a worker import anything.

Task names that are module paths (``os.system``, ``tests.security.evil_module.run``, ...), and
module paths in every other field (queue, tags, batch, dependencies, idempotency key, workflow
and run options, conditions, argument values shaped like jsonpickle/YAML object tags). Importing
``tests.security.evil_module`` writes a sentinel file: it must never appear, neither for an
in-process worker nor for the real ``taskqueue work`` and the read-only commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import QueueManager, State, Worker, WorkerOptions
from taskqueue.codec import Codec
from taskqueue.drivers import JobFilter
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from tests.chaos.harness import ROOT

EVIL = "tests.security.evil_module"
HOSTILE_NAMES = [
    "os.system", "subprocess.check_output", "builtins.eval", "importlib.import_module",
    EVIL, f"{EVIL}.run", f"{EVIL}:run", f"__import__('{EVIL}').run()",
    "tests/security/evil_module.py", "../../tests/security/evil_module", f"{EVIL}.Evil",
    "tests.echo ", " tests.echo", "TESTS.ECHO", "tests.echo\nos.system",
]
HOSTILE_VALUES = [
    {"py/object": f"{EVIL}.Evil"}, {"py/reduce": [{"py/function": "os.system"}, ["id"]]},
    "!!python/object/apply:os.system ['id']", {"__class__": f"{EVIL}.Evil", "__module__": EVIL},
    {"$type": f"{EVIL}.Evil, Evil"},
]


def hostile_rows(queue: str = "default") -> list[NewJob]:
    codec = Codec()
    rows = []
    for name in HOSTILE_NAMES:
        job_id = uuid7()
        rows.append(NewJob(id=job_id, name=name, queue_name=queue,
                           payload=codec.encode({"args": ["touch /tmp/pwned"]}, job_id=job_id,
                                                queue=queue)))
    # a registered task, with module paths everywhere else
    for index, value in enumerate(HOSTILE_VALUES):
        job_id = uuid7()
        body = {"args": [value], "_opts": {"rate_key": EVIL, "retry_backoff": 0.1,
                                           "conditions": ["queue:tests.security.evil_module < 5"]},
                "_wf": {"chain": [f"{EVIL}.run"], "step": 1, "of": 2,
                        "on_complete": {"name": f"{EVIL}.run"}}}
        rows.append(NewJob(id=job_id, name="tests.echo", queue_name=queue, priority=index,
                           payload=codec.encode(body, job_id=job_id, queue=queue),
                           tags=(EVIL, f"{EVIL}.run"), batch_id=f"{EVIL}:run",
                           dependencies=(EVIL,), idempotency_key=f"{EVIL}.{index}"))
    return rows


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "evil-imported"
    monkeypatch.setenv("TQ_EVIL_SENTINEL", str(path))
    assert EVIL not in sys.modules
    yield path
    assert EVIL not in sys.modules, "something imported the evil module in this process"
    assert not path.exists(), path.read_text()


def test_hostile_rows_never_import_anything_in_process(store_url: str, sentinel: Path) -> None:
    import tests.apps.sample_tasks  # noqa: F401  (the worker's real tasks)

    manager = QueueManager.from_url(store_url)
    try:
        rows = hostile_rows()
        manager.driver.push(rows)
        worker = Worker(manager, WorkerOptions(prefetch=5, maintenance_interval=0.2))
        for _ in range(30):
            worker.run_once()
        worker.flush_acks()
        worker.executor.close()
        states = {r.id: r for r in manager.search(JobFilter(limit=1000))}
        for row in rows[:len(HOSTILE_NAMES)]:
            record = states[row.id]
            assert record.state == State.FAILED, (row.name, record.state)
            assert "no task named" in (record.exception or ""), record.exception
        for row, value in zip(rows[len(HOSTILE_NAMES):], HOSTILE_VALUES, strict=True):
            record = states[row.id]
            assert record.state in (State.COMPLETED, State.PENDING), (record.state,
                                                                      record.exception)
            if record.state == State.COMPLETED:
                assert manager.result(row.id) == value, "echoed back as plain data"
    finally:
        manager.close()


def test_hostile_rows_never_import_anything_in_the_real_commands(sqlite_url: str,
                                                                 sentinel: Path) -> None:
    manager = QueueManager.from_url(sqlite_url)
    rows = hostile_rows()
    manager.driver.push(rows)
    manager.close()
    env = {**os.environ, "TQ_EVIL_SENTINEL": str(sentinel)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "taskqueue", "--url", sqlite_url,
                               "--log-level", "debug", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    work = run("work", "--stop-when-empty", "--app", "tests.apps.sample_tasks")
    assert work.returncode == 0, work.stderr
    for args in (["jobs", "list", "--json"], ["jobs", "show", rows[5].id, "--payload"],
                 ["jobs", "show", rows[-1].id, "--payload", "--json"], ["failed"],
                 ["stats", "--json"], ["retry", "--all-failed"]):
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert not sentinel.exists(), sentinel.read_text()


# regression: a non-object payload used to crash the worker process (runner.py)
@pytest.mark.parametrize("body", [[1, 2], "text", {"args": [1], "_opts": "x"}],
                         ids=["list", "string", "opts-not-object"])
def test_a_payload_that_is_not_a_json_object_is_dead_lettered(sqlite_url: str,
                                                               body: object) -> None:
    """One such row made `taskqueue work` crash its worker 5 times and give the slot up
    ("worker 0 crashed 5 times in 60s; giving up on it"), leaving the job processing."""
    import tests.apps.sample_tasks  # noqa: F401

    manager = QueueManager.from_url(sqlite_url)
    try:
        job_id = uuid7()
        manager.driver.push([NewJob(id=job_id, name="tests.echo", payload=Codec().encode(
            body, job_id=job_id, queue="default"))])
        worker = Worker(manager, WorkerOptions(prefetch=1))
        worker.run_once()  # raises AttributeError/TypeError today
        worker.flush_acks()
        worker.executor.close()
        record = manager.get(job_id)
        assert record is not None and record.state == State.FAILED
        assert record.exception
    finally:
        manager.close()


# regression: `jobs show` died with a KeyError on a malformed _wf field
def test_jobs_show_survives_a_malformed_workflow_field() -> None:
    from taskqueue.cli.jobs import describe_workflow

    assert describe_workflow({"args": [], "_wf": {"chain": ["x"]}})["chain"] == ["x"]
