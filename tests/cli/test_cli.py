"""The real command line: exit codes, aliases, JSON output, the README's main job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskqueue import QueueManager, TestJob
from taskqueue.cli import cli
from taskqueue.codec import parse_key

ROOT = Path(__file__).resolve().parents[2]


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskqueue", "--url", url, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def invoke(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--url", url, *args], catch_exceptions=False)


def test_readme_main_job_on_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "DB_PATH": str(tmp_path / "x.db")}
    env.pop("TASKQUEUE_URL", None)
    base = [sys.executable, "-m", "taskqueue"]
    enq = subprocess.run([*base, "test", "--jobs=1000"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert enq.returncode == 0, enq.stderr
    assert "enqueued 1000 TestJobs" in enq.stdout
    work = subprocess.run([*base, "work", "--stop-when-empty"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert work.returncode == 0, work.stderr
    assert "Summary" in work.stdout and "1000" in work.stdout
    stats = subprocess.run([*base, "stats", "--json"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    data = json.loads(stats.stdout)
    assert data["queues"]["default"]["completed"] == 1000
    assert data["totals"] == data["totals"] | {"pending": 0, "processing": 0, "completed": 1000,
                                               "failed": 0, "retrying": 0, "cancelled": 0}


@pytest.mark.parametrize("args,message", [
    (["test", "--jobs=0"], "--jobs"),
    (["test", "--priority=5000"], "outside 0..1000"),
    (["test", "--priority=extreme"], "not a number or one of"),
    (["work", "--workers=0"], "--workers"),
    (["work", "--workers=11"], "MAX_WORKERS=10"),
    (["work", "--app", "no_such_module_anywhere"], "cannot import 'no_such_module_anywhere'"),
    (["jobs", "list", "--state", "exploded"], "exploded"),
    (["retry"], "give job ids or --all-failed"),
    (["no-such-command"], "No such command"),
])
def test_bad_arguments_exit_2_with_a_message(sqlite_url: str, args: list[str],
                                             message: str) -> None:
    result = CliRunner().invoke(cli, ["--url", sqlite_url, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "DB_CONNECTION": "oracle"}
    env.pop("TASKQUEUE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "taskqueue", "stats"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "DB_CONNECTION='oracle'" in proc.stderr
    proc = run("ftp://nowhere/x", "stats")
    assert proc.returncode == 2 and "unsupported store URL scheme 'ftp'" in proc.stderr
    # the URL came from --url: the message must not send the reader to TASKQUEUE_URL
    assert "TASKQUEUE_URL" not in proc.stderr and "ftp://nowhere/x" in proc.stderr


def test_aliases_of_the_original_commands(sqlite_url: str) -> None:
    assert invoke(sqlite_url, "queue:test", "--jobs=3", "--queue=mail").exit_code == 0
    result = invoke(sqlite_url, "stats", "--json")
    assert json.loads(result.output)["queues"]["mail"]["pending"] == 3
    assert "Process jobs" in invoke(sqlite_url, "queue:work", "--help").output


def test_key_generate_prints_a_usable_key() -> None:
    result = CliRunner().invoke(cli, ["key:generate"])
    assert result.exit_code == 0
    key = result.output.strip()
    assert key.startswith("base64:") and len(parse_key(key)) == 32


def test_jobs_list_show_cancel_retry(sqlite_url: str) -> None:
    created = json.loads(invoke(sqlite_url, "test", "--jobs=2", "--json").output)
    job_id = created["first_id"]
    listed = json.loads(invoke(sqlite_url, "jobs", "list", "--json").output)
    assert {j["id"] for j in listed} == {created["first_id"], created["last_id"]}
    shown = json.loads(invoke(sqlite_url, "jobs", "show", job_id, "--payload", "--json").output)
    assert shown["state"] == "pending" and shown["arguments"]["data"]["data"] == "example"
    assert invoke(sqlite_url, "cancel", job_id).exit_code == 0
    assert json.loads(invoke(sqlite_url, "jobs", "show", job_id, "--json").output)[
        "state"] == "cancelled"
    assert invoke(sqlite_url, "cancel", job_id).exit_code == 1, "already cancelled"
    assert invoke(sqlite_url, "retry", job_id).exit_code == 0
    assert json.loads(invoke(sqlite_url, "jobs", "show", job_id, "--json").output)[
        "state"] == "pending"
    missing = CliRunner().invoke(cli, ["--url", sqlite_url, "jobs", "show", "nope"])
    assert missing.exit_code == 1 and "no job with id 'nope'" in missing.output


def test_migrate_and_failed_listing(sqlite_url: str) -> None:
    assert "schema up to date" in invoke(sqlite_url, "migrate").output
    assert "0 jobs" in invoke(sqlite_url, "failed").output


def test_work_json_summary(sqlite_url: str) -> None:
    assert run(sqlite_url, "test", "--jobs=50").returncode == 0
    proc = run(sqlite_url, "work", "--stop-when-empty", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["totals"]["completed"] == 50 and data["stats"]["totals"]["completed"] == 50


def test_jobs_show_lists_the_fields_of_an_undecryptable_job(tmp_path: Path) -> None:
    from taskqueue import QueueManager, generate_key
    from taskqueue.jobs.builtin import TestJob

    url = f"sqlite:///{tmp_path / 'q.db'}"
    with QueueManager.from_url(url, encryption_key=generate_key()) as sealed:
        job_id = sealed.push(TestJob({"n": 1})).id
    other = {**os.environ, "ENCRYPTION_KEY": generate_key()}
    other.pop("TASKQUEUE_URL", None)
    shown = subprocess.run([sys.executable, "-m", "taskqueue", "--url", url, "jobs", "show",
                            job_id, "--json"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env=other)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["id"] == job_id and data["state"] == "pending"
    assert "cannot be read" in data["workflow"]["error"]


@pytest.mark.parametrize("args", [
    ["test", "--queue", ""],
    ["test", "--queue", "q" * 201],
    ["queue:pause", "  "],
    ["queue:resume", "emails", ""],
    ["work", "--queue", "emails," + "q" * 201, "--stop-when-empty"],
])
def test_a_queue_name_no_job_can_have_exits_2_naming_it(tmp_path: Path, args: list[str]) -> None:
    """A name every push refuses (empty, blank, over 200 characters) is refused by the command
    too: `test` and `queue:pause` used to print a ValueError traceback and exit 1 (after
    creating the store), `work` served a queue that can never hold a job, silently."""
    store = tmp_path / "queue.db"
    proc = run(f"sqlite:///{store}", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "queue name must not be empty" in proc.stderr \
        or "queue name is 201 characters long; the limit is 200" in proc.stderr, proc.stderr
    assert not store.exists(), "refused before the store is opened"


def test_a_config_file_named_by_taskqueue_config_that_is_missing_exits_2(tmp_path: Path) -> None:
    """TASKQUEUE_CONFIG names the file to read: a typo in it used to be skipped silently, and
    the command ran on the defaults (another store: ./storage/queue.db)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQUEUE_", "DB_"))}
    named = tmp_path / "conf" / "taskqueue.toml"
    named.parent.mkdir()
    named.write_text(f'url = "sqlite:///{tmp_path / "named.db"}"\n')
    for config, code in (("conf/taskqueue.toml", 0), ("conf/taskqueu.toml", 2)):
        proc = subprocess.run([sys.executable, "-m", "taskqueue", "test", "--jobs=1"],
                              env={**env, "TASKQUEUE_CONFIG": config}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == code, (config, proc.stdout, proc.stderr)
    assert "TASKQUEUE_CONFIG='conf/taskqueu.toml': no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "named.db").exists() and not (tmp_path / "storage").exists()


@pytest.mark.parametrize("command", [["test", "--jobs=1"], ["stats"],
                                     ["work", "--stop-when-empty"]])
def test_a_sqlite_path_that_is_no_database_or_cannot_be_made_is_one_line(
        tmp_path: Path, command: list[str]) -> None:
    """A file that is not an SQLite database (exit 1, the store failed) and a path whose
    folder cannot be made (under a file: exit 2, the URL is wrong) are said in one line naming
    the path; both printed a sqlite3/OSError traceback."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database, just some text\n" * 50)
    proc = run(f"sqlite:///{other}", *command)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"error: sqlite: {other} is not a usable SQLite database" in proc.stderr
    assert "Traceback" not in proc.stderr
    if command != ["stats"]:  # a read does not make folders: it shows an empty store
        proc = run(f"sqlite:///{other}/queue.db", *command)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert f"error: sqlite: cannot make the folder {other} for {other}/queue.db" \
            in proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_metrics_port_in_use_exits_2_naming_it(sqlite_url: str) -> None:
    """`metrics:serve --port P` and `work --metrics-port P` with P taken printed an OSError
    traceback and exited 1. `work` refuses it before any worker starts (it used to fork its
    workers first, and they ran the job before the command exited 2)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with QueueManager.from_url(sqlite_url) as manager:
            manager.push(TestJob({"data": 1}))
        for args in (["metrics:serve", "--host", "127.0.0.1", "--port", port],
                     ["work", "--metrics-port", port, "--stop-when-empty"]):
            proc = run(sqlite_url, *args)
            assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
            assert f":{port}: Address already in use; choose another port" in proc.stderr
            assert "Traceback" not in proc.stderr
    with QueueManager.from_url(sqlite_url) as manager:
        counts = manager.stats()["totals"]
    assert counts["processing"] == 0 and counts["pending"] == 1, counts


def test_a_dashboard_port_in_use_exits_2_naming_it(sqlite_url: str) -> None:
    """`taskqueue dashboard --port P` with P taken printed uvicorn's error and exited 3 (which
    `work` documents as "worker slots given up"), after opening the store."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = run(sqlite_url, "dashboard", "--host", "127.0.0.1", "--port", port)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"cannot serve the dashboard on 127.0.0.1:{port}: Address already in use" \
        in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("variable", ["WORKER_MAX_JOBS", "WORKER_MEMORY_LIMIT",
                                      "TASKQUEUE_MAX_PAYLOAD", "MAX_WORKERS"])
def test_a_setting_that_is_no_number_names_the_variable_it_came_from(
        sqlite_url: str, variable: str) -> None:
    """`WORKER_MAX_JOBS=12MB` said "worker_max_jobs must be a number": a name the reader set
    nowhere (MAX_WORKERS's range check already said MAX_WORKERS)."""
    proc = subprocess.run([sys.executable, "-m", "taskqueue", "--url", sqlite_url, "work",
                           "--stop-when-empty"], env={**os.environ, variable: "12MB"},
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1] == \
        f"error: {variable} must be a number, got '12MB'"
