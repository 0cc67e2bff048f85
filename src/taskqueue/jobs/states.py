"""The job state machine.

Who moves a job where:

* ``pending``    -- pushed, handed back unrun, or manually retried. Reserved by a worker once it is
  due (``available_at``) and its dependencies are complete.
* ``processing`` -- a worker holds a lease on it. It leaves by the worker settling it
  (completed / retrying / failed), by a cancel, by being handed back (``pending``), or by the
  lease rescuer when the lease expires (``retrying`` or ``failed``).
* ``retrying``   -- failed an attempt and waits for its backoff; reserved again when due.
* ``failed``     -- the dead letter queue: attempts spent, a non-retryable error, or an
  undecodable payload. Kept (with the traceback) until pruned; a manual retry makes it pending.
* ``cancelled``  -- stopped by a user or by a failed dependency. A manual retry makes it pending.
* ``completed``  -- terminal; pruned after the retention period.

``TRANSITIONS`` is the single source of truth: drivers, tests and the CLI derive from it.
"""

from __future__ import annotations

from enum import StrEnum

from taskqueue.errors import InvalidTransition


class State(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.PROCESSING, State.CANCELLED}),
    State.PROCESSING: frozenset(
        {State.COMPLETED, State.RETRYING, State.FAILED, State.CANCELLED, State.PENDING}
    ),
    State.RETRYING: frozenset({State.PROCESSING, State.CANCELLED}),
    State.FAILED: frozenset({State.PENDING}),
    State.CANCELLED: frozenset({State.PENDING}),
    State.COMPLETED: frozenset(),
}

#: States a worker may reserve from (when due).
READY_STATES = (State.PENDING, State.RETRYING)
#: States a job can be cancelled from.
CANCELLABLE = tuple(s for s, targets in TRANSITIONS.items() if State.CANCELLED in targets)
#: States a manual retry accepts.
RETRYABLE = tuple(s for s, targets in TRANSITIONS.items() if State.PENDING in targets
                  and s is not State.PROCESSING)
#: States with no way out except pruning.
FINISHED = (State.COMPLETED, State.FAILED, State.CANCELLED)


def can_transition(source: State | str, target: State | str) -> bool:
    """True when the state machine allows ``source -> target``."""
    return State(target) in TRANSITIONS[State(source)]


def transition(source: State | str, target: State | str) -> State:
    """Return ``target`` as a State, or raise InvalidTransition when the move is illegal."""
    if not can_transition(source, target):
        raise InvalidTransition(str(source), str(target))
    return State(target)
