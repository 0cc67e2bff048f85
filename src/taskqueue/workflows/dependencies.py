"""Dependencies: refusing cycles and unknown ids, passing results downstream, and settling
dependents when a job fails for good or is cancelled."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskqueue.errors import PayloadError
from taskqueue.jobs.model import NewJob

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.workflows.protocol import WorkflowClient

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


#: What ``pass_result`` may be: True (the keyword follows the number of dependencies), or the
#: keyword itself.
RESULT_KEYWORDS = ("previous", "results")


def result_keyword(pass_result: object, dependencies: int) -> str:
    """The keyword argument a ``pass_result`` job receives its dependencies' results under.

    ``True``: ``previous`` (the one result) with one dependency, ``results`` (a list in
    dependency order) with several. ``"previous"`` or ``"results"`` choose explicitly (a group's
    callback always gets ``results``, even for a one-member group)."""
    if pass_result is True:
        return "previous" if dependencies == 1 else "results"
    if pass_result not in RESULT_KEYWORDS:
        raise ValueError(f"pass_result must be True, 'previous' or 'results', not "
                         f"{pass_result!r}")
    if pass_result == "previous" and dependencies != 1:
        raise ValueError(f"pass_result='previous' needs exactly one dependency, this job has "
                         f"{dependencies}; use 'results' for a list")
    return str(pass_result)


def check_receiver(name: str, keyword: str) -> None:
    """Refuse, at enqueue, a task whose function cannot take ``keyword`` (the results it will
    be handed), instead of a TypeError in the worker later. Job classes read
    ``self.data["previous"]``/``["results"]``, and unknown names are not checked."""
    import inspect

    from taskqueue.jobs.definition import REGISTRY

    fn = getattr(REGISTRY.get(name), "fn", None)
    if fn is None:
        return
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD or (p.name == keyword and p.kind is not p.POSITIONAL_ONLY)
           for p in params):
        return
    raise TypeError(f"task {name} is given its dependencies' results as the keyword argument "
                    f"{keyword!r} (pass_result), but its signature "
                    f"{inspect.signature(fn)} has no such parameter: add `{keyword}=None`")


def inject_results(manager: WorkflowClient, job: JobRecord, body: dict[str, Any]) -> None:
    """For ``pass_result``: give the job its dependencies' results (see :func:`result_keyword`):
    keyword ``previous`` or ``results`` for tasks, the same keys of ``self.data`` for Job
    classes."""
    results = []
    for dep in job.dependencies:
        record = manager.get(dep)
        try:
            results.append(manager.decode_result(record) if record and record.result else None)
        except PayloadError as exc:
            raise PayloadError(f"the result of dependency {dep} cannot be decoded: "
                               f"{exc}") from None
    mode = (body.get("_opts") or {}).get("pass_result", True)
    try:
        key = result_keyword(mode, len(results))
    except ValueError:
        key = "previous" if len(results) == 1 else "results"  # stored by an older version
    value = results[0] if key == "previous" else results
    if "data" in body and "args" not in body:
        if isinstance(body["data"], dict):
            body["data"] = {**body["data"], key: value}
    else:
        body["kwargs"] = {**body.get("kwargs", {}), key: value}


def settle_dependents(manager: WorkflowClient, job_id: str, run_anyway: bool,
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
