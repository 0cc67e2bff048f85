"""The JSON API for everything but single jobs: overview, charts, queues, workers, schedules,
alerts, the audit log, health and the caller's own identity."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskqueue.dashboard import bulk, system
from taskqueue.dashboard.actions import action_table, bulk_applier
from taskqueue.dashboard.overview import minute_series
from taskqueue.dashboard.query import JobQuery
from taskqueue.dashboard.web import admin, board, body, ok, who
from taskqueue.jobs.states import State
from taskqueue.observability import stats_tasks
from taskqueue.observability.stats import History

PURGE_STATES = (State.PENDING, State.RETRYING)


async def me(request: Request) -> Response:
    principal = who(request)
    dash = board(request)
    return ok({**principal.to_dict(), "auth": dash.settings.auth_enabled,
               "backend": dash.manager.driver.name, "actions": action_table()})


async def overview(request: Request) -> Response:
    """The same snapshot the live stream sends (computed at most once per interval)."""
    who(request)
    return ok(await request.app.state.live.current())


async def series(request: Request) -> Response:
    who(request)
    dash = board(request)
    span = request.query_params.get("range", "hour")
    if span == "day":
        return ok({"range": "day", "bucket": 900,
                   "points": await run_in_threadpool(dash.day.load, 15)})
    if span != "hour":
        raise HTTPException(400, "range must be hour or day")
    history = await run_in_threadpool(History.load, dash.manager.driver)
    return ok({"range": "hour", "bucket": 60, "points": minute_series(history, 60)})


async def task_metrics(request: Request) -> Response:
    """Per-task throughput, failure rate and run/wait time percentiles over a range, with a
    series per step (minutes up to 6 h, hours beyond; see ``stats_tasks``)."""
    who(request)
    dash = board(request)
    params = request.query_params
    try:
        data = await run_in_threadpool(
            stats_tasks.task_metrics, dash.manager.driver, params.get("range", "24h"),
            queue=params.get("queue") or None, name=params.get("name") or None)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return ok(data)


async def queues(request: Request) -> Response:
    who(request)
    dash = board(request)
    data = await request.app.state.live.current()
    limits = await run_in_threadpool(system.limits, dash.manager)
    queues = [{**q, "limits": limits.get(q["name"])} for q in data["queues"]]  # shared cache
    return ok({"queues": queues, "generated_at": data["generated_at"]})


async def queue_action(request: Request) -> Response:
    principal = admin(request)
    dash = board(request)
    name, action = request.path_params["name"], request.path_params["action"]
    data = await body(request)
    target = f"queue:{name}"
    if action == "pause":
        await run_in_threadpool(dash.manager.pause_queue, name)
    elif action == "resume":
        await run_in_threadpool(dash.manager.resume_queue, name)
    elif action == "limits":
        concurrency = data.get("concurrency")
        if concurrency not in (None, "") and not str(concurrency).isdigit():
            raise HTTPException(400, "concurrency must be a positive whole number")
        result = await run_in_threadpool(system.set_limits, dash.manager, name,
                                         data.get("rate") or None,
                                         int(concurrency) if concurrency not in (None, "")
                                         else None)
        await dash.arecord(principal, request, "queue limits", target, detail=result)
        return ok({"queue": name, "limits": result})
    elif action == "purge":
        return await _purge(request, name, data)
    else:
        raise HTTPException(404, f"unknown queue action {action!r}")
    await dash.arecord(principal, request, f"queue {action}", target)
    return ok({"queue": name, "paused": name in dash.manager.paused_queues()})


async def _purge(request: Request, name: str, data: dict[str, Any]) -> Response:
    """Delete the queue's waiting jobs (or those in ``states``); ``confirm`` must repeat the
    queue name. Runs as a background operation."""
    principal = admin(request)
    dash = board(request)
    if data.get("confirm") != name:
        raise HTTPException(400, f"to purge, send confirm={name!r} (the queue name)")
    states = data.get("states") or [s.value for s in PURGE_STATES]
    query = JobQuery.from_params({"queue": name, "state": states}, 500)
    apply = bulk_applier(dash.manager, "delete", principal.name)

    def done(op: bulk.Operation) -> None:
        dash.record(principal, request, "queue purge", f"queue:{name}",
                    count=op.outcome.changed, outcome="error: " + op.error if op.error else "ok",
                    detail={"states": states, "operation": op.id})

    op = dash.operations.start(dash.manager.search, query, "delete", apply, principal.name, done,
                               nodes=dash.manager.driver.graph_nodes)
    return ok({"operation": op.to_dict()}, status=202)


async def workers(request: Request) -> Response:
    who(request)
    return ok({"workers": await run_in_threadpool(system.workers, board(request).manager)})


async def worker_action(request: Request) -> Response:
    principal = admin(request)
    dash = board(request)
    worker_id, action = request.path_params["worker_id"], request.path_params["action"]
    try:
        message = await run_in_threadpool(system.control_worker, dash.manager, worker_id, action,
                                          f"dashboard ({principal.name})")
    except system.ActionRefused as exc:
        await dash.arecord(principal, request, f"worker {action}", f"worker:{worker_id}",
                           outcome=f"refused: {exc}")
        raise
    await dash.arecord(principal, request, f"worker {action}", f"worker:{worker_id}",
                       detail={"result": message})
    return ok({"worker": worker_id, "result": message})


async def schedules(request: Request) -> Response:
    who(request)
    return ok({"schedules": await run_in_threadpool(system.schedules, board(request).manager)})


async def schedule_action(request: Request) -> Response:
    principal = admin(request)
    dash = board(request)
    name, action = request.path_params["name"], request.path_params["action"]
    result = await run_in_threadpool(system.schedule_action, dash.manager, name, action)
    await dash.arecord(principal, request, f"schedule {action}", f"schedule:{name}",
                       count=1 if action == "run" else 0,
                       detail={"job_id": result["job_id"]} if "job_id" in result else None)
    return ok({"schedule": result})


async def alerts(request: Request) -> Response:
    who(request)
    dash = board(request)
    s = dash.settings
    return ok(await run_in_threadpool(system.alerts, dash.manager, s.alerts, s.alerts_source,
                                      s.alerts_error))


async def audit(request: Request) -> Response:
    who(request)
    params = request.query_params
    try:
        limit = min(1000, max(1, int(params.get("limit", "200"))))
    except ValueError:
        raise HTTPException(400, "limit must be a number") from None
    entries = await run_in_threadpool(board(request).audit.entries, limit=limit,
                                      actor=params.get("actor") or None,
                                      action=params.get("action") or None,
                                      target=params.get("target") or None)
    return ok({"entries": entries})


async def health(request: Request) -> Response:
    """The detailed report (behind login); its status code carries the verdict too."""
    who(request)
    report = await run_in_threadpool(system.health_report, board(request).manager)
    return ok(report, status=200 if report.get("status") != "fail" else 503)


async def live(request: Request) -> Response:
    """Liveness for a load balancer or Kubernetes: this process answers. No login, no store."""
    return ok({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the store answers a point lookup (200), or not (503). No login."""
    try:
        await run_in_threadpool(board(request).manager.driver.get, "readiness-probe")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return ok({"status": "unavailable", "error": type(exc).__name__}, status=503)
    return ok({"status": "ready"})


ROUTES = [
    Route("/api/me", me),
    Route("/api/overview", overview),
    Route("/api/series", series),
    Route("/api/tasks/metrics", task_metrics),
    Route("/api/queues", queues),
    Route("/api/queues/{name}/{action}", queue_action, methods=["POST"]),
    Route("/api/workers", workers),
    Route("/api/workers/{worker_id}/{action}", worker_action, methods=["POST"]),
    Route("/api/schedules", schedules),
    Route("/api/schedules/{name}/{action}", schedule_action, methods=["POST"]),
    Route("/api/alerts", alerts),
    Route("/api/audit", audit),
    Route("/api/health", health),
    Route("/healthz", live),
    Route("/readyz", ready),
]
