"""The dashboard served under a path prefix: mounted in a FastAPI/Starlette app with
``mount_dashboard`` (or ``Mount``), and behind a proxy that strips the prefix (``root_path``).

Every page, static file, API call, redirect and form action must stay under the prefix."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from taskqueue import QueueManager
from taskqueue.dashboard import DashboardSettings, create_app
from tests.dashboard.conftest import PASSWORDS, csrf_of, put_job

pytest.importorskip("fastapi")


def fastapi_app(manager: QueueManager, settings: DashboardSettings, prefix: str) -> Any:
    from fastapi import FastAPI

    from taskqueue.contrib.starlette import mount_dashboard, taskqueue_lifespan

    app = FastAPI(lifespan=taskqueue_lifespan(manager))
    mount_dashboard(app, prefix, settings=settings)
    return app


def log_in(client: TestClient, prefix: str) -> str:
    """Through the login form reached by the redirect of a page; returns the CSRF token."""
    first = client.get(f"{prefix}/jobs?state=failed")
    assert first.status_code == 303
    assert first.headers["location"] == f"{prefix}/login?" + urlencode({"next": f"{prefix}/jobs"})
    form = client.get(first.headers["location"])
    assert form.status_code == 200, form.text
    assert f'action="{prefix}/login"' in form.text
    answer = client.post(f"{prefix}/login", data={
        "username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf_of(form.text),
        "next": f"{prefix}/jobs"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{prefix}/jobs"
    return csrf_of(client.get(f"{prefix}/jobs").text)


def check_pages(client: TestClient, prefix: str, manager: QueueManager) -> None:
    job = put_job(manager)
    csrf = log_in(client, prefix)
    for path in ("/", "/queues", "/jobs", "/failed", "/workers", "/schedules", "/alerts",
                 "/audit", f"/jobs/{job.id}", f"/workflows/{job.id}"):
        page = client.get(prefix + path)
        assert page.status_code == 200, (path, page.text[:300])
        assert f'<meta name="base-path" content="{prefix}">' in page.text
        # every link, form, stylesheet and script of the frame stays under the prefix
        for url in re.findall(r'(?:href|src|action)="([^"]+)"', page.text):
            assert url.startswith(prefix + "/") or url.startswith("data:"), (path, url)
    for asset in ("core.js", "dashboard.css"):
        assert client.get(f"{prefix}/static/{asset}").status_code == 200
    listed = client.get(f"{prefix}/api/jobs", params={"state": "failed"}).json()
    assert [j["id"] for j in listed["jobs"]] == [str(job.id)]
    retried = client.post(f"{prefix}/api/jobs/{job.id}/retry", headers={"X-CSRF-Token": csrf})
    assert retried.status_code == 200, retried.text
    with client.stream("GET", f"{prefix}/api/live") as events:
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        assert next(events.iter_lines()).startswith(("event:", "retry:", ":", "data:"))
    out = client.post(f"{prefix}/logout", data={"csrf_token": csrf})
    assert (out.status_code, out.headers["location"]) == (303, f"{prefix}/login")
    # the API answers 401 as JSON under the prefix, never a redirect to the login page
    gone = client.get(f"{prefix}/api/me")
    assert gone.status_code == 401 and "error" in gone.json()


def test_mount_dashboard_under_a_prefix_in_fastapi(sqlite_manager: QueueManager,
                                                   settings: DashboardSettings) -> None:
    app = fastapi_app(sqlite_manager, settings, "/taskqueue")
    with TestClient(app, follow_redirects=False) as client:
        check_pages(client, "/taskqueue", sqlite_manager)


def test_dashboard_in_a_starlette_mount_two_levels_deep(sqlite_manager: QueueManager,
                                                        settings: DashboardSettings) -> None:
    inner = Starlette(routes=[Mount("/jobs-board", app=create_app(sqlite_manager, settings))])
    app = Starlette(routes=[Mount("/ops", app=inner)])
    with TestClient(app, follow_redirects=False) as client:
        check_pages(client, "/ops/jobs-board", sqlite_manager)


def test_dashboard_behind_a_proxy_prefix(sqlite_manager: QueueManager,
                                         settings: DashboardSettings) -> None:
    """A proxy forwards /board/... as /... and says so with root_path (uvicorn --root-path,
    ``taskqueue dashboard --root-path /board``): the server puts the prefix back in ``path``."""
    app = create_app(sqlite_manager, settings)

    async def proxied(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "root_path": "/board"}
        await app(scope, receive, send)

    with TestClient(proxied, follow_redirects=False) as client:
        check_pages(client, "/board", sqlite_manager)
