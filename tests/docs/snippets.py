"""A pytest plugin for running the Python blocks of README.md and docs/ (pytest-markdown-docs).

Each block runs in a fresh working directory with its own embedded SQLite store
(``TASKQUEUE_URL``), as the default manager, with a worker thread in the same process serving
the queues the docs use: a block that enqueues and waits for a result gets it from a real
worker, through the real store. A block's options are classes in superfences syntax, which
MkDocs renders as an ordinary Python block (``{.python .continuation .fixture-postgres}``):

* ``.continuation`` -- runs after the block before it in the same file, sharing its names;
* ``.fixture-postgres`` -- the store is a fresh PostgreSQL schema instead (the real server);
* ``.fixture-django`` -- the example Django project (examples/django_app) is set up;
* ``.fixture-myapp``, ``.fixture-dashboard_users`` -- files a page tells the reader to make;
* ``.fixture-no_worker`` -- no worker thread (a block that drains jobs itself).

README.md uses none of them (GitHub shows ``{.python ...}`` blocks without colours).

``tests/unit/test_docs_snippets.py`` runs every block in a subprocess.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_markdown_docs.plugin as markdown_docs

_parse_info = markdown_docs.parse_superfences_block_info


def _options_from_classes(info: str) -> list[str]:
    """``{.python .continuation .fixture-postgres}`` -> ``["python", "continuation",
    "fixture:postgres"]``: the plugin's options, spelled as classes MkDocs accepts."""
    lang, *rest = _parse_info(info) or [""]
    return [lang, *("fixture:" + o.removeprefix(".fixture-") if o.startswith(".fixture-")
                    else o.lstrip(".") for o in rest)]


markdown_docs.parse_superfences_block_info = _options_from_classes

#: Every queue a documented block pushes to.
DOC_QUEUES = ("default", "emails", "images", "reports", "orders", "billing", "io", "q",
              "payments", "critical", "a", "b")


@pytest.fixture
def postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server: the store (``TASKQUEUE_URL``) and, for
    the application's own tables (an ``orders`` table), ``DATABASE_URL`` with that schema
    first on its search path."""
    from urllib.parse import quote

    import psycopg

    from tests.backends import PG_ADMIN, postgres_url

    with postgres_url(tmp_path) as url:
        schema = url.rsplit("schema=", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE TABLE "{schema}".orders (id integer PRIMARY KEY)')
        monkeypatch.setenv("TASKQUEUE_URL", url)
        monkeypatch.setenv("DATABASE_URL",
                           f"{PG_ADMIN}?options={quote(f'-csearch_path={schema}')}")
        yield url


@pytest.fixture
def myapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``myapp/tasks.py`` in the working directory, holding getting-started.md's first block
    (the page tells the reader to put it there)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "getting-started.md").read_text()
    first = page.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(first)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def dashboard_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A users file and a session secret, as docs/dashboard.md tells the reader to make."""
    from taskqueue.dashboard.auth import hash_password

    (tmp_path / "users.toml").write_text(
        f'[users.alice]\npassword = "{hash_password("correct horse")}"\nrole = "admin"\n')
    monkeypatch.setenv("DASHBOARD_SECRET", "s" * 32)


_DJANGO_READY: list[bool] = []


@pytest.fixture
def django(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example Django project (examples/django_app: the ``orders`` app) set up once per
    run on its own SQLite database, as the docs' Django blocks assume."""
    example = Path(__file__).resolve().parents[2] / "examples" / "django_app"
    monkeypatch.setenv("TASKQUEUE_KEY", "base64:" + "A" * 43 + "=")
    if _DJANGO_READY:
        return
    import sys

    import django as django_module
    from django.core.management import call_command

    home = tmp_path_factory.mktemp("django")
    sys.path.insert(0, str(example))
    import os

    os.environ["DJANGO_SETTINGS_MODULE"] = "django_shop.settings"
    os.environ["SHOP_DATABASE"] = f"sqlite:///{home / 'shop.sqlite3'}"
    django_module.setup()
    call_command("migrate", verbosity=0)
    _DJANGO_READY.append(True)


@pytest.fixture
def no_worker() -> None:
    """Marker fixture: the block runs without the background worker thread."""


@pytest.fixture(scope="session", autouse=True)
def _warm_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Run one job through a worker on this (main) thread first, so every module the worker
    imports lazily is loaded before a worker thread runs beside a block being compiled
    (CPython 3.11 can fail when two threads build ASTs at once: "AST constructor recursion
    depth mismatch")."""
    from taskqueue import QueueManager, TestJob

    url = f"sqlite:///{tmp_path_factory.mktemp('warm') / 'queue.db'}"
    with QueueManager.from_url(url) as manager:
        manager.push(TestJob({"data": "warm-up"}))
        manager.start_worker(stop_when_empty=True, poll_interval=0.05)


@pytest.fixture(autouse=True)
def _snippet_store(request: pytest.FixtureRequest, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from taskqueue import QueueManager, set_default_manager
    from taskqueue.worker.runner import Worker, WorkerOptions

    monkeypatch.chdir(tmp_path)
    for name in ("DB_CONNECTION", "DB_PATH", "ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    names = set(request.fixturenames)
    if "postgres" in names:
        request.getfixturevalue("postgres")
    else:
        monkeypatch.setenv("TASKQUEUE_URL", f"sqlite:///{tmp_path / 'queue.db'}")
    manager = QueueManager.from_env()
    set_default_manager(manager)
    worker = thread = None
    if "no_worker" not in names:
        worker = Worker(QueueManager.from_env(), WorkerOptions(
            queues=DOC_QUEUES, poll_interval=0.05, maintenance_interval=0.5))
        thread = threading.Thread(target=worker.run, name="docs-worker", daemon=True)
        thread.start()
    try:
        yield
    finally:
        if worker is not None and thread is not None:
            worker.request_stop("block finished")
            thread.join(timeout=30)
            worker.manager.close()
        set_default_manager(None)
        manager.close()
