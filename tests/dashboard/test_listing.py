"""The jobs list: column sorting (whitelisted, server side), argument previews (only for
accounts that may read payloads), tags; on every backend."""

from __future__ import annotations

from taskqueue import QueueManager
from taskqueue.dashboard.listing import args_preview
from taskqueue.jobs.states import State
from tests.apps.sample_tasks import add
from tests.dashboard.conftest import Session, put_job


def test_sorting_by_priority_pages_through_every_match_once(
        admin: Session, manager: QueueManager) -> None:
    ids = [put_job(manager, State.PENDING, priority=p, queue="sorted").id
           for p in (3, 9, 1, 9, 5, 7, 2)]
    first = admin.get("/api/jobs?queue=sorted&sort=priority&dir=desc&limit=3").json()
    assert [j["priority"] for j in first["jobs"]] == [9, 9, 7]
    assert first["sort"] == first["sort"] | {"column": "priority", "dir": "desc", "among": 7,
                                             "complete": True}
    seen = [j["id"] for j in first["jobs"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = admin.get(f"/api/jobs?queue=sorted&sort=priority&dir=desc&limit=3&cursor={cursor}")
        seen += [j["id"] for j in page.json()["jobs"]]
        cursor = page.json()["next_cursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    up = admin.get("/api/jobs?queue=sorted&sort=priority&dir=asc").json()
    assert [j["priority"] for j in up["jobs"]] == [1, 2, 3, 5, 7, 9, 9]
    by_name = admin.get("/api/jobs?queue=sorted&sort=name&dir=asc").json()
    assert len(by_name["jobs"]) == 7


def test_unknown_sort_columns_and_bad_cursors_are_refused(admin: Session) -> None:
    for query, message in (("sort=payload", "sort must be one of"),
                           ("sort=priority&dir=up", "dir must be asc or desc"),
                           ("sort=priority&cursor=abc", "offset")):
        answer = admin.get("/api/jobs?" + query)
        assert answer.status_code == 400 and message in answer.json()["error"]


def test_created_order_stays_the_stores_keyset(admin: Session, manager: QueueManager) -> None:
    older = put_job(manager, State.PENDING, queue="k").id
    newer = put_job(manager, State.PENDING, queue="k").id
    data = admin.get("/api/jobs?queue=k&sort=created").json()
    assert [j["id"] for j in data["jobs"]] == [newer, older]
    assert data["sort"]["column"] == "created" and data["sort"]["dir"] == "desc"
    data = admin.get("/api/jobs?queue=k&order=oldest").json()
    assert [j["id"] for j in data["jobs"]] == [older, newer] and data["sort"]["dir"] == "asc"


def test_rows_preview_arguments_only_for_accounts_that_may_read_them(
        admin: Session, reader: Session, manager: QueueManager) -> None:
    put_job(manager, State.PENDING, queue="p", name=add.name, body={"args": [1, 2]},
            tags=("customer:7",))
    put_job(manager, State.PENDING, queue="p", name="app.mail",
            body={"kwargs": {"to": "a@example.com", "_wf": {"x": 1}}})
    rows = {j["name"]: j for j in admin.get("/api/jobs?queue=p").json()["jobs"]}
    assert rows[add.name]["args_preview"] == "a=1, b=2"  # positions named: the task is imported
    assert rows["app.mail"]["args_preview"] == 'to="a@example.com"'
    assert rows[add.name]["tags"] == ["customer:7"]
    hidden = reader.get("/api/jobs?queue=p").json()["jobs"]
    assert all("args_preview" not in j for j in hidden)
    assert {tuple(j["tags"]) for j in hidden} == {("customer:7",), ()}


def test_preview_is_cut_and_survives_undecodable_payloads(manager: QueueManager) -> None:
    record = put_job(manager, State.PENDING, body={"args": ["x" * 500]})
    text = args_preview(record, manager.decode)
    assert text is not None and len(text) == 120 and text.endswith("…")

    def broken(_: object) -> object:
        raise ValueError("no key")

    assert args_preview(record, broken) is None
