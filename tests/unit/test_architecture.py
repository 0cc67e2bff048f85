"""Guards for the design rules: the public surface, and who may import a concrete driver."""

from __future__ import annotations

import ast
from pathlib import Path

import taskqueue

SRC = Path(taskqueue.__file__).parent
CONCRETE = {"taskqueue.drivers.sqlite", "taskqueue.drivers.postgres", "taskqueue.drivers.mysql",
            "taskqueue.drivers.redis", "taskqueue.drivers.files"}


def test_public_api_is_exactly_all() -> None:
    # dir(): heavy names load on first use (module __getattr__), so they are not in vars() yet
    public = {name for name in dir(taskqueue) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(taskqueue, name)).__name__ == "module"}
    assert public - modules == set(taskqueue.__all__) - {"__version__"}
    for name in taskqueue.__all__:
        assert hasattr(taskqueue, name), name


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_driver_package_names_concrete_drivers() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent == SRC / "drivers":
            continue
        bad = _imports(path) & CONCRETE
        if bad:
            offenders.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert offenders == []


def test_pure_layers_do_no_io_imports() -> None:
    for layer in ("jobs", "codec"):
        for path in (SRC / layer).rglob("*.py"):
            imported = _imports(path)
            assert not any(m.startswith(("taskqueue.drivers", "taskqueue.worker", "sqlite3"))
                           for m in imported), path
