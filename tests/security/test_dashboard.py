"""Security 14 and 15 (issue #11) for the dashboard, across all its routes at once.

tests/dashboard/ covers login, CSRF on each POST route, security headers and escaping of the
URL path; this adds the cross-cutting sweeps: every route refuses anonymous and wrong-token
callers, credentials are only ever compared in constant time (AST check), XSS strings in every
job field never reach a page as markup and the scripts never write HTML, limit and range params
are bounded, no page or API answer reveals the encryption key or the database password, and a
wildcard in a filter does not widen a bulk action.
"""

from __future__ import annotations

import ast
import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.routing import Mount, Route  # noqa: E402

from taskqueue import QueueManager  # noqa: E402
from taskqueue.codec import parse_key  # noqa: E402
from taskqueue.dashboard import DashboardSettings, User, hash_password  # noqa: E402
from taskqueue.jobs.states import State  # noqa: E402
from tests.backends import postgres_url  # noqa: E402
from tests.dashboard.conftest import (  # noqa: E402
    PASSWORDS,
    TOKEN,
    Session,
    client_for,
    login,
    put_job,
)
from tests.security.test_secrets import with_password  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[2] / "src" / "taskqueue" / "dashboard"
XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)><svg/onload=alert(3)>'
KEY = "base64:" + base64.b64encode(bytes(range(40, 72))).decode()
DB_PASSWORD = "dash-Pw-9zX-secret"


@pytest.fixture(scope="module")
def users() -> dict[str, User]:
    return {"alice": User("alice", hash_password(PASSWORDS["alice"], n=2**10), "admin", True)}


@pytest.fixture
def settings(users: dict[str, User]) -> DashboardSettings:
    return DashboardSettings(users=users, token=TOKEN, secret_key="test-secret",
                             live_interval=0.05)


@pytest.fixture
def dash_manager(tmp_path: Path) -> Any:
    """PostgreSQL through a URL that carries a password (loopback trusts it, so it is carried
    everywhere but never needed) and a real encryption key: neither may leak."""
    with postgres_url(tmp_path) as url:
        manager = QueueManager.from_url(with_password(url, DB_PASSWORD), encryption_key=KEY)
        yield manager
        manager.close()


