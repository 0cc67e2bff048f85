#!/usr/bin/env python3
"""Fresh screenshots of every dashboard page, with a small shop's realistic data.

    python scripts/screenshots.py                     # into docs/images/
    python scripts/screenshots.py --out /tmp/shots    # somewhere else, to compare first

Run from the repository root. Needs the ``playwright`` package and Debian's ``chromium``
(``/usr/bin/chromium``; no browser is downloaded). It is not collected by pytest.

What it builds, in a temporary SQLite store: seven days of per-task statistics (rolled up as the
workers' recorders would), a few hundred jobs of ``tests/apps/demo_tasks.py`` across five queues
with tags and priorities, run by a real ``taskqueue work`` (so failures have real tracebacks and
attempt histories: declined cards, a timing-out payment provider, a flaky SMTP server, a
partner's webhook waiting for its next retry), jobs scheduled for later, a paused queue, a
300-member group with its callback, three schedules, alert rules evaluated once by
``taskqueue alerts:check`` (one channel delivers, one cannot), and a few audited actions. The
worker keeps running and a producer keeps pushing while the pages are taken, so the live views
move. Every page is shot at 1360x860 (the long ones in full); look at them before committing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.apps import demo_tasks as shop  # noqa: E402

from taskqueue import QueueManager, group  # noqa: E402
from taskqueue.dashboard import hash_password  # noqa: E402
from taskqueue.observability.stats import KIND, TaskStats, bucket_index  # noqa: E402
from taskqueue.observability.stats_rollup import (  # noqa: E402
    DETAIL_KIND,
    DETAIL_RETENTION,
    HOUR_KIND,
    HOUR_RETENTION,
)
from taskqueue.scheduling import Schedule, ScheduleStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVE = ("import sys; from taskqueue.cli import cli; from taskqueue.cli.dashboard import COMMANDS;"
         " [cli.add_command(c) for c in COMMANDS]; cli(prog_name='taskqueue')")
QUEUES = "emails,images,billing,webhooks,reports"
PASSWORD = "screenshots-password"
#: task -> (queue, jobs per minute at the daily peak, typical run time s, failure share)
HISTORY = {"emails.send_welcome": ("emails", 120, 0.08, 0.01),
           "images.resize": ("images", 45, 0.45, 0.004),
           "billing.charge": ("billing", 25, 0.25, 0.05),
           "webhooks.deliver": ("webhooks", 35, 0.12, 0.03),
           "reports.build": ("reports", 0.3, 1.1, 0.0)}
ALERTS = """\
cooldown = "5m"

[[channels]]
name = "ops-log"
type = "log"

