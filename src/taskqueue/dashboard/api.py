"""The JSON API for jobs: search, count, detail, graph, single and bulk actions.

Every page of the dashboard is drawn by the browser from these endpoints (and those in
:mod:`api_system`), so everything the dashboard shows or does is scriptable; the whole surface
is described at ``/api/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskqueue.dashboard import bulk, detail, due, failures, listing
from taskqueue.dashboard.actions import (
    ACTIONS,
    action_table,
    allowed_from,
    applier,
    bulk_applier,
    parse_priority,
)
from taskqueue.dashboard.auth import Principal
from taskqueue.dashboard.query import JobQuery, find_page
from taskqueue.dashboard.web import Dashboard, admin, board, body, ok, who
from taskqueue.drivers.base import Driver, EstimatesCounts, JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

EXCEPTION_PREVIEW = 300


def summary(record: JobRecord) -> dict[str, Any]:
    """A job as a row of the list (the exception cut to its last line)."""
    lines = (record.exception or "").strip().splitlines()
    last_line = lines[-1] if lines else ""
    return {"id": record.id, "name": record.name, "queue": record.queue_name,
            "state": record.state.value, "priority": record.priority,
            "attempts": record.attempts, "max_attempts": record.max_attempts,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(), "tags": list(record.tags),
            "batch_id": record.batch_id, "progress": record.progress,
            "error": last_line[:EXCEPTION_PREVIEW] or None}


def _query(request: Request, principal: Principal, params: Any = None) -> JobQuery:
    dash = board(request)
    query = JobQuery.from_params(params if params is not None else request.query_params,
                                 dash.settings.page_size)
    if query.args and not principal.payloads:
        raise HTTPException(403, "argument filters read job payloads, which your account may "
                                 "not see")
    return query


def _decoder(dash: Dashboard) -> Any:
    return dash.manager.decode


async def list_jobs(request: Request) -> Response:
    """A page of matches; ``sort``/``dir`` order it by a column (see :mod:`listing`)."""
    principal = who(request)
    dash = board(request)
    column = request.query_params.get("sort") or "created"
    if column not in listing.COLUMNS:
        raise HTTPException(400, f"sort must be one of {', '.join(listing.COLUMNS)}")
    if column == "created":
        return await _keyset_page(request, principal, dash)
    direction = request.query_params.get("dir", "desc")
    if direction not in ("asc", "desc"):
        raise HTTPException(400, "dir must be asc or desc")
    raw = request.query_params.get("cursor") or "0"
    if not raw.isdigit():
        raise HTTPException(400, "a sorted list's cursor is the offset of its next page")
    params = QueryParams([(k, v) for k, v in request.query_params.multi_items()
                          if k not in ("cursor", "sort", "dir", "order")])
    query = _query(request, principal, params=params)
    page = await run_in_threadpool(listing.sorted_page, dash.manager.driver, query, column,
                                   direction == "desc", int(raw), _decoder(dash),
                                   dash.settings.max_decode)
    rows = await run_in_threadpool(_rows, dash, page.jobs, principal.payloads)
    return ok({"jobs": rows, "next_cursor": None if page.next_offset is None
               else str(page.next_offset), "partial": False, "query": query.describe(),
               "limit": query.limit, "actions": action_table(),
               "sort": {"column": column, "dir": direction, "among": page.among,
                        "complete": page.complete, "scan": listing.SCAN}})


async def _keyset_page(request: Request, principal: Principal, dash: Dashboard) -> Response:
    query = _query(request, principal)
    page = await run_in_threadpool(find_page, dash.manager.search, query, _decoder(dash),
                                   dash.settings.max_decode)
    rows = await run_in_threadpool(_rows, dash, page.jobs, principal.payloads)
    return ok({"jobs": rows, "next_cursor": page.next_cursor,
               "partial": page.partial, "scanned": page.scanned, "decoded": page.decoded,
               "max_decode": dash.settings.max_decode, "query": query.describe(),
               "limit": query.limit, "actions": action_table(),
               "sort": {"column": "created",
                        "dir": "desc" if query.newest_first else "asc", "complete": True}})


def _rows(dash: Dashboard, jobs: list[JobRecord], payloads: bool) -> list[dict[str, Any]]:
    """List rows; with payload access each has ``args_preview`` (decoded here)."""
    rows = [summary(r) for r in jobs]
    if payloads:
        for row, record in zip(rows, jobs, strict=True):
            row["args_preview"] = listing.args_preview(record, _decoder(dash))
    return rows


async def count_jobs(request: Request) -> Response:
    """How many jobs match the driver-side filters (time range and arguments not counted);
    with ``action``, exactly how many that bulk action would change (all filters applied)."""
    principal = who(request)
    dash = board(request)
    query = _query(request, principal)
    action = request.query_params.get("action")
    if action is not None:
        if action not in ACTIONS:
            raise HTTPException(400, f"action must be one of {', '.join(ACTIONS)}")
        total = await run_in_threadpool(
            bulk.count_targets, dash.manager.search, dash.manager.driver.count, query, action,
            _decoder(dash) if query.args else None)
        return ok({"count": total, "exact": True, "action": action})
    total, estimated = await run_in_threadpool(count_or_estimate, dash.manager.driver,
                                               query.filter())
    bound = bool(query.since or query.until or query.scans_here)  # not counted by the store
    return ok({"count": total, "exact": not (bound or estimated), "estimate": estimated,
               "at_most": bound})


def count_or_estimate(driver: Driver, criteria: JobFilter) -> tuple[int, bool]:
    """The store's estimate when it has one because counting exactly would be slow (a large
    match on PostgreSQL), else the exact count; and whether it is an estimate."""
    if isinstance(driver, EstimatesCounts):
        estimate = driver.estimate_count(criteria)
        if estimate is not None:
            return estimate, True
    return driver.count(criteria), False


async def get_job(request: Request) -> Response:
    principal = who(request)
    dash = board(request)
    record = await run_in_threadpool(dash.manager.require, request.path_params["job_id"])
    trail = await run_in_threadpool(dash.audit.entries, target=record.id, limit=50)
    data = await run_in_threadpool(detail.job_detail, dash.manager, record,
                                   payloads=principal.payloads, audit=trail)
    return ok(data)


async def job_graph(request: Request) -> Response:
    who(request)
    dash = board(request)
    record = await run_in_threadpool(dash.manager.require, request.path_params["job_id"])
    if record.batch_id and request.query_params.get("scope") != "job":
        data = await run_in_threadpool(detail.graph_for_batch, dash.manager, record.batch_id)
        data["focus"] = record.id
    else:
        data = await run_in_threadpool(detail.graph_for_job, dash.manager, record)
    return ok(detail.drawn(data, _expanded(request)))


def _expanded(request: Request) -> set[str]:
    """``?expand=group:...,group:...``: folded classes to draw job by job."""
    return {g for g in request.query_params.get("expand", "").split(",") if g}


async def batch_graph(request: Request) -> Response:
    who(request)
    dash = board(request)
    data = await run_in_threadpool(detail.graph_for_batch, dash.manager,
                                   request.path_params["batch_id"])
    if not data["nodes"]:
        raise HTTPException(404, "no jobs in that batch")
    return ok(detail.drawn(data, _expanded(request)))


async def job_action(request: Request) -> Response:
    principal = admin(request)
    dash = board(request)
    job_id, action = request.path_params["job_id"], request.path_params["action"]
    if action not in ACTIONS:
        raise HTTPException(404, f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    data = await body(request)
    record = await run_in_threadpool(dash.manager.require, job_id)
    if record.state not in allowed_from(action):
        raise HTTPException(409, f"cannot {action} a job that is {record.state.value}")
    apply = applier(dash.manager, action, principal.name,
                    priority=parse_priority(data.get("priority")), reason=data.get("reason"))
    changed = await run_in_threadpool(apply, job_id)
    await dash.arecord(principal, request, action, job_id, count=int(changed),
                outcome="ok" if changed else "no change",
                detail={k: data[k] for k in ("priority", "reason") if k in data})
    after = await run_in_threadpool(dash.manager.get, job_id)
    return ok({"changed": changed, "job": summary(after) if after else None})


async def bulk_action(request: Request) -> Response:
    """``{"action": ..., "ids": [...]}`` now, or ``{"action": ..., "filter": {...}}`` as a
    background operation (202 with its id)."""
    principal = admin(request)
    dash = board(request)
    data = await body(request)
    action = str(data.get("action", ""))
    if action not in ACTIONS:
        raise HTTPException(400, f"action must be one of {', '.join(ACTIONS)}")
    apply = bulk_applier(dash.manager, action, principal.name,
                         priority=parse_priority(data.get("priority")), reason=data.get("reason"))
    extra: dict[str, Any] = {k: data[k] for k in ("priority", "reason") if k in data}
    if "ids" in data:
        ids = data["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise HTTPException(400, "ids must be a list of job ids")
        if len(ids) > dash.settings.max_selection:
            raise HTTPException(400, f"at most {dash.settings.max_selection} ids; act on a "
                                     "filter instead")
        outcome = await run_in_threadpool(bulk.run_selection, dash.manager.driver.graph_nodes,
                                          ids, action, apply)
        await dash.arecord(principal, request, f"bulk {action}", f"{len(ids)} selected jobs",
                    count=outcome.changed, detail={**extra, "skipped": outcome.skipped})
        return ok(outcome.to_dict())
    if not isinstance(data.get("filter"), dict):
        raise HTTPException(400, "give ids (a selection) or filter (search parameters)")
    query = _query(request, principal, params={k: v for k, v in data["filter"].items()
                                               if k not in ("cursor", "limit")})
    if query.describe() == "all jobs" and data.get("all") is not True:
        raise HTTPException(400, f"the filter is empty, so {action} would act on every job "
                                 "in the store: narrow the filter, or send \"all\": true")

    def done(op: bulk.Operation) -> None:
        dash.record(principal, request, f"bulk {action}", f"filter: {op.description}",
                    count=op.outcome.changed, outcome="error: " + op.error if op.error else "ok",
                    detail={**extra, "skipped": op.outcome.skipped, "scanned": op.scanned,
                            "operation": op.id})

    await dash.arecord(principal, request, f"bulk {action} started",
                       f"filter: {query.describe()}", detail=extra)
    op = dash.operations.start(dash.manager.search, query, action, apply, principal.name,
                               done, decode=_decoder(dash) if query.args else None,
                               nodes=dash.manager.driver.graph_nodes)
    return ok({"operation": op.to_dict()}, status=202)


async def failure_groups(request: Request) -> Response:
    """Failed jobs grouped by exception class and message (queue, name and tag filters);
    ``limit``: distinct exception texts read at most (10,000)."""
    principal = who(request)
    dash = board(request)
    query = _query(request, principal)
    try:
        limit = min(max(int(request.query_params.get("limit", 10_000)), 1), 100_000)
    except ValueError:
        raise HTTPException(400, "limit must be a whole number") from None
    return ok(await run_in_threadpool(failures.group_failures, dash.manager, query, limit))


async def due_view(request: Request) -> Response:
    """Scheduled (pending, due later) or retrying jobs, soonest due first; ``limit`` per page
    (200) and ``cursor`` (the ``next_cursor`` of the page before)."""
    who(request)
    dash = board(request)
    queues = tuple(q for q in request.query_params.get("queue", "").split(",") if q.strip())
    try:
        limit = min(max(int(request.query_params.get("limit", 200)), 1), 1000)
    except ValueError:
        raise HTTPException(400, "limit must be a whole number") from None
    data = await run_in_threadpool(due.due_jobs, dash.manager, request.path_params["view"],
                                   queues=queues, limit=limit,
                                   cursor=request.query_params.get("cursor"))
    return ok(data)


async def run_job_now(request: Request) -> Response:
    """Make a scheduled job due now (409 when it is not pending any more)."""
    principal = admin(request)
    dash = board(request)
    record = await run_in_threadpool(dash.manager.require, request.path_params["job_id"])
    if record.state is not State.PENDING:
        raise HTTPException(409, f"only a scheduled (pending) job can be run now; this one is "
                                 f"{record.state.value}")
    changed = await run_in_threadpool(due.run_now, dash.manager, record)
    await dash.arecord(principal, request, "run now", record.id, count=int(changed),
                       outcome="ok" if changed else "no change")
    after = await run_in_threadpool(dash.manager.get, record.id)
    return ok({"changed": changed, "job": summary(after) if after else None})


async def get_operation(request: Request) -> Response:
    who(request)
    op = board(request).operations.get(request.path_params["op_id"])
    if op is None:
        raise HTTPException(404, "no such operation (they are kept an hour after they end)")
    return ok(op.to_dict())


ROUTES = [
    Route("/api/jobs", list_jobs, name="api_jobs"),
    Route("/api/jobs/count", count_jobs),
    Route("/api/failures/groups", failure_groups),
    Route("/api/jobs/bulk", bulk_action, methods=["POST"]),
    Route("/api/jobs/{job_id}", get_job),
    Route("/api/jobs/{job_id}/graph", job_graph),
    Route("/api/jobs/{job_id}/run-now", run_job_now, methods=["POST"]),
    Route("/api/jobs/{job_id}/{action}", job_action, methods=["POST"]),
    Route("/api/due/{view}", due_view),
    Route("/api/batches/{batch_id}/graph", batch_graph),
    Route("/api/operations/{op_id}", get_operation),
]
