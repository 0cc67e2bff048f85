"""Search parameters, keyset pages, time ranges and argument filters."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from taskqueue import QueueManager
from taskqueue.dashboard.actions import action_table, allowed_from
from taskqueue.dashboard.query import (
    JobQuery,
    QueryError,
    find_page,
    parse_arg,
    parse_q,
    parse_time,
    time_id,
)
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.states import TRANSITIONS, State
from tests.dashboard.conftest import put_job


def test_params_and_free_text() -> None:
    q = JobQuery.from_params({"state": "failed,cancelled", "queue": ["a", "b"],
                              "q": 'name:app.send "error:connection reset" args.user_id:42 oops'})
    assert q.states == (State.FAILED, State.CANCELLED)
    assert q.queues == ("a", "b") and q.names == ("app.send",)
    assert q.error == "oops"  # the last bare word wins over error:...
    assert [str(a) for a in q.args] == ["args.user_id:42"]
    assert "state=failed,cancelled" in q.describe()
    assert parse_q("exception:boom task:x status:failed") == [
        ("error", "boom"), ("name", "x"), ("state", "failed")]


@pytest.mark.parametrize("params,message", [
    ({"state": "exploded"}, "unknown state"), ({"limit": "0"}, "between"),
    ({"limit": "x"}, "number"), ({"since": "yesterday-ish"}, "not a time"),
    ({"args": "args.user_id"}, "args.NAME:VALUE"), ({"id": "<script>"}, "not a job id"),
    ({"q": 'unclosed "quote'}, "cannot parse"),
])
def test_bad_params_are_clear_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        JobQuery.from_params(params)


def test_relative_and_absolute_times() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_time("15m", now) == now - timedelta(minutes=15)
    assert parse_time("2024-05-01T10:00") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert parse_time("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_time_ids_bracket_the_ids_made_then() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    made = uuid7()
    after = datetime.now(UTC) + timedelta(milliseconds=5)
    assert time_id(before, high=False) < made < time_id(after, high=True)
    assert time_id(after, high=False) > made


@pytest.mark.parametrize("expr,body,expected", [
    ("args.user_id:42", {"kwargs": {"user_id": 42}}, True),
    ("args.user_id:42", {"kwargs": {"user_id": "42"}}, True),
    ("args.user_id:42", {"kwargs": {"user_id": 43}}, False),
    ("args.user_id:42", {"data": {"user_id": 42}}, True),
    ("args.0:42", {"args": [42, "x"]}, True),
    ("args.1:x", {"args": [42, "x"]}, True),
    ("args.user.id:7", {"args": [], "kwargs": {"user": {"id": 7}}}, True),
    ("args.flag:true", {"kwargs": {"flag": True}}, True),
    ("args.flag:1", {"kwargs": {"flag": True}}, False),
    ("args.missing:1", {"kwargs": {}}, False),
])
def test_argument_matching(expr: str, body: object, expected: bool) -> None:
    assert parse_arg(expr).matches(body) is expected


def test_allowed_actions_follow_the_state_machine() -> None:
    assert set(allowed_from("retry")) == {State.FAILED, State.CANCELLED}
    assert set(allowed_from("cancel")) == {s for s, t in TRANSITIONS.items()
                                           if State.CANCELLED in t}
    assert set(allowed_from("priority")) == {State.PENDING, State.RETRYING}
    assert State.PROCESSING not in allowed_from("delete")
    assert action_table()["completed"] == ["delete"]


def test_keyset_pages_cover_everything_once(sqlite_manager: QueueManager) -> None:
    ids = [put_job(sqlite_manager, State.FAILED, queue="q").id for _ in range(23)]
    query = JobQuery(queues=("q",), limit=10)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = find_page(sqlite_manager.search, _with(query, cursor))
        seen += [r.id for r in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def _with(query: JobQuery, cursor: str | None) -> JobQuery:
    return replace(query, cursor=cursor)


def test_oldest_first_and_time_range(sqlite_manager: QueueManager) -> None:
    early = [put_job(sqlite_manager).id for _ in range(3)]
    time.sleep(0.01)  # the range is inclusive to the millisecond
    middle_start = datetime.now(UTC)
    middle = [put_job(sqlite_manager).id for _ in range(4)]
    middle_end = datetime.now(UTC)
    time.sleep(0.01)
    late = [put_job(sqlite_manager).id for _ in range(2)]
    ranged = JobQuery(since=middle_start, until=middle_end, limit=50)
    assert [r.id for r in find_page(sqlite_manager.search, ranged).jobs] == middle[::-1]
    oldest = _with(JobQuery(since=middle_start, newest_first=False, limit=3), None)
    page = find_page(sqlite_manager.search, oldest)
    assert [r.id for r in page.jobs] == middle[:3] and page.next_cursor == middle[2]
    rest = find_page(sqlite_manager.search, _with(oldest, page.next_cursor))
    assert [r.id for r in rest.jobs] == [middle[3], *late]
    assert early[0] not in {r.id for r in rest.jobs}


def test_argument_search_decodes_a_bounded_number(sqlite_manager: QueueManager) -> None:
    for i in range(30):
        put_job(sqlite_manager, body={"args": [], "kwargs": {"user_id": i % 3}})
    query = JobQuery.from_params({"args": "args.user_id:1", "limit": "4"})
    page = find_page(sqlite_manager.search, query, sqlite_manager.decode, max_decode=1000)
    assert len(page.jobs) == 4 and page.next_cursor is not None and not page.partial
    bounded = find_page(sqlite_manager.search, query, sqlite_manager.decode, max_decode=5)
    assert bounded.partial and bounded.decoded == 5 and len(bounded.jobs) <= 2
    cont = find_page(sqlite_manager.search, _with(query, bounded.next_cursor),
                     sqlite_manager.decode, max_decode=1000)
    found = {r.id for r in bounded.jobs} | {r.id for r in cont.jobs}
    assert len(found) == len(bounded.jobs) + len(cont.jobs)  # no overlap after continuing


def test_undecodable_payloads_never_match(sqlite_manager: QueueManager) -> None:
    put_job(sqlite_manager, body={"kwargs": {"user_id": 1}}, payload=b"\x00garbage")
    query = JobQuery.from_params({"args": "args.user_id:1"})
    assert find_page(sqlite_manager.search, query, sqlite_manager.decode).jobs == []


def test_an_error_text_shorter_than_a_trigram_is_scanned_here_with_a_budget(
        sqlite_manager: QueueManager, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskqueue.dashboard import query as query_module

    target = put_job(sqlite_manager, State.FAILED, exception="disk 100% full").id
    for _ in range(6):
        put_job(sqlite_manager, State.FAILED, exception="timeout")
    search = sqlite_manager.search
    q = JobQuery.from_params({"error": "%"})
    assert q.short_error and q.filter().exception_contains is None, "not sent to the store"
    page = find_page(search, q)
    assert [r.id for r in page.jobs] == [target] and not page.partial
    monkeypatch.setattr(query_module, "SHORT_TEXT_SCAN", 3)
    first = find_page(search, q)
    assert first.partial and first.jobs == [] and first.scanned == 3
    second = find_page(search, replace(q, cursor=first.next_cursor))
    assert second.partial and second.jobs == []
    rest = find_page(search, replace(q, cursor=second.next_cursor))
    assert [r.id for r in rest.jobs] == [target] and not rest.partial, "scanning continued"
    long = JobQuery.from_params({"error": "100%"})
    assert not long.short_error and long.filter().exception_contains == "100%"
