"""The OpenAPI 3.1 description of the JSON API, served at ``/api/openapi.json``.

Kept as a table next to the code it describes; a test checks that every ``/api`` route of the
app appears here and nothing else does.
"""

from __future__ import annotations

from typing import Any

from taskqueue import __version__
from taskqueue.dashboard.actions import ACTIONS
from taskqueue.jobs.states import State

_SEARCH = [
    ("state", "Job states, comma separated or repeated: " + ", ".join(s.value for s in State)),
    ("queue", "Queue names, comma separated or repeated"),
    ("name", "Task names, comma separated or repeated"),
    ("id", "Job ids"),
    ("tag", "A tag the job carries"),
    ("error", "Text contained in the job's exception"),
    ("group", "An error pattern from /api/failures/groups: failed jobs whose error it stands for"),
    ("batch", "Batch id"),
    ("since", "Created at or after: ISO 8601, or relative like 15m, 2h, 7d"),
    ("until", "Created at or before: ISO 8601, or relative"),
    ("args", "Argument filter args.NAME:VALUE (decodes payloads; needs payload permission)"),
    ("q", "All of the above as one text: state:failed queue:emails args.user_id:42 words"),
    ("order", "newest (default) or oldest"),
    ("cursor", "next_cursor of the previous page (keyset paging)"),
    ("limit", "Page size, 1..500"),
]

_EXPAND = ("expand", "Ids of folded nodes (group:...) to draw job by job, comma separated")

#: (method, path, summary, admin only, query parameters)
ENDPOINTS: tuple[tuple[str, str, str, bool, list[tuple[str, str]]], ...] = (
    ("get", "/api/me", "Who you are, your role and the actions per state", False, []),
    ("get", "/api/overview", "Counts, throughput, latency percentiles, queues, last hour",
     False, []),
    ("get", "/api/live", "Server-sent events: an `overview` event every few seconds", False,
     [("events", "Stop after this many events (0: never)")]),
    ("get", "/api/series", "Chart points for the last hour or day", False,
     [("range", "hour or day")]),
    ("get", "/api/tasks/metrics", "Per task: throughput, failure rate, run/wait p50/p95 and a "
     "series over a range", False,
     [("range", "1h, 6h (minute buckets), 24h or 7d (hour buckets)"), ("queue", "One queue"),
      ("name", "One task name")]),
    ("get", "/api/jobs", "Search jobs (keyset paginated; sorted by another column in the store, "
     "offset paginated: the cursor is the next page's offset)", False,
     [*_SEARCH, ("sort", "created (default: the store's order), priority, attempts, updated, "
                 "state, queue or name"), ("dir", "asc or desc (sort other than created)")]),
    ("get", "/api/due/{view}", "Scheduled (pending, due later) or retrying jobs, soonest due "
     "first, from the store's index of due times, with their total", False,
     [_SEARCH[1], ("limit", "Jobs per page (200, at most 1,000)"),
      ("cursor", "The next_cursor of the page before")]),
    ("post", "/api/jobs/{job_id}/run-now", "Make a scheduled (pending) job due now", True, []),
    ("get", "/api/failures/groups", "Failed jobs grouped by exception class and message pattern "
     "(numbers and ids as placeholders), with counts and an example message (the store counts "
     "the failed jobs per exception text; at most `limit` texts, the most common, 10,000 by "
     "default)", False,
     [_SEARCH[1], _SEARCH[2], _SEARCH[4],
      ("limit", "How many distinct exception texts to read at most")]),
    ("get", "/api/jobs/count", "Count jobs matching the store-side filters (estimate: true "
     "when the store's estimate stands in for a slow exact count); with action, exactly how "
     "many that bulk action would change (every filter applied)", False,
     [*_SEARCH, ("action", "retry, cancel, priority or delete: count what it would change")]),
    ("post", "/api/jobs/bulk", "Act on selected ids now, or on a filter in the background "
     "(202 with an operation)", True, []),
    ("get", "/api/jobs/{job_id}", "One job: fields, actions, payload, result, attempt history, "
     "timeline", False, []),
    ("get", "/api/jobs/{job_id}/graph", "The workflow around a job (nodes and edges; above 50 "
     "jobs, interchangeable ones folded into counted nodes)", False,
     [("scope", "job: only dependencies, even for a batch member"), _EXPAND]),
    ("post", "/api/jobs/{job_id}/{action}", "retry, cancel, priority or delete one job "
     "(body: priority, reason)", True, []),
    ("get", "/api/batches/{batch_id}/graph", "A batch's jobs as a graph, with its status",
     False, [_EXPAND]),
    ("get", "/api/operations/{op_id}", "Progress of a background bulk operation", False, []),
    ("get", "/api/queues", "Queues: counts by state, paused, limits", False, []),
    ("post", "/api/queues/{name}/{action}", "pause, resume, limits (body: rate, concurrency) "
     "or purge (body: confirm = the queue name, states)", True, []),
    ("get", "/api/workers", "Live workers", False, []),
    ("post", "/api/workers/{worker_id}/{action}", "pause or resume a worker (idempotent, any "
     "host), or recycle one on this host", True, []),
    ("get", "/api/schedules", "Schedules with their next runs in their time zone", False, []),
    ("post", "/api/schedules/{name}/{action}", "pause, resume or run a schedule now", True, []),
    ("get", "/api/alerts", "Alert rules, channels, firing alerts and history", False, []),
    ("get", "/api/audit", "The audit log, newest first", False,
     [("limit", "At most this many (1..1000)"), ("actor", "Only this user"),
      ("action", "Only this action"), ("target", "Only targets containing this text")]),
    ("get", "/api/health", "Store, worker, heartbeat and queue checks", False, []),
    ("get", "/api/openapi.json", "This document", False, []),
)

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}


def _operation(method: str, path: str, summary: str, admin: bool,
               query: list[tuple[str, str]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for p in path.split("/") if p.startswith("{")]
    params += [{"name": n, "in": "query", "description": d, "schema": {"type": "string"}}
               for n, d in query]
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
        "401": {"description": "Not logged in", "content": {"application/json":
                                                             {"schema": _ERROR}}}}
    if method == "post":
        responses["403"] = {"description": "Read-only user, or CSRF token missing (cookie "
                                           "sessions must send X-CSRF-Token)",
                            "content": {"application/json": {"schema": _ERROR}}}
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses,
                          "tags": [path.split("/")[2]]}
    if admin:
        op["description"] = "Admin role required; recorded in the audit log."
    if method == "post":
        op["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "action": {"type": "string", "enum": list(ACTIONS)},
                "ids": {"type": "array", "items": {"type": "string"}},
                "filter": {"type": "object"}, "priority": {"type": ["integer", "string"]},
                "reason": {"type": "string"}}}}}}
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, admin, query in ENDPOINTS:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, admin, query)
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskqueue dashboard API", "version": __version__,
                 "description": "Everything the dashboard shows or does. Authenticate with "
                                "`Authorization: Bearer <token>`, or a session cookie plus "
                                "the X-CSRF-Token header on changes."},
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "taskqueue_session"}}},
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    }
