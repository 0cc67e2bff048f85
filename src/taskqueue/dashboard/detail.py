"""One job in full (every field, allowed actions, payload and result for those allowed to see
them, the error with its traceback, the attempt history, a timeline) and the graph of the
workflow around it.

Graph: upstream is followed through each job's ``dependencies`` (ids); downstream through the
store's index of dependency edges (``Driver.dependents``), one call per level, however many
jobs were created in between. Both walks repeat until the graph stops growing, so a job
depending on a node and on another job brings that job in too: the whole connected workflow.
A batch is its jobs plus what they depend on and what depends on them. The walk stops at
``SCAN_NODES`` jobs; above 50 jobs interchangeable ones are folded into counted nodes
(:mod:`collapse`), and what is drawn is cut at ``MAX_NODES``; the graph says when it was cut.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from taskqueue.dashboard.actions import allowed_actions
from taskqueue.dashboard.collapse import collapse
from taskqueue.dashboard.signatures import named_positionals
from taskqueue.drivers.base import Driver, GraphNode, JobFilter
from taskqueue.jobs.model import JobRecord, attempts_of
from taskqueue.jobs.states import State
from taskqueue.manager import WORKFLOW, QueueManager

#: Most jobs walked for one graph (a batch of this many members draws as a few counted nodes).
SCAN_NODES = 2000
#: Most nodes drawn after folding.
MAX_NODES = 200


def job_detail(manager: QueueManager, record: JobRecord, *, payloads: bool,
               audit: list[dict[str, Any]]) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("result", None)
    out: dict[str, Any] = {"job": data, "actions": allowed_actions(record.state),
                           "payload_visible": payloads, "timeline": timeline(record, audit),
                           "attempts": attempts(manager, record)}
    body: Any = None
    if payloads:
        body, out["payload_error"] = _decoded(manager, record)
        out["payload"] = body
        out["named_args"] = named_positionals(record.name, body)
        if record.result is not None:
            try:
                out["result"] = manager.decode_result(record)
            except Exception as exc:  # noqa: BLE001 - shown, not raised
                out["result_error"] = f"cannot decode the result: {exc}"
    else:
        out["payload_error"] = "hidden: your account may not read job arguments"
    out["workflow"] = (body or {}).get(WORKFLOW) if isinstance(body, dict) else None
    return out


def _decoded(manager: QueueManager, record: JobRecord) -> tuple[Any, str | None]:
    try:
        return manager.decode(record), None
    except Exception as exc:  # noqa: BLE001 - an undecodable payload is information too
        return None, f"cannot decode the payload: {exc}"


def attempts(manager: QueueManager, record: JobRecord) -> list[dict[str, Any]]:
    """The attempt history (times as epoch seconds, as the timeline's)."""
    stored = manager.driver.attempt_history(record.id)
    return [{"attempt": a.number, "worker": a.worker, "outcome": a.outcome, "error": a.error,
             "started_at": a.started_at.timestamp() if a.started_at else None,
             "ended_at": a.ended_at.timestamp() if a.ended_at else None}
            for a in attempts_of(record, stored)]


def timeline(record: JobRecord, audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What is known of the job's life, oldest first (each attempt's error is in
    ``attempts``)."""
    events: list[dict[str, Any]] = [{"at": record.created_at.timestamp(), "what": "created"}]
    if record.available_at > record.created_at:
        events.append({"at": record.available_at.timestamp(), "what": "due"})
    if record.started_at:
        events.append({"at": record.started_at.timestamp(),
                       "what": f"attempt {record.attempts} of {record.max_attempts} started"})
    if record.failed_at:
        events.append({"at": record.failed_at.timestamp(), "what": f"{record.state.value}",
                       "detail": (record.exception or "").strip().splitlines()[-1:] or None})
    if record.completed_at:
        events.append({"at": record.completed_at.timestamp(), "what": record.state.value})
    elif record.state is State.CANCELLED and not record.failed_at:
        events.append({"at": record.updated_at.timestamp(), "what": "cancelled",
                       "detail": record.exception})
    for entry in audit:
        events.append({"at": float(entry["at"]), "what": f"{entry['action']} by {entry['actor']}",
                       "detail": entry.get("outcome")})
    return sorted(events, key=lambda e: e["at"])


def graph_for_job(manager: QueueManager, record: JobRecord) -> dict[str, Any]:
    nodes = {record.id: GraphNode.of(record)}
    return _graph(nodes, _grow(manager.driver, nodes), focus=record.id)


def graph_for_batch(manager: QueueManager, batch_id: str) -> dict[str, Any]:
    members = manager.driver.graph_nodes(JobFilter(batch_id=batch_id, limit=SCAN_NODES + 1,
                                                   newest_first=False))
    truncated = len(members) > SCAN_NODES
    nodes = {r.id: r for r in members[:SCAN_NODES]}
    truncated |= _grow(manager.driver, nodes)
    out = _graph(nodes, truncated, focus=None)
    try:
        out["batch"] = manager.batch_status(batch_id).to_dict()
    except Exception:  # noqa: BLE001 - jobs sharing a batch id without its metadata
        out["batch"] = None
    return out


def _grow(driver: Driver, nodes: dict[str, GraphNode]) -> bool:
    """Add what the nodes depend on and what depends on them until nothing is added; True
    when ``SCAN_NODES`` cut the graph short."""
    size = -1
    while len(nodes) != size:
        size = len(nodes)
        if _upstream(driver, nodes) or _downstream(driver, nodes):
            return True
    return False


def _upstream(driver: Driver, nodes: dict[str, GraphNode]) -> bool:
    """The jobs the nodes depend on, one read per level."""
    wanted = sorted({d for r in nodes.values() for d in r.dependencies} - nodes.keys())
    while wanted:
        wanted, cut = _room(nodes, wanted)
        found = _read(driver, wanted)
        nodes.update((r.id, r) for r in found)
        if cut:
            return True
        wanted = sorted({d for r in found for d in r.dependencies} - nodes.keys())
    return False


def _downstream(driver: Driver, nodes: dict[str, GraphNode]) -> bool:
    frontier = list(nodes)
    while frontier:
        found, cut = _room(nodes, [c for c in driver.dependents(frontier) if c not in nodes])
        records = _read(driver, found)
        nodes.update((r.id, r) for r in records)
        if cut:
            return True
        frontier = [r.id for r in records]
    return False


def _room(nodes: dict[str, GraphNode], ids: list[str]) -> tuple[list[str], bool]:
    """``ids`` cut to the room ``SCAN_NODES`` leaves beside ``nodes``, and whether it cut."""
    room = SCAN_NODES - len(nodes)
    return (ids[:room], True) if len(ids) > room else (ids, False)


def _read(driver: Driver, ids: list[str]) -> list[GraphNode]:
    return driver.graph_nodes(JobFilter(ids=tuple(ids), limit=len(ids))) if ids else []


def _node(record: GraphNode) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "state": record.state.value,
            "queue": record.queue_name, "attempts": record.attempts,
            "progress": record.progress}


def _graph(nodes: dict[str, GraphNode], truncated: bool, focus: str | None) -> dict[str, Any]:
    edges = [[dep, r.id] for r in nodes.values() for dep in r.dependencies if dep in nodes]
    missing = sorted({d for r in nodes.values() for d in r.dependencies} - nodes.keys())
    return {"nodes": [_node(nodes[k]) for k in sorted(nodes)], "edges": edges,
            "missing": missing, "truncated": truncated, "focus": focus}


def drawn(graph: dict[str, Any], expand: Collection[str] = ()) -> dict[str, Any]:
    """The graph as pages draw it: folded above 50 jobs (:mod:`collapse`), at most
    ``MAX_NODES`` nodes (the focus and the folded nodes kept first; cut edges dropped)."""
    out = collapse(graph, expand)
    if len(out["nodes"]) <= MAX_NODES:
        return out
    first = [n for n in out["nodes"] if n["id"] == out.get("focus") or n.get("group")]
    rest = [n for n in out["nodes"] if not (n["id"] == out.get("focus") or n.get("group"))]
    keep = first + rest[:max(0, MAX_NODES - len(first))]
    ids = {n["id"] for n in keep}
    return {**out, "nodes": keep, "truncated": True,
            "edges": [e for e in out["edges"] if e[0] in ids and e[1] in ids]}