@pytest.fixture
def sqlite_manager(sqlite_url: str) -> Any:
    manager = QueueManager.from_url(sqlite_url)
    yield manager
    manager.close()


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path with sample parameters) for every route but static files."""
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: {"action": "retry"}.get(
                m.group(1), "01a2209c-0000-7000-8000-000000000000"), route.path)
            found += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    assert len(found) > 20, found
    return found


def test_every_route_refuses_anonymous_and_wrong_token_callers(dash_manager: QueueManager,
                                                               settings: DashboardSettings
                                                               ) -> None:
    client = client_for(dash_manager, settings)
    # the liveness/readiness pair is open on purpose: it says "ok"/"ready" and nothing else
    open_routes = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"),
                   ("GET", "/readyz")}
    for method, path in routes(client.app):
        if (method, path) in open_routes:
            continue
        for headers in ({}, {"Authorization": "Bearer wrong-token"},
                        {"Authorization": f"Bearer {TOKEN[:-1]}"}):
            answer = client.request(method, path, headers=headers, json={})
            # 429: after ten refused tokens from one client, tokens are throttled like logins
            if path.startswith("/api/"):
                assert answer.status_code in (401, 403, 429), (method, path, answer.status_code)
            else:
                assert answer.status_code in (303, 401, 403, 429), (method, path,
                                                                    answer.status_code)
                if answer.status_code == 303:
                    assert "/login" in answer.headers["location"], (method, path)
            assert "alice" not in answer.text


def test_credentials_are_compared_in_constant_time() -> None:
    source = (DASHBOARD / "auth.py").read_text()
    secretish = {"password", "token", "secret", "digest", "expected", "got", "presented",
                 "password_hash", "csrf"}

    def names(node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}

    offences = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq)
                                                 for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) for o in operands):
                continue  # comparing with a literal (a scheme name, None) reveals nothing
            if "token_id" in names(node):
                continue  # a hash of the token against the *signed* session: not attacker-timed
            if any(names(o) & secretish for o in operands):
                offences.append(f"auth.py:{node.lineno}: {ast.unparse(node)}")
    assert not offences, offences
    assert source.count("hmac.compare_digest(") >= 3  # password hash, token, CSRF


def test_xss_in_every_job_field_never_becomes_markup(dash_manager: QueueManager,
                                                     settings: DashboardSettings) -> None:
    client = client_for(dash_manager, settings)
    session = Session(client, login(client, "alice"))
    job = put_job(dash_manager, State.FAILED, name=XSS, queue=XSS, exception=XSS,
                  body={"args": [XSS], "kwargs": {XSS: XSS}}, tags=(XSS, "t"), batch_id=XSS,
                  idempotency_key=XSS, lease_owner=XSS, result=f'"{XSS}"')
    pages = ["/", "/queues", "/jobs", "/failed", "/workers", "/schedules", "/alerts", "/audit",
             f"/jobs/{job.id}", f"/jobs?queue={XSS}", f"/jobs?q={XSS}"]
    for path in pages:
        page = session.get(path)
        assert page.status_code in (200, 400), (path, page.status_code)
        for needle in ("<script>alert", "<img src=x", "<svg/onload", "onerror=alert"):
            assert needle not in page.text, (path, needle)
    for path in (f"/api/jobs/{job.id}", "/api/jobs?state=failed", "/api/queues",
                 f"/api/jobs?queue={XSS}"):
        answer = session.get(path)
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.headers.get("x-content-type-options") == "nosniff", path
    scripts = "\n".join(p.read_text() for p in (DASHBOARD / "static").glob("*.js"))
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", scripts, flags=re.S)  # comments may say "never"
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setTimeout(\"", "srcdoc"):
        assert sink not in code, f"the dashboard scripts use {sink}"
    templates = "\n".join(p.read_text() for p in (DASHBOARD / "templates").glob("*.html"))
    assert "|safe" not in templates.replace(" ", ""), "no template switches escaping off"
    assert not re.search(r"<script>(?!\s*</script>)", templates), "no inline scripts (CSP)"


@pytest.mark.parametrize("query", [
    "/api/jobs?limit=1000000000", "/api/jobs?limit=-1", "/api/jobs?limit=0",
    "/api/jobs?limit=1e9", "/api/jobs/count?limit=99999999", "/api/series?range=year",
    "/api/series?range=" + "9" * 50, "/api/audit?limit=1000000000",
    "/api/jobs?since=-99999999999d", "/api/jobs?until=9999999999999999",
])
def test_limit_and_range_params_are_bounded(dash_manager: QueueManager,
                                            settings: DashboardSettings, query: str) -> None:
    client = client_for(dash_manager, settings)
    session = Session(client, login(client, "alice"))
    for _ in range(3):
        put_job(dash_manager, State.FAILED)
    started = time.monotonic()
    answer = session.get(query)
    assert time.monotonic() - started < 10
    assert answer.status_code in (200, 400), (query, answer.status_code, answer.text[:200])
    if answer.status_code == 200:
        data = answer.json()
        for key in ("jobs", "entries", "points"):
            if isinstance(data.get(key), list):
                assert len(data[key]) <= 1000, (query, key, len(data[key]))
    else:
        assert "Traceback" not in answer.text


def test_no_page_or_answer_reveals_the_key_or_the_password(dash_manager: QueueManager,
                                                           settings: DashboardSettings) -> None:
    client = client_for(dash_manager, settings)
    session = Session(client, login(client, "alice"))
    job = put_job(dash_manager, State.COMPLETED, result='"ok"')
    secrets = [KEY, KEY.removeprefix("base64:"), parse_key(KEY).hex(), DB_PASSWORD,
               PASSWORDS["alice"], TOKEN]
    assert DB_PASSWORD in dash_manager.settings.database_url
    seen = []
    for method, path in routes(client.app):
        if method != "GET" or path == "/api/live":
            continue
        path = path.replace("01a2209c-0000-7000-8000-000000000000", job.id)
        answer = session.get(path)
        seen.append(path)
        found = [s for s in secrets if s in answer.text]
        assert not found, (path, found)
    assert len(seen) > 10


def test_a_wildcard_in_a_filter_does_not_widen_a_bulk_action(sqlite_manager: QueueManager,
                                                             request: pytest.FixtureRequest
                                                             ) -> None:
    from tests.dashboard.test_api import wait_operation

    # regression: LIKE filters did not escape % and _, so this widened to every failed job
    settings = DashboardSettings(users={}, token=TOKEN, secret_key="s")
    client = client_for(sqlite_manager, settings)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    target = put_job(sqlite_manager, State.FAILED, exception="disk 100% full").id
    others = [put_job(sqlite_manager, State.FAILED, exception="timeout").id for _ in range(3)]
    answer = client.post("/api/jobs/bulk", headers=bearer,
                         json={"action": "retry", "filter": {"error": "%"}})
    assert answer.status_code == 202, answer.text
    session = Session(client, "")
    session.client.headers.update(bearer)
    op = wait_operation(session, answer.json()["operation"])
    assert sqlite_manager.require(target).state == State.PENDING
    assert op["changed"] == 1, f"the filter '%' retried {op['changed']} jobs"
    assert {sqlite_manager.require(i).state for i in others} == {State.FAILED}
