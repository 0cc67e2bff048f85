"""The example end to end: HTTP requests to ``runserver``, jobs run by ``taskqueue_work``."""

from __future__ import annotations

from tests.conftest import Shop


def check_orders_flow(shop: Shop) -> None:
    created = shop.http.post("/orders", json={"email": "ada@example.com", "cents": 1999})
    assert created.status_code == 201, created.text
    declined = shop.http.post("/orders", json={"email": "bob@example.com", "cents": 5,
                                               "decline": True})
    assert declined.status_code == 402
    # the transaction rolled back: the job it enqueued never appeared
    assert shop.http.get(f"/jobs/{declined.json()['job_id']}").status_code == 404

    stats = shop.manage_json("taskqueue_stats")
    assert stats["queues"]["orders"]["pending"] == 1
    assert stats["totals"]["pending"] == 1

    summary = shop.manage_json("taskqueue_work", "--queue", "orders", "--stop-when-empty")
    assert summary["totals"]["completed"] == 1
    order = shop.http.get(f"/orders/{created.json()['order']}").json()
    assert order["status"] == "confirmed"
    assert shop.http.get(f"/jobs/{created.json()['job_id']}").json()["state"] == "completed"


def test_sqlite_enqueue_on_commit(sqlite_shop: Shop) -> None:
    check_orders_flow(sqlite_shop)


def test_test_jobs_through_the_management_commands(sqlite_shop: Shop) -> None:
    sqlite_shop.manage("taskqueue_test", "--jobs=5")
    summary = sqlite_shop.manage_json("taskqueue_work", "--stop-when-empty")
    assert summary["totals"]["completed"] == 5
    listed = sqlite_shop.manage_json("taskqueue", "jobs", "list", "--state", "completed")
    assert len(listed) == 5


def test_postgres_enqueue_in_the_same_transaction(postgres_shop: Shop) -> None:
    check_orders_flow(postgres_shop)
    probe = postgres_shop.http.post("/orders", json={"email": "cy@example.com", "cents": 1,
                                                     "probe": True}).json()
    # written on Django's own connection: visible inside the transaction, to nobody else
    assert probe["visible_in_transaction"] is True
    assert probe["visible_to_others_before_commit"] is False
    assert postgres_shop.http.get(f"/jobs/{probe['job_id']}").json()["state"] == "pending"
