"""A plain ``pip install`` (no extras) in a fresh venv runs the SQLite main job, and pulls in
none of the server clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_CLIENTS = ("psycopg", "psycopg_pool", "pymysql", "redis")


def run(*args: str | Path, cwd: Path, env: dict[str, str],
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_core_install_runs_the_sqlite_main_job(tmp_path: Path) -> None:
    source = tmp_path / "source"  # build from a copy: nothing is written into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith(("TASKQUEUE_", "DB_"))}
    venv = tmp_path / "venv"
    # a venv without its own pip (ensurepip alone takes half a minute); this pip installs
    # into it with --python, resolving from the package registry as a user's pip would
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
        "--disable-pip-version-check", source, cwd=tmp_path, env=env, timeout=600)

    work = tmp_path / "app"
    work.mkdir()
    env["TASKQUEUE_URL"] = f"sqlite:///{work / 'queue.db'}"
    taskqueue = venv / "bin" / "taskqueue"
    assert run(taskqueue, "--version", cwd=work, env=env).stdout.strip().startswith("taskqueue")
    run(taskqueue, "test", "--jobs=50", cwd=work, env=env)
    summary = json.loads(run(taskqueue, "work", "--stop-when-empty", "--json",
                             cwd=work, env=env).stdout)
    assert summary["totals"]["completed"] == 50
    assert run(python, "-m", "taskqueue", "stats", "--json", cwd=work,
               env=env).stdout.count('"completed": 50') >= 1

    where = Path(run(python, "-c", "import taskqueue; print(taskqueue.__file__)", cwd=work,
                     env=env).stdout.strip()).parent
    for shipped in ("py.typed", "pytest_plugin.py", "contrib/django/management/commands/"
                    "taskqueue_work.py", "contrib/starlette.py", "contrib/flask.py"):
        assert (where / shipped).is_file(), f"{shipped} is missing from the package"

    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) "
             f"is not None for m in {SERVER_CLIENTS!r}}}))")
    found = json.loads(run(python, "-c", probe, cwd=work, env=env).stdout)
    assert not any(found.values()), f"the core install pulled in server clients: {found}"
