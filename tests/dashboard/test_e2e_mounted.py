"""The dashboard mounted under ``/taskqueue`` in a FastAPI app, served by uvicorn, driven in
headless Chromium: the login redirect, the pages, their scripts and styles, the API calls and
the live updates all stay under the prefix, and nothing fails to load. Along the way, the graph
of a DAG whose last node was pushed 10,000 jobs after the others shows whole."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager
from taskqueue.jobs.states import State
from tests.dashboard.conftest import put_job
from tests.dashboard.test_e2e import (
    ARGS,
    CHROMIUM,
    PASSWORDS,
    answers,
    free_port,
    playwright,
    process,
    users_file,
    wait_for,
)
from tests.dashboard.test_graph import spread_dag


def test_mounted_dashboard_in_a_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync_playwright = playwright()
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    manager = QueueManager.from_url(url)
    failed = put_job(manager, State.FAILED, name="app.mounted", queue="mounted")
    dag = spread_dag(manager)
    port = free_port()
    root, base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/taskqueue"
    monkeypatch.setenv("TASKQUEUE_URL", url)  # read by the server process (mounted_app)
    monkeypatch.setenv("MOUNTED_USERS", str(users_file(tmp_path / "u.toml")))
    server = [sys.executable, "-m", "uvicorn", "tests.dashboard.mounted_app:app",
              "--port", str(port), "--log-level", "warning"]
    try:
        with process(server, tmp_path / "server.log"), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                wait_for(lambda: answers(base + "/login"), 40, "the mounted dashboard to answer")
                page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
                page.set_default_timeout(15000)
                errors: list[str] = []
                outside: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                        if r.status >= 400 else None)
                page.on("request", lambda r: outside.append(r.url)
                        if r.url.startswith(root) and not r.url.startswith(base + "/") else None)
                journey(page, base, manager, str(failed.id))
                bulk_dialog(page, base, manager)
                grouped_failures(page, base, manager)
                scheduled_run_now(page, base, manager)
                whole_graph(page, base, dag)
                assert errors == [] and outside == []
            finally:
                browser.close()
    finally:
        manager.close()


def journey(page: Any, base: str, manager: QueueManager, failed: str) -> None:
    page.goto(base + "/failed")  # redirected to the mounted login form
    page.wait_for_selector("#login-form")
    assert page.url.startswith(base + "/login?next=")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORDS["alice"])
    page.click("#login-submit")
    page.wait_for_url(base + "/failed")
    # the list is drawn by the script from the API under the prefix
    wait_for(lambda: page.locator("tr.job-row").count() == 1, 10, "the failed row")
    page.click(f"tr.job-row a[href='/taskqueue/jobs/{failed}']")
    page.wait_for_url(base + f"/jobs/{failed}")
    page.click("#action-retry")
    wait_for(lambda: manager.require(failed).state == State.PENDING, 10, "the retry")
    # navigation links and the live updates (server-sent events) work under the prefix
    page.click("#nav-overview")
    page.wait_for_url(base + "/")
    wait_for(lambda: "on" in (page.get_attribute("#live-dot", "class") or ""), 10, "live")
    page.wait_for_selector("#total-pending")
    wait_for(lambda: page.inner_text("#total-pending").strip() == "10,005", 10, "pending")


def bulk_dialog(page: Any, base: str, manager: QueueManager) -> None:
    """The confirm dialog names the exact count (argument and time filters applied), an
    unfiltered action needs "all" typed, and the final result line stays on the page."""
    picked = [put_job(manager, State.FAILED, queue="bulkq", body={"args": [7]}).id
              for _ in range(2)]
    put_job(manager, State.FAILED, queue="bulkq", body={"args": [8]})
    page.goto(base + "/failed?queue=bulkq&args=args.0:7&since=1h")
    wait_for(lambda: page.locator("tr.job-row").count() == 2, 10, "2 rows")
    page.click("#all-retry")
    page.wait_for_selector("#confirm-dialog")
    assert "exactly 2 jobs matching" in page.inner_text("#confirm-dialog")
    page.click("#confirm-ok")
    page.wait_for_selector("#bulk-status:has-text('retry: 2 changed')")
    wait_for(lambda: all(manager.require(i).state == State.PENDING for i in picked), 10,
             "the retried jobs")
    page.wait_for_timeout(1500)  # the list and the bar are redrawn: the line stays
    assert "retry: 2 changed, 0 skipped" in page.inner_text("#bulk-status")
    assert "done" in page.inner_text("#bulk-status")
    page.goto(base + "/jobs")  # no filter at all: the whole store
    page.wait_for_selector("#all-retry")
    page.click("#all-retry")
    page.wait_for_selector("#confirm-dialog")
    text = page.inner_text("#confirm-dialog")
    assert "EVERY job in the store whose state allows it: exactly 1 job" in text, text
    assert page.is_disabled("#confirm-ok")
    page.fill("#confirm-input", "al")
    assert page.is_disabled("#confirm-ok")
    page.fill("#confirm-input", "all")
    assert page.is_enabled("#confirm-ok")
    page.click("#confirm-dialog button:has-text('Cancel')")


def grouped_failures(page: Any, base: str, manager: QueueManager) -> None:
    """The Failed page groups failures by exception class and message pattern (ids as
    placeholders); "retry this group" retries exactly that group's jobs."""
    boom = [put_job(manager, State.FAILED, queue="grp", name=f"app.step{i % 2}",
                    exception="Traceback (most recent call last):\n"
                              f"ValueError: no customer {110 + i * 37}").id
            for i in range(3)]
    other = put_job(manager, State.FAILED, queue="grp", exception="KeyError: 'user'").id
    page.goto(base + "/failed?queue=grp")
    wait_for(lambda: page.locator("#groups-table tr.group-row").count() == 2, 10, "2 groups")
    first = page.locator("#groups-table tr.group-row").first
    assert first.locator("td").nth(0).inner_text() == "3"
    assert first.locator("td").nth(1).inner_text() == "ValueError"
    assert first.locator("td").nth(2).inner_text().splitlines() == [
        "no customer <n>", "e.g. ValueError: no customer 184"]
    first.locator("button:has-text('Retry this group')").click()
    page.wait_for_selector("#confirm-dialog:has-text('Retry 3 failed jobs')")
    page.click("#confirm-ok")
    wait_for(lambda: all(manager.require(i).state == State.PENDING for i in boom), 10,
             "the group's jobs to be retried")
    assert manager.require(other).state == State.FAILED
    page.wait_for_selector("#bulk-status:has-text('3 changed')")
    wait_for(lambda: page.locator("#groups-table tr.group-row").count() == 1, 10, "1 group")


