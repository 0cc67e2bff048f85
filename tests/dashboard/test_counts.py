"""The list header's count: exact when counting is cheap, the store's estimate (labelled as
one) when an exact count would read most of a large table."""

from __future__ import annotations

import pytest

from taskqueue import QueueManager
from taskqueue.drivers.base import EstimatesCounts
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new
from tests.dashboard.conftest import Session, put_job


def test_count_is_exact_on_a_small_store(manager: QueueManager, admin: Session) -> None:
    for _ in range(3):
        put_job(manager, State.FAILED, queue="emails")
    answer = admin.get("/api/jobs/count?queue=emails").json()
    assert answer == {"count": 3, "exact": True, "estimate": False, "at_most": False}


def test_count_says_when_it_is_an_estimate(manager: QueueManager, admin: Session,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(manager.driver, EstimatesCounts):
        pytest.skip(f"the {manager.driver.name} driver does not estimate counts")
    from taskqueue.drivers import postgres, sqlite

    monkeypatch.setattr(postgres, "ESTIMATE_ABOVE_COST", 0.0)  # every plan is "costly"
    monkeypatch.setattr(sqlite, "SAMPLE", 25)                  # 60 jobs are "many"
    failed = put_job(manager, State.FAILED, queue="emails")
    manager.driver.push([new(queue_name="emails", name="app.send") for _ in range(59)])
    answer = admin.get("/api/jobs/count?queue=emails&name=app.send").json()
    assert answer["estimate"] is True and answer["exact"] is False
    assert 1 <= answer["count"] <= 200
    exact = admin.get("/api/jobs/count?queue=emails&state=failed&action=retry").json()
    assert exact == {"count": 1, "exact": True, "action": "retry"}, "a bulk dialog counts"
    assert manager.require(failed.id).state is State.FAILED
