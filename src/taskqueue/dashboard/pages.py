"""HTML pages: a server-rendered frame per page (Jinja2, autoescaped) whose content the page's
script draws from the JSON API, plus the login and logout forms.

Pages need a session (or local mode); without one they redirect to ``/login?next=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from taskqueue import __version__
from taskqueue.dashboard.auth import Principal, csrf_ok, csrf_token
from taskqueue.dashboard.web import base_path, board, who

TEMPLATES = Path(__file__).parent / "templates"

#: (name, path, title, shown in the navigation)
PAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("overview", "/", "Overview", True),
    ("queues", "/queues", "Queues", True),
    ("jobs", "/jobs", "Jobs", True),
    ("failed", "/failed", "Failed", True),
    ("scheduled", "/scheduled", "Scheduled", True),
    ("retrying", "/retrying", "Retrying", True),
    ("tasks", "/tasks", "Tasks", True),
    ("workers", "/workers", "Workers", True),
    ("schedules", "/schedules", "Schedules", True),
    ("alerts", "/alerts", "Alerts", True),
    ("audit", "/audit", "Audit log", True),
    ("job", "/jobs/{job_id}", "Job", False),
    ("workflow", "/workflows/{job_id}", "Workflow", False),
    ("batch", "/batches/{batch_id}", "Batch", False),
)

#: Pages drawn by another page's template (and script).
SHARED = {"failed": "jobs", "batch": "workflow", "scheduled": "due", "retrying": "due"}


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return Jinja2Templates(env=env)


def _render(request: Request, template: str, context: dict[str, Any],
            status: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    dash = board(request)
    base = {"title": dash.settings.title, "version": __version__,
            "csrf": csrf_token(request.session),
            "nav": [(n, p, t) for n, p, t, shown in PAGES if shown],
            "auth": dash.settings.auth_enabled, "base": base_path(request)}
    response = templates.TemplateResponse(request, template, {**base, **context},
                                          status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def page_endpoint(name: str, title: str) -> Any:
    async def endpoint(request: Request) -> Response:
        principal = who(request)  # 401 -> redirect to the login page (see web.on_http_error)
        return _render(request, f"{SHARED.get(name, name)}.html", {
            "page": name, "page_title": title, "user": principal.to_dict(),
            "params": dict(request.path_params)})

    endpoint.__name__ = f"page_{name}"
    return endpoint


# -- login / logout -----------------------------------------------------------------------------

async def login_form(request: Request) -> Response:
    dash = board(request)
    if not dash.settings.auth_enabled or dash.auth.resolve(request) is not None:
        return RedirectResponse(_next(request, request.query_params.get("next")),
                                status_code=303)
    return _login_page(request, None)


def _login_page(request: Request, error: str | None, status: int = 200) -> Response:
    dash = board(request)
    return _render(request, "login.html", {
        "page": "login", "page_title": "Log in", "user": None, "params": {},
        "error": error, "next": _next(request, request.query_params.get("next")),
        "users": bool(dash.settings.users),
        "tokens": bool(dash.settings.token or dash.settings.read_only_token)}, status)


async def login(request: Request) -> Response:
    dash = board(request)
    form = await _form(request)
    if not csrf_ok(request.session, form.get("csrf_token")):
        return _login_page(request, "Your login form expired; please try again.", 403)
    client = request.client.host if request.client else "?"
    if dash.auth.throttle.blocked(client):
        return _login_page(request, "Too many failed attempts; wait a few minutes.", 429)
    principal: Principal | None = await run_in_threadpool(
        dash.auth.login, form.get("username", "").strip(), form.get("password", ""))
    if principal is None:
        dash.auth.throttle.failed(client)
        await run_in_threadpool(dash.audit.record, form.get("username", "") or "(token)", "-",
                                "login", "dashboard", outcome="refused", client=client)
        return _login_page(request, "Wrong user name or password.", 401)
    dash.auth.throttle.succeeded(client)
    request.session.clear()
    request.session["user"] = dash.auth.session_entry(principal)
    csrf_token(request.session)  # a fresh token for the new session
    await dash.arecord(principal, request, "login", "dashboard")
    return RedirectResponse(_next(request, form.get("next")), status_code=303)


async def logout(request: Request) -> Response:
    form = await _form(request)
    if not csrf_ok(request.session, form.get("csrf_token")):
        return Response("CSRF token missing or invalid", status_code=403)
    dash = board(request)
    principal = dash.auth.resolve(request)
    await run_in_threadpool(dash.auth.end_session, dict(request.session))
    if principal is not None:
        await dash.arecord(principal, request, "logout", "dashboard")
    request.session.clear()
    return RedirectResponse(base_path(request) + "/login", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > 16 * 1024:
        return {}
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _next(request: Request, target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a full URL) is followed after login;
    otherwise the overview (under the dashboard's prefix, when it has one)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return base_path(request) + "/"


ROUTES = [
    Route("/login", login_form, methods=["GET"], name="login"),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"], name="logout"),
    *[Route(path, page_endpoint(name, title), name=f"page_{name}")
      for name, path, title, _ in PAGES],
]
