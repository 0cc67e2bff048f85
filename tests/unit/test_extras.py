"""Each server/dashboard extra installs only what the code imports: a declared dependency that
nothing uses (``psycopg-pool`` was one) costs every user an install and a false promise."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: distribution name -> the module it provides
MODULE = {"psycopg": "psycopg", "psycopg-pool": "psycopg_pool", "PyMySQL": "pymysql",
          "redis": "redis", "starlette": "starlette", "jinja2": "jinja2", "uvicorn": "uvicorn",
          "itsdangerous": "itsdangerous", "opentelemetry-api": "opentelemetry"}
EXTRAS = ("postgres", "mysql", "redis", "dashboard", "otel")
#: dependencies a library we use imports on our behalf, and the module of ours that needs it
INDIRECT = {"itsdangerous": "starlette.middleware.sessions"}  # SessionMiddleware signs with it


def imported_modules() -> set[str]:
    found: set[str] = set()
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", re.MULTILINE)
    for path in (ROOT / "src" / "taskqueue").rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_dependency_of_an_extra_is_imported_by_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    used = imported_modules() | {dist for dist, module in INDIRECT.items()
                                 if any(module in p.read_text(encoding="utf-8") for p in
                                        (ROOT / "src" / "taskqueue").rglob("*.py"))}
    unused = []
    for extra in EXTRAS:
        for requirement in project["optional-dependencies"][extra]:
            name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]
            if MODULE.get(name, name) not in used:
                unused.append(f"[{extra}] {requirement}")
    assert unused == []
