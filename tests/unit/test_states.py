from __future__ import annotations

import itertools

import pytest

from taskqueue import InvalidTransition, State
from taskqueue.jobs.states import TRANSITIONS, can_transition, transition

LEGAL = {
    ("pending", "processing"), ("pending", "cancelled"),
    ("processing", "completed"), ("processing", "retrying"), ("processing", "failed"),
    ("processing", "cancelled"), ("processing", "pending"),
    ("retrying", "processing"), ("retrying", "cancelled"),
    ("failed", "pending"), ("cancelled", "pending"),
}


@pytest.mark.parametrize("source,target", sorted(LEGAL))
def test_legal_transitions(source: str, target: str) -> None:
    assert transition(source, target) is State(target)


ILLEGAL = sorted(set(itertools.product([s.value for s in State], repeat=2)) - LEGAL)


@pytest.mark.parametrize("source,target", ILLEGAL)
def test_illegal_transitions_raise(source: str, target: str) -> None:
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition) as info:
        transition(source, target)
    assert (info.value.source, info.value.target) == (source, target)


def test_table_matches_the_design_exactly() -> None:
    table = {(s.value, t.value) for s, targets in TRANSITIONS.items() for t in targets}
    assert table == LEGAL
    assert TRANSITIONS[State.COMPLETED] == frozenset()
