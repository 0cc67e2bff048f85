"""Every install hint names our distribution, ``taskqueue-py``: the index name ``taskqueue`` is
another project's, so ``pip install taskqueue`` / ``'taskqueue[extra]'`` would install it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRONG = re.compile(r"taskqueue\[|pip install ['\"]?taskqueue(?![-\w])")


def texts() -> list[Path]:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "examples").rglob("*.md"), *(ROOT / "src").rglob("*.py")]
    return [f for f in files if f.is_file()]


def test_install_hints_name_the_taskqueue_py_distribution() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in texts()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if WRONG.search(line.replace("taskqueue-py[", ""))]
    assert wrong == []


def test_the_hint_pattern_catches_the_old_spellings() -> None:
    for line in ("pip install taskqueue", "pip install 'taskqueue[redis]'",
                 "needs an extra package: pip install 'taskqueue[postgres]'"):
        assert WRONG.search(line)
    for line in ("pip install taskqueue-py", "pip install 'taskqueue-py[redis]'",
                 "python -m taskqueue work"):
        assert not WRONG.search(line.replace("taskqueue-py[", ""))
