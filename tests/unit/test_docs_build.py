"""The documentation builds with ``mkdocs build --strict``: every page in the nav exists, every
link and anchor resolves, and every ``::: reference`` is found in the docstrings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_docs_build_strict(tmp_path: Path) -> None:
    if os.environ.get("CI", "").lower() != "true":  # in CI a missing mkdocs is a failure
        pytest.importorskip("mkdocs", reason="pip install 'taskqueue-py[docs]'")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    api = (site / "reference" / "python-api" / "index.html").read_text()
    assert "push_many" in api  # the reference is generated from the docstrings
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()
