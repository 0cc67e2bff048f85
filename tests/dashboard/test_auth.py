"""Login, sessions, tokens, roles and CSRF (on SQLite: the rules do not depend on the store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Route

from taskqueue import QueueManager
from taskqueue.dashboard import DashboardSettings, hash_password, load_users
from taskqueue.dashboard.auth import verify_password
from taskqueue.errors import ConfigError
from tests.dashboard.conftest import TOKEN, Session, client_for, csrf_of, login, put_job

# A body that every POST route accepts far enough to pass the guards.
SAMPLE = {"action": "retry", "ids": []}


def post_routes(app: object) -> list[str]:
    paths = []
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.methods and "POST" in route.methods \
                and route.path.startswith("/api/"):
            paths.append(route.path.replace("{job_id}", "01234567-89ab-7def-8123-456789abcdef")
                         .replace("{action}", "retry").replace("{name}", "default")
                         .replace("{worker_id}", "w1"))
    return paths


def test_password_hash_round_trip() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "plaintext")
    assert hash_password("same") != hash_password("same")  # salted


def test_users_file_is_validated(tmp_path: Path, users_file: Path) -> None:
    loaded = load_users(users_file)
    assert loaded["alice"].role == "admin" and loaded["alice"].payloads
    assert loaded["rita"].role == "read-only" and not loaded["rita"].payloads
    bad = tmp_path / "bad.toml"
    bad.write_text('[users.bob]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="hash"):
        load_users(bad)
    bad.write_text(f'[users.bob]\npassword = "{hash_password("x")}"\nrole = "root"\n')
    with pytest.raises(ConfigError, match="role"):
        load_users(bad)


def test_pages_and_api_need_a_login(sqlite_manager: QueueManager,
                                    settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    page = client.get("/jobs")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fjobs"
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/static/core.js").status_code == 200


def test_login_sets_a_strict_httponly_cookie(sqlite_manager: QueueManager,
                                            settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "alice", "password": "alice-secret-pw",
                                         "csrf_token": token, "next": "/queues"})
    assert answer.status_code == 303 and answer.headers["location"] == "/queues"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/me").json()["name"] == "alice"
    assert csrf_of(client.get("/").text) != token  # rotated at login


@pytest.mark.parametrize("username,password", [("alice", "nope"), ("nobody", "alice-secret-pw"),
                                               ("", "not-the-token")])
def test_wrong_credentials_are_refused_and_audited(sqlite_manager: QueueManager,
                                                   settings: DashboardSettings, username: str,
                                                   password: str) -> None:
    client = client_for(sqlite_manager, settings)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": username, "password": password,
                                         "csrf_token": token})
    assert answer.status_code == 401 and "Wrong user name or password" in answer.text
    assert client.get("/api/me").status_code == 401
    entries = sqlite_manager.driver.registry_list("audit")
    assert [e["outcome"] for e in entries] == ["refused"]


def test_login_form_needs_its_csrf_token(sqlite_manager: QueueManager,
                                         settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    client.get("/login")
    answer = client.post("/login", data={"username": "alice", "password": "alice-secret-pw"})
    assert answer.status_code == 403


def test_open_redirects_are_not_followed(sqlite_manager: QueueManager,
                                         settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "alice", "password": "alice-secret-pw",
                                         "csrf_token": token, "next": "//evil.example/x"})
    assert answer.headers["location"] == "/"


def test_failed_logins_are_throttled(sqlite_manager: QueueManager,
                                     settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    token = csrf_of(client.get("/login").text)
    codes = [client.post("/login", data={"username": "alice", "password": "bad",
                                         "csrf_token": token}).status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_token_logs_in_and_works_as_bearer(sqlite_manager: QueueManager,
                                           settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "", "password": TOKEN, "csrf_token": token})
    assert answer.status_code == 303
    assert client.get("/api/me").json()["role"] == "admin"
    script = client_for(sqlite_manager, settings)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert script.get("/api/me", headers=bearer).json()["via"] == "bearer"
    assert script.get("/api/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    job = put_job(sqlite_manager)
    done = script.post(f"/api/jobs/{job.id}/retry", headers=bearer)  # no CSRF needed
    assert done.status_code == 200 and done.json()["changed"] is True


def test_every_post_without_csrf_is_refused(sqlite_manager: QueueManager,
                                            settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    csrf = login(client, "alice")
    job = put_job(sqlite_manager)
    routes = post_routes(client.app)
    assert len(routes) == 6  # bulk, job, run-now, queue, worker and schedule actions
    for path in routes:
        refused = client.post(path, json=SAMPLE)
        assert refused.status_code == 403, path
        assert "CSRF" in refused.json()["error"]
        wrong = client.post(path, json=SAMPLE, headers={"X-CSRF-Token": "x" * 40})
        assert wrong.status_code == 403, path
    assert sqlite_manager.require(job.id).state == "failed"
    ok = client.post(f"/api/jobs/{job.id}/retry", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert client.post("/logout", data={}).status_code == 403  # the form needs it too


def test_read_only_user_cannot_act(sqlite_manager: QueueManager,
                                   settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    reader = Session(client, login(client, "rita"))
    job = put_job(sqlite_manager)
    me = reader.get("/api/me").json()
    assert me["role"] == "read-only" and me["can_act"] is False
    for path in post_routes(client.app):
        answer = reader.post(path, json=SAMPLE)
        assert answer.status_code == 403, path
        assert "read-only" in answer.json()["error"]
    assert sqlite_manager.require(job.id).state == "failed"
    detail = reader.get(f"/api/jobs/{job.id}").json()
    assert "payload" not in detail and "hidden" in detail["payload_error"]
    assert reader.get("/api/jobs?args=args.0:1").status_code == 403


def test_logout_ends_the_session(sqlite_manager: QueueManager,
                                 settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    csrf = login(client, "alice")
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/api/me").status_code == 401


def test_local_mode_without_auth_is_an_admin(sqlite_manager: QueueManager) -> None:
    client = client_for(sqlite_manager, DashboardSettings())
    assert client.get("/api/me").json() == client.get("/api/me").json() | {
        "name": "local", "role": "admin", "auth": False}
    assert client.get("/login").status_code == 303
    job = put_job(sqlite_manager)
    assert client.post(f"/api/jobs/{job.id}/retry").status_code == 403  # CSRF still applies


def test_security_headers(sqlite_manager: QueueManager) -> None:
    page = client_for(sqlite_manager, DashboardSettings()).get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
