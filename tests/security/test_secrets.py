"""Security 15 (issue #11): secret hygiene.

Every command runs for real (subprocesses, ``--log-level debug``, text and JSON logs) with a
known ``ENCRYPTION_KEY`` and a database password in the URL (PostgreSQL on loopback trusts the
connection, so the password is carried everywhere but never needed). Neither the key, its base64
body, its hex, nor the password (plain or URL-encoded) may appear in any stdout, stderr or log
line — including error paths (an unreachable server, a malformed key) — nor anywhere in the
store's tables while workers are running (registry entries, node entries, job rows).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from taskqueue.codec import parse_key
from tests.backends import postgres_url
from tests.chaos.harness import ROOT, wait_for

KEY = "base64:" + base64.b64encode(bytes(range(7, 39))).decode()
PASSWORD = "Pw-s3cr3t-Zq9x/+:@!"
REGISTER_KEYS = ("from taskqueue.cli import cli; from taskqueue.cli.keys import COMMANDS; "
                 "[cli.add_command(c) for c in COMMANDS]; cli(prog_name='taskqueue')")


def secrets() -> list[str]:
    raw = parse_key(KEY)
    body = KEY.removeprefix("base64:")
    return [KEY, body, body.rstrip("="), raw.hex(), base64.urlsafe_b64encode(raw).decode(),
            PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)]


def with_password(url: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


@pytest.fixture
def secret_url(tmp_path: Path) -> Iterator[str]:
    with postgres_url(tmp_path) as url:
        yield with_password(url)


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        module: bool = True) -> str:
    command = [sys.executable, "-m", "taskqueue", *args] if module else \
        [sys.executable, "-c", REGISTER_KEYS, *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "ENCRYPTION_KEY": KEY, **(env or {})})
    label = " ".join(a for a in args if "://" not in a)  # the command line itself has the URL
    return f"$ {label}\n[exit {result.returncode}]\n{result.stdout}\n{result.stderr}"


def leaks(text: str) -> list[str]:
    return [s for s in secrets() if s in text]


def test_no_command_prints_the_key_or_the_password(secret_url: str, tmp_path: Path) -> None:
    url = secret_url
    outputs = []
    for fmt in ("text", "json"):
        base = ["--url", url, "--log-level", "debug", "--log-format", fmt]
        outputs.append(run(*base, "test", "--jobs=3"))
        outputs.append(run(*base, "work", "--stop-when-empty", "--app", "tests.apps.sample_tasks"))
    base = ["--url", url, "--log-level", "debug"]
    job_list = run(*base, "jobs", "list", "--json")
    outputs.append(job_list)
    job_id = next(line.split('"')[3] for line in job_list.splitlines() if '"id"' in line)
    dead = url.replace(f":{urlsplit(url).port}/", ":1/")
    calls: list[tuple[tuple[str, ...], dict[str, object]]] = [
        ((*base, *args), {}) for args in (
            ["jobs", "show", job_id, "--payload", "--json"], ["jobs", "show", job_id],
            ["stats", "--json"], ["stats"], ["failed"], ["workers", "--json"],
            ["nodes", "--json"], ["migrate"], ["prune"], ["retry", "--all-failed"])]
    calls += [
        ((*base, "key:reencrypt", "--json"), {"module": False}),
        ((*base, "key:reencrypt"), {"module": False, "env": {"ENCRYPTION_PREVIOUS_KEYS": KEY}}),
        # error paths: an unreachable server, the DB_* settings form, malformed keys
        (("--url", dead, "--log-level", "debug", "stats"), {}),
        (("--log-level", "debug", "stats"), {"env": {
            "TASKQUEUE_URL": "", "DB_CONNECTION": "pgsql", "DB_HOST": "127.0.0.1",
            "DB_PORT": "1", "DB_USERNAME": "postgres", "DB_PASSWORD": PASSWORD,
            "DB_DATABASE": "x"}}),
        ((*base, "stats"), {"env": {"ENCRYPTION_KEY": KEY[:-6] + "!!!!!="}}),
        ((*base, "stats"), {"env": {"ENCRYPTION_PREVIOUS_KEYS": "base64:" + PASSWORD}}),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs += list(pool.map(lambda call: run(*call[0], **call[1]), calls))  # type: ignore
    text = "\n".join(outputs)
    assert "[exit 0]" in text and "error:" in text, "both happy and error paths ran"
    found = {s: [o.splitlines()[0] for o in outputs if s in o] for s in leaks(text)}
    assert not found, found


def test_nothing_secret_is_stored_while_workers_run(secret_url: str, tmp_path: Path) -> None:
    import psycopg

    url = secret_url
    run("--url", url, "test", "--jobs=5")
    log = tmp_path / "work.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskqueue", "--url", url, "--log-level", "debug", "work",
             "--workers=2", "--app", "tests.apps.sample_tasks"], cwd=ROOT, stdout=sink,
            stderr=sink, env={**os.environ, "ENCRYPTION_KEY": KEY})
    schema = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["schema"]
    admin = urlunsplit(urlsplit(url)._replace(query="", netloc=urlsplit(url).netloc))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            def registered() -> bool:
                rows = conn.execute(f'SELECT count(*) FROM "{schema}".taskqueue_registry '
                                    "WHERE kind = 'worker'").fetchone()
                return bool(rows and rows[0] >= 2)

            wait_for(registered, timeout=60, interval=0.2, what="two workers registered")
            time.sleep(1)
            dump = []
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,))]
            assert "job_queue" in tables
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                    dump.append(f"{table}: {row!r}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    text = "\n".join(dump) + log.read_text()
    assert "taskqueue_registry" in text
    assert not leaks(text), leaks(text)
    raw = parse_key(KEY)
    assert all(raw not in bytes(str(d), "latin-1", "replace") for d in dump)
