"""Every Python block of README.md and docs/ runs, as written (issue 19 item 18).

pytest-markdown-docs collects the blocks; ``tests/docs/snippets.py`` gives each one a fresh
store, a worker thread, and the real servers or frameworks a marked block asks for. They run in
a subprocess: the blocks define tasks and configure logging and Django, which must not leak
into this test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_python_block_of_the_readme_and_docs_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TASKQUEUE_", "DB_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.docs.snippets", "--markdown-docs",
         "--markdown-docs-syntax=superfences", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-q", "--rootdir", str(ROOT), "-o", "timeout=120", "--basetemp", str(tmp_path / "t"),
         str(ROOT / "README.md"), str(ROOT / "docs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
