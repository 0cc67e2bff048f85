"""Trust holes of issue 18 (items 1-4 and 6), each reproduced first: DNS rebinding in local
mode, sessions that outlived logout, a users file read only at start, gaps in the audit log, and
a health check for load balancers that needed a login."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from taskqueue import QueueManager
from taskqueue.dashboard import DashboardSettings, hash_password
from tests.dashboard.conftest import PASSWORDS, TOKEN, client_for, csrf_of, login

ATTACKER = {"Host": "attacker.example:8080"}


@pytest.fixture
def sqlite_manager(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = QueueManager.from_url(f"sqlite:///{tmp_path / 'queue.db'}")
    yield m
    m.close()


# -- 1. DNS rebinding ---------------------------------------------------------------------------

def test_local_mode_answers_only_to_loopback_host_names(sqlite_manager: QueueManager) -> None:
    client = client_for(sqlite_manager, DashboardSettings(secret_key="k"))
    assert client.get("/api/me", headers=ATTACKER).status_code == 400
    assert client.get("/jobs", headers=ATTACKER).status_code == 400
    page = client.get("/jobs")
    csrf = csrf_of(page.text)
    refused = client.post("/api/queues/default/pause", headers={**ATTACKER,
                                                                "X-CSRF-Token": csrf})
    assert refused.status_code == 400
    assert sqlite_manager.paused_queues() == []
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2"):
        assert client.get("/api/me", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_admit_a_proxy_name(sqlite_manager: QueueManager) -> None:
    settings = DashboardSettings(secret_key="k", allowed_hosts=("dash.example.com",
                                                                "*.internal.example"))
    client = client_for(sqlite_manager, settings)
    for host in ("dash.example.com", "a.internal.example:443"):
        assert client.get("/api/me", headers={"Host": host}).status_code == 200, host
    assert client.get("/api/me", headers={"Host": "evil.example"}).status_code == 400


def test_with_authentication_any_host_reaches_the_login(sqlite_manager: QueueManager,
                                                        settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    assert client.get("/api/me", headers=ATTACKER).status_code == 401  # not 400: auth decides


# -- 2. logout ends the session ----------------------------------------------------------------

def test_a_cookie_saved_before_logout_no_longer_works(sqlite_manager: QueueManager,
                                                      settings: DashboardSettings) -> None:
    client = client_for(sqlite_manager, settings)
    csrf = login(client, "alice")
    saved = dict(client.cookies)
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303

    replay = client_for(sqlite_manager, settings)
    replay.cookies.update(saved)
    assert replay.get("/api/me").status_code == 401
    acted = replay.post("/api/queues/default/pause", headers={"X-CSRF-Token": csrf})
    assert acted.status_code == 401
    assert sqlite_manager.paused_queues() == []


def test_logout_on_one_dashboard_process_ends_the_session_on_another(
        sqlite_manager: QueueManager, settings: DashboardSettings) -> None:
    first, second = client_for(sqlite_manager, settings), client_for(sqlite_manager, settings)
    csrf = login(first, "alice")
    second.cookies.update(dict(first.cookies))
    assert second.get("/api/me").status_code == 200
    first.post("/logout", data={"csrf_token": csrf})
    deadline = time.monotonic() + 10  # the other process re-reads the sessions every second
    while second.get("/api/me").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert second.get("/api/me").status_code == 401


# -- 3. the users file is re-read --------------------------------------------------------------

def users_toml(path: Path, **roles: str) -> None:
    path.write_text("".join(
        f'[users.{name}]\npassword = "{hash_password(PASSWORDS[name], n=2**10)}"\n'
        f'role = "{role}"\n' for name, role in roles.items()))


def test_demoting_and_removing_a_user_takes_effect_without_a_restart(
        sqlite_manager: QueueManager, tmp_path: Path) -> None:
    from taskqueue.dashboard.auth import load_users

    path = tmp_path / "users.toml"
    users_toml(path, alice="admin", rita="admin")
    settings = DashboardSettings(users=load_users(path), users_file=path, secret_key="k")
    alice, rita = client_for(sqlite_manager, settings), client_for(sqlite_manager, settings)
    alice_csrf, rita_csrf = login(alice, "alice"), login(rita, "rita")
    assert rita.get("/api/me").json()["role"] == "admin"

    time.sleep(1.1)  # a new mtime; the file is looked at once a second at most
    users_toml(path, alice="read-only")
    time.sleep(1.1)
    assert alice.get("/api/me").json()["role"] == "read-only"
    demoted = alice.post("/api/queues/default/pause", headers={"X-CSRF-Token": alice_csrf})
    assert demoted.status_code == 403
    assert rita.get("/api/me").status_code == 401, "a removed user's session ended"
    assert rita.post("/api/queues/default/pause",
                     headers={"X-CSRF-Token": rita_csrf}).status_code == 401
    again = client_for(sqlite_manager, settings)
    page = again.get("/login")
    answer = again.post("/login", data={"username": "rita", "password": PASSWORDS["rita"],
                                        "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 401, "a removed user cannot log in"


# -- 4. the audit log sees refusals, logouts and which token -----------------------------------

def test_refusals_logouts_and_tokens_are_audited(sqlite_manager: QueueManager,
                                                 settings: DashboardSettings) -> None:
    rita = client_for(sqlite_manager, settings)
    csrf = login(rita, "rita")
    assert rita.post("/api/queues/default/pause",
                     headers={"X-CSRF-Token": csrf}).status_code == 403
    rita.post("/logout", data={"csrf_token": csrf})
    stranger = client_for(sqlite_manager, settings)
    assert stranger.get("/api/jobs", headers={"Authorization": "Bearer not-it"}
                        ).status_code == 401
    robot = client_for(sqlite_manager, settings)
    assert robot.post("/api/queues/default/pause",
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

    admin = client_for(sqlite_manager, settings)
    login(admin, "alice")
    entries = admin.get("/api/audit").json()["entries"]
    seen = {(e["actor"], e["action"], e["outcome"]) for e in entries}
    assert ("rita", "request", "refused") in seen
    assert ("rita", "logout", "ok") in seen
    assert ("(bearer token)", "request", "refused") in seen
    token_actors = {e["actor"] for e in entries if e["actor"].startswith("token:")}
    assert len(token_actors) == 1
    (name,) = token_actors
    assert name.startswith("token:admin:") and TOKEN not in name


# -- 6. health for load balancers --------------------------------------------------------------

def test_liveness_and_readiness_need_no_login_and_carry_the_verdict_in_the_status(
        sqlite_manager: QueueManager, settings: DashboardSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from taskqueue.errors import DriverUnavailable

    client = client_for(sqlite_manager, settings)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/health").status_code == 401, "the detailed report needs a login"
    login(client, "alice")
    report = client.get("/api/health")
    assert report.status_code == (503 if report.json()["status"] == "fail" else 200)

    def down(job_id: str) -> None:
        raise DriverUnavailable("store is down")

    monkeypatch.setattr(sqlite_manager.driver, "get", down)
    anonymous = client_for(sqlite_manager, replace(settings))
    answer = anonymous.get("/readyz")
    assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
    assert anonymous.get("/healthz").status_code == 200


# -- 5. no accidental action on everything -----------------------------------------------------

def test_an_unfiltered_bulk_action_needs_all_true(sqlite_manager: QueueManager,
                                                  settings: DashboardSettings) -> None:
    from taskqueue import TestJob

    ids = sqlite_manager.push_many([TestJob({"n": i}) for i in range(3)])
    for job_id in ids:
        sqlite_manager.cancel(job_id)
    client = client_for(sqlite_manager, settings)
    csrf = login(client, "alice")
    refused = client.post("/api/jobs/bulk", json={"action": "retry", "filter": {}},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 400 and '"all": true' in refused.json()["error"]
    assert {sqlite_manager.get(i).state.value for i in ids} == {"cancelled"}  # type: ignore
    started = client.post("/api/jobs/bulk", json={"action": "retry", "filter": {},
                                                  "all": True},
                          headers={"X-CSRF-Token": csrf})
    assert started.status_code == 202
    op_id = started.json()["operation"]["id"]
    deadline = time.monotonic() + 30
    while not client.get(f"/api/operations/{op_id}").json()["done"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert {sqlite_manager.get(i).state.value for i in ids} == {"pending"}  # type: ignore
