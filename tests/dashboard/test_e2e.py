"""The real dashboard in headless Chromium, against a real worker, on SQLite.

One scenario (so ``pytest -n`` keeps it in one process, with one browser, one server, one
worker): log in, watch a counter change live while the worker runs, filter jobs, bulk-retry
failed jobs and see them complete, cancel a job, pause a queue, see an XSS payload rendered
inert, get a POST without CSRF token refused, and find a read-only user unable to act.

The pictures in ``docs/images/`` are taken by ``scripts/screenshots.py``, not here.
Needs the ``playwright`` package and Debian's ``chromium`` (no browser is downloaded).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager, group
from taskqueue.dashboard import hash_password
from taskqueue.jobs.states import State
from taskqueue.scheduling import Schedule, ScheduleStore
from tests.apps.sample_tasks import add, collect
from tests.dashboard.conftest import XSS, put_job
from tests.dashboard.e2e_tasks import until_flag

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVE = ("import sys; from taskqueue.cli import cli; from taskqueue.cli.dashboard import COMMANDS;"
         " [cli.add_command(c) for c in COMMANDS]; cli(prog_name='taskqueue')")
PASSWORDS = {"alice": "alice-e2e-password", "rita": "rita-e2e-password"}
DUPLICATE_IDS = ("() => { const n = {}; for (const e of document.querySelectorAll('[id]')) "
                 "n[e.id] = (n[e.id] || 0) + 1; return Object.keys(n).filter((k) => n[k] > 1); }")


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: the end-to-end test must run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def users_file(path: Path) -> Path:
    path.write_text(
        f'[users.alice]\npassword = "{hash_password(PASSWORDS["alice"], n=2**10)}"\n'
        'role = "admin"\n\n'
        f'[users.rita]\npassword = "{hash_password(PASSWORDS["rita"], n=2**10)}"\n'
        'role = "read-only"\n')
    return path


def playwright() -> Any:
    """``sync_playwright``, or a skip (a failure under CI=true) without it or Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_playwright


def test_dashboard_end_to_end(tmp_path: Path) -> None:
    sync_playwright = playwright()
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    flag = tmp_path / "fixed"
    manager = QueueManager.from_url(url)
    seeded = seed(manager, flag, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-c", SERVE, "--url", url, "dashboard", "--port", str(port),
                  "--users", str(users_file(tmp_path / "users.toml")), "--refresh", "1"]
    worker_cmd = [sys.executable, "-m", "taskqueue", "--url", url, "work", "--queue",
                  "default,emails", "--sleep", "0.2", "--grace", "2",
                  "--app", "tests.apps.sample_tasks,tests.dashboard.e2e_tasks"]
    with process(server_cmd, tmp_path / "server.log"), \
            process(worker_cmd, tmp_path / "worker.log"), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            wait_for(lambda: _up(base), 40, "the dashboard to answer")
            errors: list[str] = []
            admin = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
            admin.set_default_timeout(15000)
            admin.on("pageerror", lambda e: errors.append(str(e)))
            admin_journey(admin, base, manager, seeded, flag)
            reader = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
            reader.set_default_timeout(15000)
            reader.on("pageerror", lambda e: errors.append(str(e)))
            read_only_journey(reader, base, manager, seeded)
            assert errors == []
        finally:
            browser.close()
            manager.close()


def _up(base: str) -> bool:
    return answers(base + "/login")


def answers(url: str) -> bool:
    """Does ``url`` answer 200 (the server is up)?"""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def seed(manager: QueueManager, flag: Path, tmp: Path) -> dict[str, Any]:
    failing = [str(until_flag.push([str(flag)], manager=manager)) for _ in range(4)]
    parked = str(manager.push(add.s(1, 1), queue="parked"))  # no worker serves it
    xss = put_job(manager, State.FAILED, name=XSS, queue="xss",
                  exception=f"Traceback (most recent call last):\nValueError: {XSS}").id
    members = group(add.s(1, 2), add.s(3, 4), add.s(5, 6), then=collect.s(), manager=manager)
    ScheduleStore(manager.driver).add(Schedule.create(
        "nightly-report", "tests.echo", every="every day at 2:30", timezone="Europe/Paris",
        args=["report"]))
    return {"failing": failing, "parked": parked, "xss": xss, "group": str(members[-1])}


def login(page: Any, base: str, name: str) -> None:
    page.goto(base + "/jobs")  # redirected to the login form
    page.wait_for_selector("#login-form")
    page.fill("#username", name)
    page.fill("#password", PASSWORDS[name])
    page.click("#login-submit")
    page.wait_for_url(base + "/jobs")
    assert page.inner_text("#whoami").startswith(name)


def counter(page: Any) -> int:
    return int(page.inner_text("#total-completed").replace(",", "") or 0)


