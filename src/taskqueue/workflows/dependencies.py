"""Dependencies: refusing cycles and unknown ids, passing results downstream, and settling
dependents when a job fails for good or is cancelled."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskqueue.jobs.model import NewJob

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.manager import QueueManager

log = logging.getLogger("taskqueue.workflows")


def check_graph(jobs: Sequence[NewJob], known: set[str]) -> None:
    """Refuse cycles among ``jobs`` and dependencies that are neither in ``jobs`` nor stored."""
    if not any(job.dependencies for job in jobs):
        return  # the common case: nothing to check, no graph to build
    import graphlib

    ids = {j.id for j in jobs}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for job in jobs:
        missing = [d for d in job.dependencies if d not in ids and d not in known]
        if missing:
            raise ValueError(f"job {job.id} depends on unknown job id(s): {', '.join(missing)}")
        sorter.add(job.id, *(d for d in job.dependencies if d in ids))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ValueError(f"dependency cycle refused: {cycle}") from None


def inject_results(manager: QueueManager, job: JobRecord, body: dict[str, Any]) -> None:
    """For ``pass_result=True``: give the job its dependencies' results.

    One dependency: kwargs ``previous`` (tasks) / ``self.previous`` (Job classes); several:
    ``results``, a list in dependency order."""
    results = []
    for dep in job.dependencies:
        record = manager.get(dep)
        results.append(manager.decode_result(record) if record and record.result else None)
    key, value = ("previous", results[0]) if len(results) == 1 else ("results", results)
    if "data" in body and "args" not in body:
        if isinstance(body["data"], dict):
            body["data"] = {**body["data"], key: value}
    else:
        body["kwargs"] = {**body.get("kwargs", {}), key: value}


def settle_dependents(manager: QueueManager, job_id: str, run_anyway: bool,
                      reason: str) -> list[str]:
    """After ``job_id`` failed for good or was cancelled: cancel its dependents (and theirs,
    transitively) or, with ``run_anyway``, let them run. Returns the ids cancelled."""
    if run_anyway:
        manager.driver.dependency_failed(job_id, cancel=False, reason=reason)
        return []
    cancelled: list[str] = []
    frontier = [job_id]
    while frontier:
        parent = frontier.pop()
        children = manager.driver.dependency_failed(
            parent, cancel=True, reason=f"cancelled: dependency {parent} did not complete "
                                        f"({reason})")
        cancelled.extend(children)
        frontier.extend(children)
    if cancelled:
        log.info("cancelled %d dependents of %s", len(cancelled), job_id)
    return cancelled
