"""Guards for the design rules: the public surface, the layers (docs/architecture.md, enforced
with import-linter's contracts in pyproject.toml), and no import cycle across packages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

import taskqueue

SRC = Path(taskqueue.__file__).parent
ROOT = Path(__file__).resolve().parents[2]


def test_public_api_is_exactly_all() -> None:
    # dir(): heavy names load on first use (module __getattr__), so they are not in vars() yet
    public = {name for name in dir(taskqueue) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(taskqueue, name)).__name__ == "module"}
    assert public - modules == set(taskqueue.__all__) - {"__version__"}
    for name in taskqueue.__all__:
        assert hasattr(taskqueue, name), name


def test_import_contracts_are_kept() -> None:
    """``lint-imports``: the layers (every top-level package placed: the contract is
    exhaustive), concrete drivers named only in drivers/, the runtime parts independent."""
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    proc = subprocess.run([str(lint), "--config", "pyproject.toml", "--no-cache"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in layer.split("|")] for layer in contract["layers"]]


def test_the_layers_contract_places_every_top_level_package() -> None:
    placed = {name for layer in _layers() for name in layer}
    present = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in SRC.glob("*/__init__.py")}
    assert placed == present


def test_the_architecture_doc_draws_the_layers_of_the_contract() -> None:
    """docs/architecture.md's diagram lists the layers top to bottom, as the contract does."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    diagram = doc[doc.index("<!-- layers -->"):doc.index("<!-- /layers -->")]
    rows = [line.strip().split("   ")[0] for line in diagram.splitlines()[1:]
            if line.strip() not in ("", "|", "v", "```")]
    assert [[name.strip() for name in row.split("|")] for row in rows] == _layers()


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("taskqueue", cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    work: list[tuple[str, Iterator[str]]] = []
    found: list[list[str]] = []

    def enter(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        work.append((module, iter(sorted(graph.find_modules_directly_imported_by(module)))))

    for root in sorted(graph.modules):
        if root in index:
            continue
        enter(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    enter(step)
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _package(module: str) -> str:
    """``taskqueue.worker.runner`` -> ``taskqueue.worker``; the root is its own."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_crosses_packages() -> None:
    crossing = [c for c in _cycles(_graph()) if len({_package(m) for m in c}) > 1]
    assert crossing == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for module in ("a.x", "a.y", "b.z", "c.w"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="b.z")
    graph.add_import(importer="b.z", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="c.w", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "b.z"]]


@pytest.mark.parametrize(("importer", "imported", "kind"), [
    ("taskqueue.manager", "taskqueue.worker.inline", "an import inside a function"),
    ("taskqueue.manager", "taskqueue.worker.runner", "an import under TYPE_CHECKING"),
])
def test_the_graph_sees_lazy_and_type_checking_imports(importer: str, imported: str,
                                                        kind: str) -> None:
    """What the contracts and the cycle test read includes every kind of import."""
    assert _graph().direct_import_exists(importer=importer, imported=imported), kind


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_pure_layers_do_no_io_imports() -> None:
    # the layers contract keeps jobs and codec off the drivers; this keeps them off sqlite3
    for layer in ("jobs", "codec"):
        for path in (SRC / layer).rglob("*.py"):
            assert "sqlite3" not in _imports(path), path
