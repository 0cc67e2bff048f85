"""Dependencies: refusing cycles and unknown ids, passing results downstream, and settling
dependents when a job fails for good or is cancelled."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskqueue.drivers.base import JobFilter
from taskqueue.errors import PayloadError
from taskqueue.jobs.model import NewJob
from taskqueue.jobs.states import State
from taskqueue.observability.events import JOB_CANCELLED, Event
from taskqueue.workflows import batch as batches

if TYPE_CHECKING:
    from taskqueue.jobs.model import JobRecord
    from taskqueue.workflows.protocol import WorkflowClient

log = logging.getLogger("taskqueue.workflows")

#: Ids read back per query when cancelled jobs are looked up.
READ_PAGE = 500


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
    transitively) or, with ``run_anyway``, let them run. Returns the ids cancelled, each of
    which had what a cancel has (:func:`cancelled_follow_ups`)."""
    if run_anyway:
        manager.driver.dependency_failed(job_id, cancel=False, reason=reason)
        return []
    cancelled: dict[str, str] = {}  # id -> the reason stored on it
    frontier = [job_id]
    while frontier:
        parent = frontier.pop()
        text = f"cancelled: dependency {parent} did not complete ({reason})"
        children = manager.driver.dependency_failed(parent, cancel=True, reason=text)
        cancelled.update(dict.fromkeys(children, text))
        frontier.extend(children)
    if cancelled:
        log.info("cancelled %d dependents of %s", len(cancelled), job_id)
        cancelled_follow_ups(manager, cancelled)
    return list(cancelled)


def cancelled_follow_ups(manager: WorkflowClient, reasons: Mapping[str, str]) -> None:
    """What follows the cancel of the jobs ``reasons`` names (id -> the reason stored), the
    store's part done: a ``job.cancelled`` event each, with its task and queue (the
    statistics history counts it), and each batch they belong to counts them as finished
    (its callbacks fire as after any cancel). Their dependents are the caller's to settle."""
    records = records_of(manager, list(reasons))
    found = {record.id: record for record in records}
    for job_id, text in reasons.items():
        record = found.get(job_id)
        name, queue = (record.name, record.queue_name) if record else (None, None)
        manager.events.emit(Event(JOB_CANCELLED, job_id, name, queue, error=text))
    finished = Counter(record.batch_id for record in records if record.batch_id)
    for batch_id, count in finished.items():
        batches.job_finished(manager, batch_id, State.CANCELLED, count)


def records_of(manager: WorkflowClient, ids: Sequence[str]) -> list[JobRecord]:
    """The stored jobs of ``ids`` (those that exist), a page of ids per query."""
    out: list[JobRecord] = []
    for start in range(0, len(ids), READ_PAGE):
        chunk = tuple(ids[start:start + READ_PAGE])
        out.extend(manager.driver.search(JobFilter(ids=chunk, limit=len(chunk))))
    return out
