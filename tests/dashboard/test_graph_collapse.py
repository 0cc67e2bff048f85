"""Big workflow graphs fold interchangeable jobs into one counted node per state; small ones
are drawn job by job as before."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue import QueueManager, group
from taskqueue.dashboard import DashboardSettings
from taskqueue.dashboard.collapse import collapse
from taskqueue.jobs.states import State
from tests.apps.sample_tasks import add, collect
from tests.dashboard.conftest import Session, client_for, login


@pytest.fixture
def session(sqlite_manager: QueueManager, settings: DashboardSettings) -> Session:
    client = client_for(sqlite_manager, settings)
    return Session(client, login(client, "alice"))


def by_kind(graph: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([n for n in graph["nodes"] if n.get("group")],
            [n for n in graph["nodes"] if not n.get("group")])


def test_a_group_of_300_members_draws_as_counted_nodes_per_state(
        session: Session, sqlite_manager: QueueManager) -> None:
    handles = group(*(add.s(i, i) for i in range(300)), then=collect.s(), manager=sqlite_manager)
    members, callback = [str(h) for h in handles[:-1]], str(handles[-1])
    for job_id in members[:40]:  # 40 cancelled, the rest waiting: two classes
        sqlite_manager.driver.cancel(job_id, "test")
    graph = session.get(f"/api/jobs/{callback}/graph").json()
    groups, single = by_kind(graph)
    assert [n["id"] for n in single] == [callback]  # the focus is never folded
    assert sorted((g["state"], g["count"]) for g in groups) == [("cancelled", 40),
                                                                 ("pending", 260)]
    assert sorted(map(tuple, graph["edges"])) == sorted((g["id"], callback) for g in groups)
    assert graph["jobs"] == 301 and graph["collapsed"] == 2 and graph["truncated"] is False
    pending = next(g for g in groups if g["state"] == "pending")
    assert len(pending["members"]) == 5 and set(pending["members"]) <= set(members)
    again = session.get(f"/api/jobs/{callback}/graph").json()  # ids stay between refreshes
    assert {g["id"] for g in by_kind(again)[0]} == {g["id"] for g in groups}
    expanded = session.get(f"/api/jobs/{callback}/graph?expand={pending['id']}").json()
    groups, single = by_kind(expanded)
    assert [(g["state"], g["count"]) for g in groups] == [("cancelled", 40)]
    # 260 expanded jobs + the callback + the cancelled node: cut at 200 drawn nodes, the
    # folded node and the focus kept
    assert len(single) + len(groups) == 200 and callback in {n["id"] for n in single}
    assert expanded["truncated"] is True


def test_small_graphs_are_unchanged(session: Session, sqlite_manager: QueueManager) -> None:
    handles = group(*(add.s(i, i) for i in range(10)), then=collect.s(), manager=sqlite_manager)
    graph = session.get(f"/api/jobs/{handles[-1]}/graph").json()
    assert len(graph["nodes"]) == 11 and not any(n.get("group") for n in graph["nodes"])
    assert "collapsed" not in graph


def test_only_jobs_with_the_same_task_state_and_neighbours_are_folded() -> None:
    def node(i: int, name: str = "t", state: str = "pending") -> dict[str, Any]:
        return {"id": f"j{i:03}", "name": name, "state": state, "queue": "q"}

    nodes = [node(i) for i in range(60)] + [node(60, "other"), node(61, "root", "completed")]
    edges = [["j061", f"j{i:03}"] for i in range(30)]  # half hang off the root
    graph = collapse({"nodes": nodes, "edges": edges, "focus": None, "truncated": False})
    groups, single = by_kind(graph)
    assert sorted(g["count"] for g in groups) == [30, 30]
    assert {n["id"] for n in single} == {"j060", "j061"}
    [hanging] = [g for g in groups if ["j061", g["id"]] in graph["edges"]]
    assert graph["edges"] == [["j061", hanging["id"]]]
    assert {g["state"] for g in groups} == {State.PENDING.value}