def admin_journey(page: Any, base: str, manager: QueueManager, seeded: dict[str, Any],
                  flag: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, base, "alice")

    # 1. a counter changes live (server-sent events) while the worker runs jobs
    page.goto(base + "/")
    page.wait_for_selector("#total-completed")
    wait_for(lambda: "on" in (page.get_attribute("#live-dot", "class") or ""), 10, "live")
    wait_for(lambda: manager.require(seeded["failing"][-1]).state == State.FAILED, 40,
             "the worker to start and fail the flagged jobs")
    before = counter(page)
    for i in range(5):
        add.push([i, i], manager=manager)
    wait_for(lambda: counter(page) >= before + 5, 30, "the completed counter to rise")

    # 2. filter jobs
    page.goto(base + "/jobs")
    page.check("#f-state-failed")
    page.fill("#f-name", "e2e.until_flag")
    page.click("#search")
    wait_for(lambda: page.locator("tr.job-row").count() == 4, 10, "4 filtered rows")
    assert "state=failed" in page.url and "name=e2e.until_flag" in page.url
    page.wait_for_selector("#count:has-text('4 matching')")

    # 3. bulk-retry the failed ones (after fixing their cause) and see them complete
    page.goto(base + "/failed?name=e2e.until_flag")
    wait_for(lambda: page.locator("tr.job-row").count() == 4, 10, "4 failed rows")
    page.click("#select-all")
    # every id on the page with its bulk bar drawn is unique (the priority box and the "Set
    # priority" button both were #bulk-priority: the value was read by document order)
    assert page.evaluate(DUPLICATE_IDS) == []
    flag.touch()
    page.click("#bulk-retry")
    page.wait_for_selector(".toast:has-text('retry: 4 changed')")
    wait_for(lambda: all(manager.require(i).state == State.COMPLETED
                         for i in seeded["failing"]), 20, "the retried jobs to complete")
    page.goto(base + "/jobs?state=completed&name=e2e.until_flag")
    wait_for(lambda: page.locator("tr.job-row[data-state=completed]").count() == 4, 10,
             "4 completed rows")
    # ... and a retried job's page shows each attempt: the failure, then the completion
    page.goto(base + f"/jobs/{seeded['failing'][0]}")
    page.wait_for_selector("#job-attempts")
    attempts = page.locator("#job-attempts tbody tr").all_inner_texts()
    assert len(attempts) == 2 and "failed" in attempts[0] and "completed" in attempts[1]
    assert "RuntimeError: flag file missing" in attempts[0]
    assert page.locator("#job-exception").count() == 0, "a completed job shows no old error"

    # 4. cancel a job from its page
    page.goto(base + f"/jobs/{seeded['parked']}")
    page.click("#action-cancel")
    page.click("#confirm-ok")
    page.wait_for_selector("#job-title .badge.cancelled")
    assert manager.require(seeded["parked"]).state == State.CANCELLED
    assert "(by alice)" in (manager.require(seeded["parked"]).exception or "")

    # 5. an XSS payload in a job's name and exception is shown as text, never run
    page.goto(base + f"/jobs/{seeded['xss']}")
    page.wait_for_selector("#job-exception")
    assert XSS in page.inner_text("#job-exception") and page.inner_text("#job-name") == XSS
    page.goto(base + "/failed?queue=xss")
    wait_for(lambda: page.locator("tr.job-row").count() == 1, 10, "the xss row")
    assert page.locator("tr.job-row td.name").inner_text() == XSS
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert page.locator("main img").count() == 0

    # 6. pause a queue: its jobs wait; resume: they run
    page.goto(base + "/queues")
    page.locator("tr.queue-row[data-queue=default] button[data-action=pause]").click()
    page.wait_for_selector("tr.queue-row[data-queue=default] .badge.paused")
    assert manager.paused_queues() == ["default"]
    time.sleep(0.7)  # workers re-read the paused queues every half second
    held = str(add.push([2, 2], manager=manager))
    time.sleep(0.8)
    assert manager.require(held).state == State.PENDING
    page.locator("tr.queue-row[data-queue=default] button[data-action=resume]").click()
    wait_for(lambda: manager.require(held).state == State.COMPLETED, 15, "the held job")

    # 7. a POST without the CSRF token is refused (with the session cookie)
    status = page.evaluate("""async (id) => (await fetch('/api/jobs/bulk', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({action: 'delete', ids: [id]})})).status""", seeded["xss"])
    assert status == 403 and manager.get(seeded["xss"]) is not None

    # 8. the other pages
    page.goto(base + f"/workflows/{seeded['group']}")
    wait_for(lambda: page.locator("#workflow-graph g.node").count() == 4, 10, "4 graph nodes")
    for name, ready in (("workers", "tr.worker-row"), ("schedules", "tr.schedule-row"),
                        ("alerts", "#rules-table"), ("audit", "tr.audit-row")):
        page.goto(base + "/" + name)
        page.wait_for_selector(ready)
    actions = page.locator("tr.audit-row").all_inner_texts()
    assert any("bulk retry" in row and "\t4\t" in row for row in actions)


def read_only_journey(page: Any, base: str, manager: QueueManager,
                      seeded: dict[str, Any]) -> None:
    login(page, base, "rita")
    page.goto(base + "/failed")
    wait_for(lambda: page.locator("tr.job-row").count() >= 1, 10, "failed rows")
    assert page.locator("#bulk").is_hidden() and page.locator("input.pick").count() == 0
    page.goto(base + f"/jobs/{seeded['xss']}")
    page.wait_for_selector("#job-fields")
    assert page.locator("#job-actions button").count() == 0
    assert "hidden" in page.inner_text("#job-payload")
    page.goto(base + "/queues")
    page.wait_for_selector("tr.queue-row")
    assert page.locator("tr.queue-row button").count() == 0
    status = page.evaluate("""async (id) => (await fetch('/api/jobs/' + id + '/retry', {
        method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
        document.querySelector('meta[name=csrf-token]').content}, body: '{}'})).status""",
                           seeded["xss"])
    assert status == 403 and manager.require(seeded["xss"]).state == State.FAILED
