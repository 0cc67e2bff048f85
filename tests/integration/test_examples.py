"""Each example under ``examples/`` has its own tests, which start it for real (servers,
workers, the real store); run them here, each in a subprocess, so CI covers them."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def plugin_registered() -> bool:
    return any(ep.value == "taskqueue.pytest_plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


def test_the_pytest_plugin_is_registered_by_its_entry_point() -> None:
    """Users get the fixtures just by installing taskqueue (``pytest11`` in pyproject)."""
    assert plugin_registered(), "add `taskqueue = \"taskqueue.pytest_plugin\"` under " \
                                "[project.entry-points.pytest11] and reinstall"


@pytest.mark.slow
@pytest.mark.parametrize("example", ["django_app", "fastapi_app", "flask_app"])
def test_example(example: str, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "pytest"), "-o", "timeout=240"]
    if not plugin_registered():  # not installed with the entry point yet: load it by name
        args += ["-p", "taskqueue.pytest_plugin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(args, cwd=EXAMPLES / example, env=env, capture_output=True,
                            text=True, timeout=280)
    assert result.returncode == 0, f"{example} tests failed:\n{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout, result.stdout