def scheduled_run_now(page: Any, base: str, manager: QueueManager) -> None:
    """The Scheduled view lists a delayed job with its due time, relative and absolute, and
    "Run now" makes it due; the Retrying view shows a retrying job's next attempt and error."""
    from datetime import timedelta

    now = manager.driver.now()
    delayed = put_job(manager, State.PENDING, name="app.report", queue="later",
                      available_at=now + timedelta(hours=1)).id
    put_job(manager, State.RETRYING, name="app.fetch", queue="later", attempts=1,
            available_at=now + timedelta(minutes=3), exception="OSError: connection reset")
    page.goto(base + "/retrying")
    page.wait_for_selector("#due-table tr.due-row")
    row = page.inner_text("#due-table tr.due-row")
    assert "app.fetch" in row and "OSError: connection reset" in row and "in " in row, row
    page.goto(base + "/scheduled")
    row_of = f"#due-table tr.due-row[data-id='{delayed}']"
    page.wait_for_selector(row_of)
    assert page.inner_text(f"{row_of} td.due-in").startswith("in ")
    page.click(f"{row_of} button:has-text('Run now')")
    wait_for(lambda: manager.require(delayed).available_at <= manager.driver.now(), 10,
             "the job to be due")
    wait_for(lambda: page.locator(row_of).count() == 0, 10, "the row to leave the view")


def whole_graph(page: Any, base: str, dag: list[str]) -> None:
    page.goto(base + f"/workflows/{dag[0]}")
    wait_for(lambda: page.locator("#workflow-graph g.node").count() == 4, 15, "4 graph nodes")
    assert page.locator("#workflow-graph path.edge").count() == 4
    assert "cut short" not in page.inner_text("main")
    listed = page.locator("#workflow-nodes tbody a").evaluate_all("els => els.map(e => e.href)")
    assert sorted(listed) == sorted(f"{base}/jobs/{job_id}" for job_id in dag)
    page.click("#logout")
    page.wait_for_url(base + "/login")
