"""What may be done to a job, derived from the state machine, and doing it.

``TRANSITIONS`` (jobs/states.py) is the only source: an action is offered for a state exactly
when the move it makes leaves that state.

* ``retry``    -> pending, from a state that moves to pending by hand (not ``processing``,
  whose move to pending is the worker handing a job back);
* ``cancel``   -> cancelled, from every state that can move there;
* ``priority`` from the states that can still move to ``processing`` (it still waits to run);
* ``delete``   from every state except ``processing`` (a dashboard rule: a running job is
  cancelled first, so its worker stops it cleanly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskqueue.jobs.priority import validate_priority
from taskqueue.jobs.states import TRANSITIONS, State
from taskqueue.manager import QueueManager

ACTIONS = ("retry", "cancel", "priority", "delete")


def allowed_from(action: str) -> tuple[State, ...]:
    """The states ``action`` applies to."""
    if action == "retry":
        return tuple(s for s, t in TRANSITIONS.items()
                     if State.PENDING in t and s is not State.PROCESSING)
    if action == "cancel":
        return tuple(s for s, t in TRANSITIONS.items() if State.CANCELLED in t)
    if action == "priority":
        return tuple(s for s, t in TRANSITIONS.items() if State.PROCESSING in t)
    if action == "delete":
        return tuple(s for s in TRANSITIONS if s is not State.PROCESSING)
    raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")


def allowed_actions(state: State | str) -> list[str]:
    return [a for a in ACTIONS if State(state) in allowed_from(a)]


def action_table() -> dict[str, list[str]]:
    """``{state: [actions]}`` for the UI (it hides buttons that would be refused)."""
    return {s.value: allowed_actions(s) for s in State}


Apply = Callable[[str], bool]


def applier(manager: QueueManager, action: str, actor: str, *, priority: int | None = None,
            reason: str | None = None) -> Apply:
    """A function doing ``action`` to one job id, True when the job changed (on the primary
    store when the dashboard reads from a replica)."""
    manager = manager.on_primary()
    if action == "retry":
        return manager.retry
    if action == "cancel":
        text = reason or "cancelled from the dashboard"
        return lambda job_id: manager.cancel(job_id, text, by=actor)
    if action == "priority":
        if priority is None:
            raise ValueError("priority: give the new priority (0..1000 or low/normal/high/urgent)")
        return lambda job_id: manager.set_priority(job_id, priority)
    if action == "delete":
        return manager.delete
    raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")


ApplyMany = Callable[[Sequence[str]], list[str]]


def bulk_applier(manager: QueueManager, action: str, actor: str, *,
                 priority: int | None = None, reason: str | None = None) -> ApplyMany:
    """A function doing ``action`` to a page of job ids in one store statement (with the
    single action's cascades: ``QueueManager.apply_many``); returns the ids changed."""
    manager = manager.on_primary()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    if action == "priority" and priority is None:
        raise ValueError("priority: give the new priority (0..1000 or low/normal/high/urgent)")
    text = reason or "cancelled from the dashboard"
    return lambda ids: manager.apply_many(action, ids, reason=text, by=actor,
                                          priority=priority)


def parse_priority(raw: Any) -> int | None:
    """A priority from a request: an int, a digit string or a level name; None if absent."""
    return None if raw is None or raw == "" else validate_priority(raw)
