"""Security 12 (issue #11), static half: nothing in ``src/`` can deserialize code or evaluate
strings. An AST walk (not a grep: comments and docstrings may mention these names) over every
module of the package fails on pickle/marshal/shelve/dill imports, ``yaml.load`` and friends,
``eval``/``exec``/``compile``/``__import__`` calls, ``subprocess(..., shell=True)``, and any
dynamic ``importlib.import_module`` outside the reviewed places listed in ``DYNAMIC_IMPORTS``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "taskqueue"

BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                  "jsonpickle", "yaml"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load",
               "full_load_all"}
#: (file relative to src/taskqueue, why a dynamic import there is safe)
DYNAMIC_IMPORTS = {
    "drivers/__init__.py": "module name from the fixed SCHEMES table",
    "cli/output.py": "the operator's --app flag, never data from the store",
    "worker/forkserver.py": "the operator's --app flag and the fixed SCHEMES table, preloaded "
                            "for the worker processes",
    "__init__.py": "lazy public names: module from the fixed _LAZY table",
    "cli/__init__.py": "lazy commands: module from the fixed COMMAND_MODULES table",
    "scheduling/__init__.py": "lazy names: module from the fixed _LAZY table",
    "drivers/_redis_import.py": "a submodule of redis-py's deferred packages (redis, "
                                "redis.asyncio), named by an attribute look-up in code and "
                                "imported only if the installed package has it",
}


def modules() -> list[Path]:
    found = sorted(SRC.rglob("*.py"))
    assert len(found) > 50, "the package was found"
    return found


def offences(path: Path) -> list[str]:
    return offences_in(path.read_text(), path.relative_to(SRC).as_posix())


def offences_in(source: str, rel: str) -> list[str]:
    tree = ast.parse(source, filename=rel)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_MODULES:
                found.append(f"{where} imports from {node.module}")
            if node.module == "importlib" and any(a.name == "import_module" for a in node.names) \
                    and rel not in DYNAMIC_IMPORTS:
                found.append(f"{where} imports import_module")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BANNED_CALLS:
                found.append(f"{where} calls {func.id}()")
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                if owner == "yaml" and func.attr in UNSAFE_YAML:
                    found.append(f"{where} calls yaml.{func.attr}()")
                if owner == "builtins" and func.attr in BANNED_CALLS:
                    found.append(f"{where} calls builtins.{func.attr}()")
                if func.attr == "import_module" and rel not in DYNAMIC_IMPORTS:
                    found.append(f"{where} imports a module named at run time")
                if owner == "subprocess" or func.attr in ("Popen", "run", "call",
                                                          "check_output", "check_call"):
                    for kw in node.keywords:
                        if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                                      and kw.value.value is False):
                            found.append(f"{where} runs a shell")
            if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "builtins":
                found.append(f"{where} looks up a builtin by name")
    return found


def test_no_code_deserialization_or_string_evaluation_in_src() -> None:
    problems = [p for path in modules() for p in offences(path)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_looks_for() -> None:
    sample = ("import pickle\nfrom marshal import loads\nimport yaml\nyaml.load(x)\n"
              "eval('1')\nexec('x=1')\n__import__('os')\nimport importlib\n"
              "importlib.import_module(name)\nimport subprocess\n"
              "subprocess.run('ls', shell=True)\nyaml.safe_load(x)\n")
    found = offences_in(sample, "cli/probe.py")
    assert len(found) == 9, found
    assert not any("safe_load" in f for f in found)


def test_dynamic_imports_are_only_in_reviewed_places() -> None:
    for rel, why in DYNAMIC_IMPORTS.items():
        text = (SRC / rel).read_text()
        assert "import_module" in text, f"{rel} no longer imports dynamically; drop it ({why})"
