"""The workflow graph walks the store's dependency edges: a DAG whose last node was pushed
10,000 jobs after the others still shows whole, from any of its nodes."""

from __future__ import annotations

from typing import Any

from taskqueue import QueueManager
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from tests.dashboard.conftest import Session


def spread_dag(manager: QueueManager, between: int = 10_000) -> list[str]:
    """a -> b, a -> c, (b, c) -> d, with ``between`` unrelated jobs pushed before d."""
    a, b, c = uuid7(), uuid7(), uuid7()
    job = lambda job_id, *deps: NewJob(id=job_id, name="app.step", payload=b"{}",  # noqa: E731
                                       dependencies=deps)
    manager.driver.push([job(a), job(b, a), job(c, a)])
    for start in range(0, between, 2_000):
        manager.driver.push([job(uuid7()) for _ in range(min(2_000, between - start))])
    d = uuid7()
    manager.driver.push([job(d, b, c)])
    return [a, b, c, d]


def check_whole(graph: dict[str, Any], ids: list[str]) -> None:
    a, b, c, d = ids
    assert sorted(n["id"] for n in graph["nodes"]) == sorted(ids)
    assert sorted(map(tuple, graph["edges"])) == sorted([(a, b), (a, c), (b, d), (c, d)])
    assert graph["truncated"] is False and graph["missing"] == []


def test_graph_of_a_dag_spread_over_10000_jobs_is_whole(sqlite_manager: QueueManager,
                                                        settings: Any) -> None:
    from tests.dashboard.conftest import client_for, login

    client = client_for(sqlite_manager, settings)
    session = Session(client, login(client, "alice"))
    ids = spread_dag(sqlite_manager)
    for focus in ids:
        answer = session.get(f"/api/jobs/{focus}/graph")
        assert answer.status_code == 200, answer.text
        check_whole(answer.json(), ids)


def test_a_graph_past_scan_nodes_is_cut_upstream_and_downstream(
        sqlite_manager: QueueManager, monkeypatch: Any) -> None:
    """A chain of 9 jobs read with room for 5: from the middle, the walk up and the walk
    down each stop at the limit and say so."""
    from taskqueue.dashboard import detail

    ids = [uuid7() for _ in range(9)]
    sqlite_manager.driver.push([
        NewJob(id=job_id, name="app.step", payload=b"{}",
               dependencies=(ids[i - 1],) if i else ()) for i, job_id in enumerate(ids)])
    monkeypatch.setattr(detail, "SCAN_NODES", 5)
    middle = sqlite_manager.require(ids[4])
    graph = detail.graph_for_job(sqlite_manager, middle)
    assert graph["truncated"] is True and len(graph["nodes"]) == 5
    assert ids[4] in {n["id"] for n in graph["nodes"]}
    top = detail.graph_for_job(sqlite_manager, sqlite_manager.require(ids[0]))
    assert top["truncated"] is True and [n["id"] for n in top["nodes"]] == sorted(ids[:5])
    bottom = detail.graph_for_job(sqlite_manager, sqlite_manager.require(ids[8]))
    assert bottom["truncated"] is True and [n["id"] for n in bottom["nodes"]] == sorted(ids[4:])
