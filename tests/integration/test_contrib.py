"""The framework integrations in-process (the examples under examples/ run them for real)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import ConfigError, QueueManager, default_manager, set_default_manager, task
from taskqueue.contrib._common import LazyDriver, lazy_manager, settings_from
from taskqueue.contrib.starlette import Manager  # at module level: FastAPI resolves it here


@task(name="contrib.echo")
def echo(text: str) -> str:
    return text


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The CLI bridges export settings to os.environ (for the worker processes they spawn)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    set_default_manager(None)


def test_settings_from_a_mapping_rejects_unknown_keys_with_a_hint() -> None:
    settings = settings_from({"url": "sqlite:///x.db", "max_workers": "3", "mine": 1}, "cfg",
                             extra=["mine"])
    assert (settings.url, settings.max_workers) == ("sqlite:///x.db", 3)
    with pytest.raises(ConfigError, match="cfg: unknown setting 'lease_second'.*'lease_seconds'"):
        settings_from({"lease_second": 5}, "cfg")


def test_the_lazy_driver_connects_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    manager = lazy_manager(settings_from({"url": f"sqlite:///{path}"}, "cfg"))
    assert isinstance(manager.driver, LazyDriver)
    assert not path.exists() and not manager.driver.opened
    echo.push(["hi"], manager=manager)
    assert path.exists() and manager.driver.opened
    manager.close()
    assert not manager.driver.opened


# -- Starlette / FastAPI ----------------------------------------------------------------------

def test_starlette_lifespan_dependency_and_dashboard(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from taskqueue.contrib.starlette import mount_dashboard, taskqueue_lifespan

    app = FastAPI(lifespan=taskqueue_lifespan(url=f"sqlite:///{tmp_path / 'q.db'}"))
    mount_dashboard(app, "/jobs")

    @app.post("/echo")
    async def post(text: str, manager: Manager) -> dict[str, str]:
        return {"job": await manager.apush(echo.s(text)), "same": str(manager is
                                                                     default_manager())}

    with TestClient(app, base_url="http://127.0.0.1") as client:
        body = client.post("/echo", params={"text": "x"}).json()
        assert body["same"] == "True"
        manager = app.state.taskqueue
        assert manager.get(body["job"]).name == "contrib.echo"
        assert client.get("/jobs/api/openapi.json").status_code == 200
        # no authentication configured: the mounted dashboard answers to loopback names only
        rebound = client.get("/jobs/api/me", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400
    assert manager.driver is not None  # closed by the lifespan: it built it


def test_starlette_lifespan_leaves_a_handed_in_manager_open(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from taskqueue.contrib.starlette import get_manager, taskqueue_lifespan

    mine = QueueManager.from_url(f"sqlite:///{tmp_path / 'q.db'}")
    previous = QueueManager.from_url(f"sqlite:///{tmp_path / 'p.db'}")
    set_default_manager(previous)
    app = Starlette(lifespan=taskqueue_lifespan(mine))
    with TestClient(app):
        assert default_manager() is mine
    assert default_manager() is previous
    echo.push(["still open"], manager=mine)
    assert get_manager  # the dependency exists without FastAPI too
    mine.close()
    previous.close()


# -- Flask ------------------------------------------------------------------------------------

def test_flask_extension_config_and_cli(tmp_path: Path) -> None:
    from flask import Flask

    from taskqueue.contrib.flask import TaskQueue, get_manager

    app = Flask("flask_contrib_test")
    app.config.update(TASKQUEUE_URL=f"sqlite:///{tmp_path / 'q.db'}", TASKQUEUE_MAX_WORKERS=2)
    TaskQueue(app)
    manager = app.extensions["taskqueue"]
    assert manager.settings.max_workers == 2 and default_manager() is manager
    with app.app_context():
        assert get_manager() is manager
    runner = app.test_cli_runner()
    result = runner.invoke(args=["taskqueue", "test", "--jobs=3"])
    assert result.exit_code == 0, result.output
    assert manager.stats()["totals"]["pending"] == 3

    bad = Flask("flask_contrib_bad")
    bad.config["TASKQUEUE_LEASE_SECOND"] = 5
    with pytest.raises(ConfigError, match="did you mean 'lease_seconds'"):
        TaskQueue(bad)


# -- Django -----------------------------------------------------------------------------------

@pytest.fixture
def django_settings() -> Iterator[object]:
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app",
                   "PASSWORD": "p@ss", "HOST": "db.internal", "PORT": "5433"},
        }, INSTALLED_APPS=[], USE_TZ=True)
        import django

        django.setup()
    from taskqueue.contrib.django import conf

    conf._manager = None
    yield settings
    conf._manager = None


def test_django_settings_map_to_taskqueue_settings(django_settings: object) -> None:
    from django.test import override_settings

    from taskqueue.contrib.django import conf

    with override_settings(TASKQUEUE={"url": "sqlite:///jobs.db", "lease_seconds": 12}):
        settings = conf.store_settings()
        assert (settings.url, settings.lease_seconds) == ("sqlite:///jobs.db", 12.0)
    with override_settings(TASKQUEUE={"use_django_db": "pg", "schema": "jobs"}):
        assert conf.store_settings().url == \
            "postgresql://app:p%40ss@db.internal:5433/shop?schema=jobs"
    with override_settings(TASKQUEUE={"use_django_db": "default"}), \
            pytest.raises(ConfigError, match="must be a PostgreSQL database"):
        conf.store_settings()
    with override_settings(TASKQUEUE={"urll": "x"}), \
            pytest.raises(ConfigError, match="did you mean 'url'"):
        conf.store_settings()


def test_django_enqueue_outside_a_transaction_pushes_at_once(django_settings: object,
                                                             tmp_path: Path) -> None:
    from django.db import transaction
    from django.test import override_settings

    from taskqueue.contrib.django import delay_on_commit, get_manager

    with override_settings(TASKQUEUE={"url": f"sqlite:///{tmp_path / 'q.db'}"}):
        handle = delay_on_commit(echo, "now")
        assert get_manager().get(handle) is not None
        with transaction.atomic():
            later = delay_on_commit(echo, "later")
            assert get_manager().get(later) is None  # waits for the commit
        assert get_manager().get(later) is not None
        try:
            with transaction.atomic():
                never = delay_on_commit(echo, "never")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert get_manager().get(never) is None
        get_manager().close()
