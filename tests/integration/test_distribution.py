"""The built distribution is complete: ``python -m build`` makes a wheel and an sdist that carry
every file the package needs, and the wheel, installed into a fresh venv (not editable), runs the
README's main job and serves the dashboard.

A data file left out of the package data (a SQL or Lua script, a template, a static file,
``py.typed``) fails here, not on a user's machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "taskqueue"
SERVER_CLIENTS = ("psycopg", "psycopg_pool", "pymysql", "redis")

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path, env: dict[str, str],
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith(("TASKQUEUE_", "DB_"))}


def package_files() -> set[str]:
    """Every file of the import package in the source tree, as ``taskqueue/...`` paths."""
    return {f"taskqueue/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel and an sdist built by ``python -m build`` from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"  # build from a copy: nothing is written into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp / "out"
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, source,
        cwd=tmp, env=clean_env())
    return out


def test_wheel_and_sdist_carry_every_package_file(dist: Path) -> None:
    (wheel,) = dist.glob("taskqueue_py-*.whl")
    (sdist,) = dist.glob("taskqueue_py-*.tar.gz")
    expected = package_files()
    assert {"taskqueue/py.typed", "taskqueue/drivers/queries/sqlite.sql",
            "taskqueue/drivers/queries/redis_push.lua",
            "taskqueue/dashboard/templates/base.html",
            "taskqueue/dashboard/static/core.js"} <= expected

    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert expected - in_wheel == set(), "files missing from the wheel"
    metadata = next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: taskqueue-py" in text
    for classifier in ("Python :: 3.11", "Python :: 3.12", "Python :: 3.13"):
        assert f"Classifier: Programming Language :: {classifier}" in text

    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    root = names[0].split("/")[0]
    in_sdist = {n.removeprefix(f"{root}/src/") for n in names if n.startswith(f"{root}/src/")}
    assert expected - in_sdist == set(), "files missing from the sdist"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, deadline: float) -> tuple[int, str]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_wheel_in_a_fresh_venv_runs_the_main_job_and_the_dashboard(dist: Path,
                                                                       tmp_path: Path) -> None:
    (wheel,) = dist.glob("taskqueue_py-*.whl")
    env = clean_env()
    venv = tmp_path / "venv"
    # a venv without its own pip (ensurepip alone takes half a minute); this pip installs
    # into it with --python, resolving from the package registry as a user's pip would
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
           "--disable-pip-version-check")
    run(*pip, wheel, cwd=tmp_path, env=env)

    work = tmp_path / "app"
    work.mkdir()
    env["TASKQUEUE_URL"] = f"sqlite:///{work / 'queue.db'}"
    taskqueue = venv / "bin" / "taskqueue"
    version = run(taskqueue, "--version", cwd=work, env=env)
    assert "taskqueue-py" in version.stdout and str(venv) in version.stdout
    assert version.stderr == "", "a clean venv reports no clashing distribution"
    run(taskqueue, "test", "--jobs=50", cwd=work, env=env)
    summary = json.loads(run(taskqueue, "work", "--stop-when-empty", "--json",
                             cwd=work, env=env).stdout)
    assert summary["totals"]["completed"] == 50

    where = Path(run(python, "-c", "import taskqueue; print(taskqueue.__file__)", cwd=work,
                     env=env).stdout.strip()).parent
    assert str(where).startswith(str(venv)), "the installed copy is used, not the checkout"
    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) "
             f"is not None for m in {SERVER_CLIENTS!r}}}))")
    found = json.loads(run(python, "-c", probe, cwd=work, env=env).stdout)
    assert not any(found.values()), f"the core install pulled in server clients: {found}"

    # the dashboard extra, from the same wheel: a page and its static files load
    run(*pip, f"{wheel}[dashboard]", cwd=tmp_path, env=env)
    port = free_port()
    server = subprocess.Popen([str(taskqueue), "dashboard", "--port", str(port)], cwd=work,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        status, page = fetch(f"http://127.0.0.1:{port}/", deadline)
        assert status == 200 and "/static/" in page
        status, script = fetch(f"http://127.0.0.1:{port}/static/core.js", deadline)
        assert status == 200 and script.strip()
        status, jobs = fetch(f"http://127.0.0.1:{port}/api/jobs?state=completed", deadline)
        assert status == 200 and json.loads(jobs)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_clashing_project_is_named_by_version(tmp_path: Path) -> None:
    """``task-queue`` (another project) also imports as ``taskqueue``: ``--version`` says so."""
    from taskqueue import _distribution

    site = tmp_path / "site-packages"
    shutil.copytree(PACKAGE, site / "taskqueue",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (site / "task_queue-2.14.0.dist-info").mkdir()
    env = {**clean_env(), "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "taskqueue", "--version"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert _distribution.DISTRIBUTION in result.stdout
    assert "task_queue-2.14.0.dist-info" in result.stderr and "different project" in \
        result.stderr
