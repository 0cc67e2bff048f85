"""``create_app(manager, settings)``: the dashboard as a Starlette (ASGI) application.

No globals: everything the handlers need hangs on ``app.state`` (``dashboard``, ``live``,
``templates``), so several dashboards (say, one per store) can live in one process. Serve it
with ``taskqueue dashboard`` or any ASGI server (``uvicorn``), or mount it in your own app.

Responses carry a strict Content-Security-Policy: scripts and styles only from the package's
own ``/static/`` files, no inline script, nothing from another origin; with everything drawn
through ``textContent``, a job whose name or exception holds HTML shows as text.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskqueue.dashboard import api, api_system, live, pages
from taskqueue.dashboard.audit import AuditLog
from taskqueue.dashboard.auth import Authenticator, CSRFMiddleware
from taskqueue.dashboard.bulk import Operations
from taskqueue.dashboard.hosts import HostGuard
from taskqueue.dashboard.openapi import openapi_document
from taskqueue.dashboard.overview import DaySeries
from taskqueue.dashboard.settings import DashboardSettings
from taskqueue.dashboard.web import EXCEPTION_HANDLERS, Dashboard, who
from taskqueue.manager import QueueManager

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "taskqueue_session"

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def openapi(request: Request) -> Response:
    who(request)
    return JSONResponse(openapi_document())


def create_app(manager: QueueManager, settings: DashboardSettings | None = None) -> Starlette:
    """The dashboard for ``manager``'s store. The manager stays yours: close it yourself."""
    settings = settings or DashboardSettings()
    dash = Dashboard(manager=manager, settings=settings,
                     auth=Authenticator(settings, manager.driver),
                     audit=AuditLog(manager.driver, settings.audit_ttl),
                     operations=Operations(), day=DaySeries(manager.driver))
    routes = [
        *pages.ROUTES, *api.ROUTES, *api_system.ROUTES, *live.ROUTES,
        Route("/api/openapi.json", openapi),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(HostGuard, local_mode=not settings.auth_enabled,
                   allowed=settings.allowed_hosts),
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=settings.secret_key,
                   session_cookie=SESSION_COOKIE, max_age=settings.session_max_age,
                   same_site="strict", https_only=settings.https_only),
        Middleware(CSRFMiddleware),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers=EXCEPTION_HANDLERS)
    app.state.dashboard = dash
    app.state.templates = pages.make_templates()
    app.state.live = live.LiveHub(dash)
    return app
