"""Test sessions per supported Python (3.11, 3.12, 3.13): ``nox -l`` lists them.

* ``tests-3.11`` runs the whole suite, exactly as the README's test command does.
* ``compat-3.12`` and ``compat-3.13`` run the unit tests, the driver conformance suite on every
  backend and the CLI tests (`.ci/run` runs these after the README's command).

Interpreters are looked up on PATH as ``python3.X``; pyenv installs under ``~/.pyenv/versions``
are added to the search even when pyenv has not selected them. A missing interpreter is a
failure under ``CI=true`` (nox's default there) and a skip with the reason elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

SUPPORTED = ["3.11", "3.12", "3.13"]
COMPAT_TESTS = ["tests/unit", "tests/conformance", "tests/cli"]

nox.options.sessions = ["tests", "compat"]
nox.options.reuse_venv = "yes"


def _add_pyenv_versions() -> None:
    """Put each ``~/.pyenv/versions/3.X.*/bin`` on PATH (newest patch release of each)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    found: dict[str, Path] = {}
    for version in sorted(root.iterdir(), key=lambda p: [int(x) for x in p.name.split(".")
                                                         if x.isdigit()]):
        minor = ".".join(version.name.split(".")[:2])
        if minor in SUPPORTED and (version / "bin" / f"python{minor}").exists():
            found[minor] = version / "bin"
    if found:
        os.environ["PATH"] = os.pathsep.join([*map(str, found.values()), os.environ["PATH"]])


_add_pyenv_versions()


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole suite (the README's test command)."""
    _install(session)
    session.run("python", "-m", "pytest", "-n", "4", *session.posargs)


@nox.session(python=["3.12", "3.13"])
def compat(session: nox.Session) -> None:
    """Unit, conformance (every backend) and CLI tests on the other supported Pythons."""
    _install(session)
    session.run("python", "-m", "pytest", "-n", "4", "-p", "no:cacheprovider",
                *(session.posargs or COMPAT_TESTS))
