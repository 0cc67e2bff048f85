"""The public API, typed from the user's side: ``mypy --strict tests/typing`` passes, and a
wrong call to a task is caught by the type checker (ParamSpec) and, at run time, at enqueue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskqueue import QueueManager, task

REPO = Path(__file__).resolve().parents[2]

WRONG = '''\
from taskqueue import task


@task
def add(a: int, b: int) -> int:
    return a + b


add.delay("x", 2)
add.delay(1)
add.s(1, c=2)
'''


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str]]]:
    """One ``mypy --strict`` run over tests/typing and a file of wrong calls: errors by file."""
    folder = tmp_path_factory.mktemp("typing")
    (folder / "wrong_call.py").write_text(WRONG)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(folder / "cache"),
         "--no-error-summary", "--hide-error-context", "tests/typing",
         str(folder / "wrong_call.py")],
        cwd=REPO, capture_output=True, text=True, timeout=280)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    errors: dict[str, list[tuple[int, str]]] = {}
    for line in result.stdout.splitlines():
        if ": error: " in line:
            where, text = line.split(": error: ", 1)
            path, number = where.rsplit(":", 1)
            errors.setdefault(Path(path).name, []).append((int(number), text))
    return errors


@pytest.mark.slow
def test_user_code_passes_mypy_strict(checked: dict[str, list[tuple[int, str]]]) -> None:
    assert [name for name in checked if name != "wrong_call.py"] == [], checked


@pytest.mark.slow
def test_mypy_catches_a_wrong_call(checked: dict[str, list[tuple[int, str]]]) -> None:
    by_line = dict(checked.get("wrong_call.py", []))
    assert by_line.keys() == {9, 10, 11}, checked
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"' \
        in by_line[9]
    assert 'Missing positional argument "b" in call to "delay"' in by_line[10]
    assert 'Unexpected keyword argument "c"' in by_line[11]


@task(name="tests.typing.add")
def add(a: int, b: int) -> int:
    return a + b


def test_a_wrong_call_is_refused_at_enqueue_too(tmp_path: Path) -> None:
    manager = QueueManager.from_url(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        with pytest.raises(TypeError, match=r"task tests.typing.add: missing a required "
                                            r"argument: 'b'"):
            add.push([1], manager=manager)
        with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
            add.push([1, 2], {"c": 3}, manager=manager)
        assert manager.stats()["totals"]["pending"] == 0
    finally:
        manager.close()
