"""Big workflow graphs drawn readable: interchangeable jobs become one counted node per state.

Jobs are interchangeable when they run the same task, are in the same state and have the same
parents and the same children in the graph (the members of a group or batch fanned out from one
job and gathered by one callback). Above :data:`COLLAPSE_OVER` nodes, every such class of two or
more jobs is drawn as one node ``{"group": true, "count": n, "members": [first ids]}``; edges
are redrawn between the classes. A class is expanded (its jobs drawn one by one again) when its
id is listed in ``expand``; ids are derived from the class's task, state and neighbours, so they
stay the same between two refreshes while nothing moves. The focused job is never folded in.
Graphs of :data:`COLLAPSE_OVER` nodes or fewer are returned unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

COLLAPSE_OVER = 50
SHOWN_MEMBERS = 5


def collapse(graph: dict[str, Any], expand: Collection[str] = ()) -> dict[str, Any]:
    """The graph (as ``detail._graph`` builds it) with interchangeable jobs folded."""
    nodes: list[dict[str, Any]] = graph["nodes"]
    if len(nodes) <= COLLAPSE_OVER:
        return graph
    parents: dict[str, set[str]] = {n["id"]: set() for n in nodes}
    children: dict[str, set[str]] = {n["id"]: set() for n in nodes}
    for a, b in graph["edges"]:
        children[a].add(b)
        parents[b].add(a)
    # grouped by the plain key first: the digest is taken once per class, not once per job
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for node in nodes:
        if node["id"] == graph.get("focus"):
            continue
        key = (node["name"], node["state"], node["queue"],
               _ordered(parents[node["id"]]), _ordered(children[node["id"]]))
        by_key.setdefault(key, []).append(node)
    classes = {_class_id(members[0], set(key[3]), set(key[4])): members
               for key, members in by_key.items()}
    folded = {key: members for key, members in classes.items()
              if len(members) > 1 and key not in expand}
    home = {m["id"]: key for key, members in folded.items() for m in members}
    out_nodes = [n for n in nodes if n["id"] not in home]
    out_nodes += [_group(key, members) for key, members in folded.items()]
    edges = {(home.get(a, a), home.get(b, b)) for a, b in graph["edges"]}
    expandable = sorted(key for key, members in classes.items() if len(members) > 1)
    return {**graph, "nodes": out_nodes, "edges": [list(e) for e in sorted(edges)],
            "collapsed": len(folded), "expandable": expandable, "jobs": len(nodes)}


def _ordered(ids: set[str]) -> tuple[str, ...]:
    return tuple(sorted(ids)) if len(ids) > 1 else tuple(ids)


def _class_id(node: dict[str, Any], parents: set[str], children: set[str]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for part in (node["name"], node["state"], node["queue"], *sorted(parents), "|",
                 *sorted(children)):
        digest.update(part.encode() + b"\0")
    return f"group:{node['state']}:{digest.hexdigest()[:12]}"


def _group(key: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    first = members[0]
    return {"id": key, "group": True, "count": len(members), "name": first["name"],
            "state": first["state"], "queue": first["queue"],
            "members": sorted(m["id"] for m in members)[:SHOWN_MEMBERS]}
