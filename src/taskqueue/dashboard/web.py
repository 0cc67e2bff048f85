"""Request plumbing shared by the API and the pages: the app's services, who is asking, JSON
bodies, errors as JSON, and audit records of actions.

Nothing here is global: one :class:`Dashboard` is made by ``create_app`` and hung on
``app.state``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from taskqueue.dashboard.audit import AuditLog
from taskqueue.dashboard.auth import Authenticator, Principal
from taskqueue.dashboard.bulk import Operations
from taskqueue.dashboard.overview import DaySeries
from taskqueue.dashboard.query import QueryError
from taskqueue.dashboard.settings import DashboardSettings
from taskqueue.dashboard.system import ActionRefused
from taskqueue.errors import (
    ConfigError,
    DriverError,
    InvalidTransition,
    JobNotFound,
    PayloadError,
    TaskQueueError,
)
from taskqueue.manager import QueueManager
from taskqueue.scheduling.cron import ScheduleError
from taskqueue.scheduling.schedules import ScheduleNotFound

MAX_BODY = 1024 * 1024


@dataclass
class Dashboard:
    manager: QueueManager
    settings: DashboardSettings
    auth: Authenticator
    audit: AuditLog
    operations: Operations
    day: DaySeries
    #: Bumped by every recorded action, so cached figures are recomputed after a change.
    changes: int = 0

    def record(self, who: Principal, request: HTTPConnection, action: str, target: str, *,
               count: int = 0, outcome: str = "ok", detail: dict[str, Any] | None = None) -> None:
        client = request.client.host if request.client else None
        self.changes += 1
        self.audit.record(who.name, who.role, action, target, count=count, outcome=outcome,
                          detail=detail, client=client)

    async def arecord(self, who: Principal, request: HTTPConnection, action: str, target: str,
                      **fields: Any) -> None:
        """``record`` from async code (the store call runs in the thread pool)."""
        await run_in_threadpool(self.record, who, request, action, target, **fields)


def board(conn: HTTPConnection) -> Dashboard:
    found: Dashboard = conn.app.state.dashboard
    return found


def who(conn: HTTPConnection) -> Principal:
    """The caller, or 401. A wrong bearer token is audited (and throttled like logins)."""
    dash = board(conn)
    principal = dash.auth.resolve(conn)
    if principal is None:
        if conn.headers.get("authorization", "").lower().startswith("bearer "):
            client = conn.client.host if conn.client else "?"
            if dash.auth.throttle.blocked(client):
                raise HTTPException(429, "too many refused tokens; wait a few minutes")
            dash.auth.throttle.failed(client)
            dash.audit.record("(bearer token)", "-", "request", conn.url.path,
                              outcome="refused", client=client)
            raise HTTPException(401, "the bearer token is not valid")
        raise HTTPException(401, "log in first (or send Authorization: Bearer <token>)")
    return principal


def admin(conn: HTTPConnection) -> Principal:
    """The caller if allowed to change things, else 403 (audited)."""
    principal = who(conn)
    if not principal.can_act:
        board(conn).record(principal, conn, "request", conn.url.path, outcome="refused",
                           detail={"reason": "read-only"})
        raise HTTPException(403, f"{principal.name} is read-only: this action needs an admin")
    return principal


async def body(request: Request) -> dict[str, Any]:
    """The JSON object sent (an empty body is ``{}``)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, "request body too large")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return data


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


# -- errors as JSON -----------------------------------------------------------------------------

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ScheduleNotFound, 404), (JobNotFound, 404), (QueryError, 400), (ScheduleError, 400),
    (ConfigError, 400), (PayloadError, 400), (ActionRefused, 409), (InvalidTransition, 409),
    (DriverError, 503), (TaskQueueError, 500), (ValueError, 400),
)


def base_path(conn: HTTPConnection) -> str:
    """Where the dashboard is served: ``""`` at the root of its host, ``"/taskqueue"`` when
    mounted under that prefix (a Starlette/FastAPI ``Mount``) or served behind a proxy with
    that ``root_path``. Every link, script and API call the pages make starts with it."""
    return str(conn.scope.get("root_path", "")).rstrip("/")


def route_path(conn: HTTPConnection) -> str:
    """The request's path inside the dashboard (without :func:`base_path`)."""
    path = str(conn.scope.get("path", ""))
    base = base_path(conn)
    return path[len(base):] if base and path.startswith(base + "/") else path


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_html(request) and exc.status_code == 401:
        from urllib.parse import urlencode

        from starlette.responses import RedirectResponse

        return RedirectResponse(f"{base_path(request)}/login?"
                                + urlencode({"next": request.url.path}), status_code=303)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def on_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    return JSONResponse({"error": str(exc) or type(exc).__name__}, status_code=status)


def _wants_html(request: Request) -> bool:
    return not route_path(request).startswith(("/api/", "/static/")) \
        and request.method in ("GET", "HEAD")


Handler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: dict[Any, Handler] = {HTTPException: on_http_error,
                                          **{kind: on_error for kind, _ in _STATUS}}