[[channels]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9/taskqueue-alerts"
retries = 0

[[rules]]
name = "billing failures"
kind = "failure_rate"
queue = "billing"
threshold = 5
window = "1h"
min_jobs = 10
severity = "critical"

[[rules]]
kind = "dead_letter"
window = "1h"
threshold = 5
severity = "warning"
channels = ["ops-log"]

[[rules]]
name = "exports backlog"
kind = "queue_depth"
queue = "exports"
threshold = 20

[[rules]]
kind = "no_worker"
"""


def log(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


# -- data ---------------------------------------------------------------------------------------

def seed_history(manager: QueueManager, now: float, days: int = 7) -> None:
    """Seven days of per-task statistics stored as the workers' recorders and their rollup
    would have left them: hour buckets for the week, 5-minute buckets for the last six hours,
    and the last hour as one recorder's raw minutes (the running worker folds those). A daily
    rhythm (quiet nights) and a bad hour for billing yesterday."""
    rng = random.Random(7)
    live_from = int(now // 60) - 60
    hours: dict[int, dict[tuple[str, str], TaskStats]] = {}
    detail: dict[int, dict[int, dict[tuple[str, str], TaskStats]]] = {}
    raw: dict[int, dict[tuple[str, str], TaskStats]] = {}
    for minute in range(int((now - days * 86400) // 60), int(now // 60)):
        for task, (queue, peak, run, failing) in HISTORY.items():
            figures = _minute_of(rng, task, minute * 60.0, now, peak, run, failing)
            if figures is None:
                continue
            if minute >= live_from:
                raw.setdefault(minute, {})[(queue, task)] = figures
                continue
            hours.setdefault(minute // 60, {}).setdefault((queue, task), TaskStats()).merge(
                figures)
            if minute * 60 >= now - DETAIL_RETENTION:
                detail.setdefault(minute // 60, {}).setdefault(minute // 5 * 5, {}).setdefault(
                    (queue, task), TaskStats()).merge(figures)
    for minute, cells in raw.items():
        manager.driver.registry_put(KIND, f"{minute}:seed", {
            "v": 1, "minute": minute, "source": "seed", "queues": _nested(cells)},
            ttl_seconds=3600)
    for hour, cells in hours.items():
        through = min(hour * 60 + 59, live_from - 1)
        manager.driver.registry_put(HOUR_KIND, str(hour), {
            "v": 1, "hour": hour, "through": through, "queues": _nested(cells)},
            ttl_seconds=HOUR_RETENTION)
        if hour in detail:
            manager.driver.registry_put(DETAIL_KIND, str(hour), {
                "v": 1, "hour": hour, "through": through,
                "buckets": {str(m): _nested(c) for m, c in detail[hour].items()}},
                ttl_seconds=DETAIL_RETENTION)


def _minute_of(rng: random.Random, task: str, at: float, now: float, peak: float, run: float,
               failing: float) -> TaskStats | None:
    """One minute of one task: counts, and histograms from a few weighted samples."""
    local = time.localtime(at)
    rhythm = 0.12 + 0.88 * max(0.0, math.sin((local.tm_hour + local.tm_min / 60 - 6) / 16
                                             * math.pi))
    bad = task == "billing.charge" and 86400 - 3600 < now - at < 86400
    n = _poisson(rng, peak * rhythm)
    if n == 0:
        return None
    failed = sum(rng.random() < (0.35 if bad else failing) for _ in range(n))
    figures = TaskStats({"enqueued": n, "completed": n - failed, "failed": failed})
    samples = min(n, 5)
    for i in range(samples):
        weight = n // samples + (1 if i < n % samples else 0)
        for histogram, seconds in ((figures.run, run * rng.lognormvariate(0, 0.45)
                                    * (5 if bad else 1)),
                                   (figures.wait, 0.02 * rng.lognormvariate(0, 1.2))):
            index = bucket_index(seconds)
            histogram.buckets[index] = histogram.buckets.get(index, 0) + weight
            histogram.total += seconds * weight
            histogram.low, histogram.high = min(histogram.low, seconds), max(histogram.high,
                                                                             seconds)
    return figures


def _nested(cells: dict[tuple[str, str], TaskStats]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for (queue, task), figures in cells.items():
        out.setdefault(queue, {})[task] = figures.to_json()
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def seed_jobs(manager: QueueManager) -> dict[str, Any]:
    rng = random.Random(11)
    push = manager.push
    for user in range(1000, 1180):
        push(shop.send_welcome.s(user, template=rng.choice(["welcome", "welcome-b"])),
             tags=[f"campaign:{rng.choice(['winter', 'spring'])}"])
    for customer in range(40, 130):
        push(shop.charge.s(customer, rng.randrange(900, 25000)), tags=[f"customer:{customer}"],
             priority=10 if customer % 5 == 0 else 5)
    for n in range(40):
        endpoint = f"https://{'partner-b' if n % 4 == 0 else 'partner-a'}.example/hooks"
        push(shop.deliver.s(endpoint, rng.choice(["order.paid", "order.shipped"])))
    for image in range(5000, 5060):
        push(shop.resize.s(image, width=rng.choice([320, 800, 1600])), priority=3)
    for days in range(1, 8):
        push(shop.build_report.s(f"2026-12-{7 + days:02d}", kind="sales"), delay=days * 5400,
             tags=["nightly"])
    for user in range(2000, 2010):
        push(shop.send_welcome.s(user, template="reminder"), delay=600 + user % 7 * 900,
             tags=["campaign:winter"])
    for n in range(32):
        push(shop.build_report.s(f"export-{n}", kind="csv-export"), queue="exports")
    manager.pause_queue("exports")
    return {}


def seed_schedules(manager: QueueManager) -> None:
    store = ScheduleStore(manager.driver)
    store.add(Schedule.create("nightly-sales-report", shop.build_report,
                              every="every day at 2:30", timezone="Europe/Paris",
                              args=["yesterday"]))
    store.add(Schedule.create("hourly-partner-sync", shop.deliver, cron="5 * * * *",
                              args=["https://partner-a.example/hooks", "catalog.sync"]))
    store.add(Schedule.create("weekly-digest", shop.send_welcome, every="every monday at 9:00",
                              timezone="America/New_York", args=[0],
                              kwargs={"template": "digest"}, missed="once"))


# -- processes ----------------------------------------------------------------------------------

@contextlib.contextmanager
def process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what} (see the logs of --keep DIR)")
        time.sleep(0.2)
    return value


def answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def producer(manager_url: str, stop: threading.Event) -> None:
    """A trickle of new work while the pages are taken, so live views move."""
    manager = QueueManager.from_url(manager_url)
    rng, user = random.Random(3), 3000
    try:
        while not stop.wait(0.4):
            user += 1
            manager.push(shop.send_welcome.s(user), tags=["campaign:winter"])
            if user % 3 == 0:
                manager.push(shop.resize.s(user, width=800), priority=3)
            if user % 5 == 0:
                manager.push(shop.charge.s(user, rng.randrange(900, 9000)),
                             tags=[f"customer:{user}"])
    finally:
        manager.close()


# -- pictures -----------------------------------------------------------------------------------

class Camera:
    def __init__(self, page: Any, base: str, out: Path) -> None:
        self.page, self.base, self.out = page, base, out
        self.taken: list[str] = []

    def visit(self, path: str, ready: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(ready)
        self.page.wait_for_timeout(700)  # charts and counts drawn, the live dot lit

    def shot(self, name: str, *, full_page: bool = False, element: str | None = None) -> None:
        path = self.out / f"{name}.png"
        if element is not None:
            self.page.locator(element).screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(name)
        log(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    def act(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        """An action through the API with the page's session and CSRF token (audited)."""
        token = self.page.get_attribute('meta[name="csrf-token"]', "content")
        answer = self.page.request.fetch(self.base + path, method=method, data=body or {},
                                         headers={"X-CSRF-Token": token or ""})
        if not answer.ok:
            raise SystemExit(f"{method} {path}: {answer.status} {answer.text()}")


def take(camera: Camera, manager: QueueManager, seeded: dict[str, Any]) -> None:
    page = camera.page
    camera.visit("/login?next=/", "#login-form")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    camera.shot("login")
    page.click("#login-submit")
    page.wait_for_selector("#whoami")
    camera.visit("/", "#chart svg polyline")
    camera.shot("overview")
    camera.act("POST", "/api/jobs/bulk", {"action": "priority", "priority": 8,
                                          "filter": {"queue": "exports", "state": "pending"}})
    camera.visit("/queues", "tr.queue-row")
    camera.shot("queues")
    camera.visit("/jobs", "tr.job-row")
    camera.shot("jobs")
    camera.visit("/failed", "tr.group-row")
    camera.shot("failed")
    camera.shot("failed-groups", element="section.panel:has(#failure-groups)")
    camera.act("POST", "/api/jobs/bulk", {"action": "retry", "filter": {
        "state": "failed", "error": "smtp.mailhost.example closed the connection"}})
    job_id = _a_failed_charge(manager)
    camera.act("POST", f"/api/jobs/{job_id}/retry")
    wait_for(lambda: manager.require(job_id).state.value == "failed"
             and manager.require(job_id).attempts >= 3, 30, "the retried charge to fail again")
    camera.visit(f"/jobs/{job_id}", "#job-attempts")
    camera.shot("job", full_page=True)
    camera.visit("/scheduled", "tr.due-row")
    camera.shot("scheduled")
    camera.visit("/retrying", "tr.due-row")
    camera.shot("retrying")
    camera.visit("/tasks?range=24h", "tr.task-row")
    camera.shot("tasks")
    members = group(*(shop.resize.s(image, width=640) for image in range(7000, 7300)),
                    then=shop.summarize.s(), manager=manager)  # caught half way through
    wait_for(lambda: manager.stats()["queues"]["images"]["completed"] > seeded["images"] + 60,
             120, "part of the group to run")
    camera.visit(f"/workflows/{members[-1]}", "#workflow-graph g.node.group")
    camera.shot("workflow")
    camera.visit("/workers", "tr.worker-row")
    camera.shot("workers")
    camera.visit("/schedules", "tr.schedule-row")
    camera.shot("schedules")
    camera.visit("/alerts", "#rules-table")
    camera.shot("alerts", full_page=True)
    refused_action(camera)
    camera.visit("/audit", "tr.audit-row")
    camera.shot("audit")


def refused_action(camera: Camera) -> None:
    """The read-only user logs in and tries to pause a queue: refused, and audited."""
    page = camera.page.context.browser.new_context().new_page()
    page.goto(camera.base + "/login")
    page.fill("#username", "rita")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#whoami")
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    answer = page.request.post(camera.base + "/api/queues/emails/pause", data={},
                               headers={"X-CSRF-Token": token or ""})
    assert answer.status == 403, answer.status
    page.context.close()


def _a_failed_charge(manager: QueueManager) -> str:
    from taskqueue.drivers.base import JobFilter
    from taskqueue.jobs.states import State

    found = manager.search(JobFilter(states=(State.FAILED,), names=("billing.charge",),
                                     exception_contains="TimeoutError", limit=1))
    if not found:
        raise SystemExit("no failed charge to show on the job page")
    return found[0].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="Build the store and logs in DIR and keep them (default: a "
                             "temporary directory).")
    options = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("pip install playwright (the browser is Debian's chromium)") from None
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    options.out.mkdir(parents=True, exist_ok=True)
    if options.keep is not None:
        options.keep.mkdir(parents=True, exist_ok=True)
        shoot(options.keep.resolve(), options.out.resolve(), options.port, sync_playwright)
        return
    with tempfile.TemporaryDirectory(prefix="tq-shots-") as tmp:
        shoot(Path(tmp), options.out.resolve(), options.port, sync_playwright)


