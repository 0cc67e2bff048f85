"""Failure groups on every backend: messages that differ only by ids form one group, and
"retry this group" (a bulk retry on the group's pattern) reaches every member and nothing else,
whichever way the store answers the pattern's literal piece (trigram index, LIKE, a scan)."""

from __future__ import annotations

from taskqueue import QueueManager
from taskqueue.jobs.states import State
from tests.dashboard.conftest import Session, put_job
from tests.dashboard.test_api import wait_operation


def test_a_group_of_varied_ids_is_one_group_and_retried_whole(manager: QueueManager,
                                                              admin: Session) -> None:
    members = [put_job(manager, State.FAILED, queue="billing", name="billing.charge",
                       exception="Traceback (most recent call last):\n  File \"b.py\"\n"
                                 f"CardError: card declined for customer {n} ('{tag}')").id
               for n, tag in ((110, "visa"), (2471, "amex"), (9, "x"), (123456, "mc"))]
    near = put_job(manager, State.FAILED, queue="billing", name="billing.charge",
                   exception="CardError: card declined for customer 7 (expired)").id
    waiting = put_job(manager, State.RETRYING, queue="billing",
                      exception="CardError: card declined for customer 8 ('visa')").id
    groups = admin.get("/api/failures/groups").json()["groups"]
    card = next(g for g in groups if g["count"] == 4)
    assert card["pattern"] == "CardError: card declined for customer <n> ('<str>')"
    assert card["example"] == "CardError: card declined for customer 123456 ('mc')"
    assert (card["names"], card["queues"]) == (["billing.charge"], ["billing"])
    assert sorted(g["count"] for g in groups) == [1, 4]
    answer = admin.post("/api/jobs/bulk", {"action": "retry", "filter": {
        "state": "failed", "group": card["pattern"]}})
    assert answer.status_code == 202
    op = wait_operation(admin, answer.json()["operation"])
    assert (op["changed"], op["error"]) == (4, None)
    assert {manager.require(i).state for i in members} == {State.PENDING}
    assert manager.require(near).state is State.FAILED
    assert manager.require(waiting).state is State.RETRYING
