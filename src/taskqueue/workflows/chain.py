"""Chains (one after another) and groups (side by side, with an optional fan-in callback).

Both reduce to jobs plus dependencies and are enqueued at once, in one round trip, when called
(there is no separate ``.apply()`` step): they return the list of job handles. In a chain each
step waits for the previous one; a step asks for the previous result with ``pass_result=True``
and receives it as the keyword argument ``previous``; a failed step cancels the rest unless it
was marked ``continue_on_failure=True``. A group's ``then`` callback depends on every member and
receives all their results as the keyword argument ``results`` (a list in member order, even for
a one-member group). The receiving signature is checked when the workflow is enqueued (see
:func:`taskqueue.workflows.dependencies.result_keyword`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskqueue.jobs.definition import Call, Job
from taskqueue.jobs.dispatch import Enqueuer, default_client
from taskqueue.jobs.ids import uuid7

if TYPE_CHECKING:
    from taskqueue.jobs.handle import JobHandle


def _manager(manager: Enqueuer | None) -> Enqueuer:
    return manager or default_client()


def _as_call(step: Job | Call) -> Call:
    return step.to_call() if isinstance(step, Job) else step


def chain(*steps: Job | Call, manager: Enqueuer | None = None,
          **options: Any) -> list[JobHandle]:
    """Enqueue ``steps`` now, to run one after another; return their handles in order.

    Nothing is deferred: the jobs are stored before ``chain()`` returns (one round trip), and
    the result is a plain ``list`` of :class:`~taskqueue.JobHandle` (wait on the last
    one for the chain's result). A step with ``pass_result=True`` gets the previous step's
    result as the keyword argument ``previous``; a step whose task has no such parameter is
    refused here with a TypeError, before anything is stored."""
    if not steps:
        raise ValueError("chain() needs at least one step")
    m = _manager(manager)
    chain_id, previous, new_jobs = uuid7(), None, []
    for index, step in enumerate(steps, start=1):
        call = _as_call(step)
        deps = list(call.options.get("depends_on") or ()) + ([previous] if previous else [])
        job = m.prepare(call, depends_on=deps, **options,
                        workflow={"chain": chain_id, "step": index, "of": len(steps)})
        new_jobs.append(job)
        previous = job.id
    return m.push_prepared(new_jobs)


def group(*members: Job | Call, then: Job | Call | None = None,
          manager: Enqueuer | None = None, **options: Any) -> list[JobHandle]:
    """Enqueue ``members`` now, to run concurrently; ``then`` (optional) runs once all of them
    completed and receives their results as the keyword argument ``results`` (a list in member
    order, also for one member). Returns a list: the members' handles, then the callback's.
    A callback whose task cannot take ``results`` is refused here with a TypeError."""
    if not members:
        raise ValueError("group() needs at least one member")
    m = _manager(manager)
    group_id = uuid7()
    jobs = [m.prepare(_as_call(x), **options, workflow={"group": group_id}) for x in members]
    if then is not None:
        callback = _as_call(then)
        jobs.append(m.prepare(callback, depends_on=[j.id for j in jobs], pass_result="results",
                              **options, workflow={"group": group_id, "fan_in": True}))
    return m.push_prepared(jobs)

