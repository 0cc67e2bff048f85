"""The jobs table, the Tasks page and big workflow graphs in headless Chromium (local mode, no
worker: the test itself moves jobs and writes statistics, so every change is one it made).

* live jobs table: a job pushed after the page loaded appears, and a cancel made elsewhere
  turns its badge, without a reload; arguments preview, tags, relative times; sorting by a
  column header; the "at most" count said the same in the list header and the bulk bar;
* Tasks page: per-task rows from stored statistics, a task chosen for the charts, ranges;
* a group of 300 members drawn as counted nodes, expanded by a click.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from taskqueue import QueueManager, group
from taskqueue.jobs.states import State
from tests.apps.sample_tasks import add, collect
from tests.dashboard.conftest import put_job
from tests.dashboard.test_e2e import (
    ARGS,
    CHROMIUM,
    SERVE,
    answers,
    free_port,
    playwright,
    process,
    wait_for,
)
from tests.dashboard.test_views import stats_entry


def test_jobs_table_tasks_page_and_big_graphs(tmp_path: Path) -> None:
    sync_playwright = playwright()
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    manager = QueueManager.from_url(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = [sys.executable, "-c", SERVE, "--url", url, "dashboard", "--port", str(port),
              "--refresh", "0.5", "--app", "tests.apps.sample_tasks"]
    with process(server, tmp_path / "server.log"), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            wait_for(lambda: answers(base + "/api/me"), 40, "the dashboard to answer")
            page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
            page.set_default_timeout(15000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            live_jobs_table(page, base, manager)
            counts_say_at_most_everywhere(page, base, manager)
            tasks_page(page, base, manager)
            big_graph(page, base, manager)
            assert errors == []
        finally:
            browser.close()
            manager.close()


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'tr.job-row[data-id="{job_id}"]')


def live_jobs_table(page: Any, base: str, manager: QueueManager) -> None:
    first = put_job(manager, State.PENDING, queue="live", priority=3)
    page.goto(base + "/jobs?queue=live")
    page.wait_for_selector(f'tr.job-row[data-id="{first.id}"]')
    page.wait_for_selector("#live-dot.on")  # (the page's CSP forbids wait_for_function)
    pushed = str(manager.push(add.s(20, 22), queue="live", priority=9, tags=["vip", "eu"]))
    row(page, pushed).wait_for()  # appeared without a reload
    cells = row(page, pushed)
    assert cells.locator("td.args").inner_text() == "a=20, b=22"  # named: --app imports it
    assert cells.locator("a.tag").all_inner_texts() == ["vip", "eu"]
    created = cells.locator("td.ago").first
    assert re.fullmatch(r"just now|\d+ s ago", created.inner_text())
    assert "Z)" in created.get_attribute("title")  # local time and UTC on hover
    manager.cancel(pushed, "changed elsewhere")
    page.wait_for_selector(f'tr.job-row[data-id="{pushed}"][data-state="cancelled"]')
    page.click('th[data-sort="priority"]')  # first click: highest first
    page.wait_for_selector('th.sorted[data-sort="priority"]')
    wait_for(lambda: page.locator("tr.job-row td.num").first.inner_text() == "9", 10,
             "the highest priority first")
    assert "sort=priority" in page.url
    page.click('th[data-sort="priority"]')  # second click: lowest first
    wait_for(lambda: page.locator("tr.job-row td.num").first.inner_text() == "3", 10,
             "the lowest priority first")


def counts_say_at_most_everywhere(page: Any, base: str, manager: QueueManager) -> None:
    for _ in range(3):
        put_job(manager, State.FAILED, queue="bounded")
    page.goto(base + "/jobs?queue=bounded&since=1h")  # a time range: the count is a bound
    wait_for(lambda: page.inner_text("#count").startswith("at most 3"), 10, "the list count")
    page.wait_for_selector("#all-retry")
    assert "(at most 3 jobs)" in page.inner_text("#bulk")
    page.click("#all-retry")
    dialog = page.wait_for_selector("#confirm-dialog")
    assert "exactly 3 jobs" in dialog.inner_text()  # this one applies every filter
    page.click("#confirm-dialog button:not(#confirm-ok)")


def tasks_page(page: Any, base: str, manager: QueueManager) -> None:
    minute = int(time.time() // 60)
    manager.driver.registry_put("stats", f"{minute}:e2e", stats_entry(minute, 30, 2), 3600)
    page.goto(base + "/tasks?range=1h")
    task = page.wait_for_selector('tr.task-row[data-task="app.x"]')
    assert task.query_selector_all("td")[2].inner_text() == "30"
    assert "6.3%" in task.inner_text()  # 2 failed of 32
    assert page.locator("#task-throughput svg polyline").count() >= 1
    task.click()
    wait_for(lambda: page.inner_text("#task-chart-title").startswith("app.x"), 10, "the chart")
    page.click("#range-7d")
    page.wait_for_selector("#tasks-range-note:has-text('one point per hour')")
    assert page.locator('tr.task-row[data-task="app.x"]').count() == 1


def big_graph(page: Any, base: str, manager: QueueManager) -> None:
    handles = group(*(add.s(i, i) for i in range(300)), then=collect.s(), manager=manager)
    for handle in handles[:25]:
        manager.cancel(str(handle), "test")
    page.goto(base + f"/workflows/{handles[-1]}")
    page.wait_for_selector("#workflow-graph g.node.group")
    counts = sorted(int(n) for n in page.eval_on_selector_all(
        "#workflow-graph g.node.group", "els => els.map((e) => e.dataset.count)"))
    assert counts == [25, 275]
    assert page.locator("#workflow-graph g.node").count() == 3  # two counted nodes + callback
    page.click('#workflow-graph g.node.group[data-state="cancelled"]')
    wait_for(lambda: page.locator("#workflow-graph g.node").count() == 27, 10,
             "the cancelled jobs drawn one by one")
    page.click("#graph-fold")
    wait_for(lambda: page.locator("#workflow-graph g.node").count() == 3, 10, "folded again")