def shoot(tmp: Path, out: Path, port: int, sync_playwright: Any) -> None:
    url = f"sqlite:///{tmp / 'shop.db'}"
    manager = QueueManager.from_url(url)
    log("seeding seven days of statistics")
    seed_history(manager, time.time())
    seed_schedules(manager)
    log("pushing jobs")
    seeded = seed_jobs(manager)
    users = tmp / "users.toml"
    users.write_text(f'[users.alice]\npassword = "{hash_password(PASSWORD, n=2**10)}"\n'
                     'role = "admin"\n\n'
                     f'[users.rita]\npassword = "{hash_password(PASSWORD, n=2**10)}"\n'
                     'role = "read-only"\n')
    alerts = tmp / "alerts.toml"
    alerts.write_text(ALERTS)
    python = [sys.executable, "-m", "taskqueue", "--url", url]
    worker = [*python, "work", "--workers", "2", "--queue", QUEUES,
              "--app", "tests.apps.demo_tasks"]
    server = [sys.executable, "-c", SERVE, "--url", url, "dashboard", "--port", str(port),
              "--users", str(users), "--alerts", str(alerts), "--refresh", "1",
              "--app", "tests.apps.demo_tasks"]
    stop = threading.Event()
    with process(worker, tmp / "worker.log"), process(server, tmp / "server.log"):
        log("running the worker until the first jobs are settled")
        wait_for(lambda: manager.stats()["totals"]["completed"] > 300, 300, "completions")
        wait_for(lambda: manager.stats()["totals"]["failed"] >= 12, 120, "failures")
        seeded["images"] = manager.stats()["queues"]["images"]["completed"]
        subprocess.run([*python, "alerts:check", "--config", str(alerts)], cwd=ROOT,
                       capture_output=True, env={**os.environ,
                                                 "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"})
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, "the dashboard")
        feeder = threading.Thread(target=producer, args=(url, stop), daemon=True)
        feeder.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
                page.set_default_timeout(30000)
                camera = Camera(page, f"http://127.0.0.1:{port}", out)
                take(camera, manager, seeded)
            finally:
                browser.close()
                stop.set()
                feeder.join(timeout=5)
    manager.close()
    log(f"{len(camera.taken)} pictures: {', '.join(camera.taken)}")


if __name__ == "__main__":
    main()
