"""The MySQL driver's hot paths, each a few statements sent as one script (one round trip).

Pooled sessions enable multi-statements (``_mysql_pool``), so a transaction's statements go
to the server together: ``START TRANSACTION; …; COMMIT`` costs one round trip and one commit
instead of one per statement. Every value is escaped by PyMySQL (``mogrify``) before it is
joined into a script. The first error stops the script; the pool rolls the session back and
the driver's retry loop re-runs the whole transaction (deadlock, lock-wait timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.drivers import _sql
from taskqueue.jobs.model import LeaseToken

Cursor = Any
Result = tuple[int, tuple[tuple[Any, ...], ...]]


def ph(count: int) -> str:
    return _sql.placeholders(count, "%s")


def script(cur: Cursor, statements: Sequence[tuple[str, Sequence[Any]]],
           *, tx: bool = True) -> list[Result]:
    """Run ``statements`` (sql, params) in one round trip, inside one transaction when ``tx``;
    returns each statement's (affected rows, rows), in order (without START/COMMIT)."""
    parts = [cur.mogrify(sql, params) if params else sql for sql, params in statements]
    if tx:
        parts = ["START TRANSACTION", *parts, "COMMIT"]
    cur.execute(";\n".join(parts))
    results: list[Result] = []
    while True:
        results.append((cur.rowcount, tuple(cur.fetchall() or ())))
        if not cur.nextset():
            break
    return results[1:-1] if tx else results


def split(sql: str) -> list[str]:
    """The statements of a named query that holds several."""
    return [part.strip() for part in sql.split(";") if part.strip()]


def complete_many(cur: Cursor, q: dict[str, str],
                  items: Sequence[tuple[LeaseToken, str | None]]) -> tuple[list[bool], bool]:
    """``complete`` for every item as one transaction in one round trip (see mysql.sql:
    complete_lock, complete_many, claim_edges_many, release_claimed_many). Also says whether
    an edge was satisfied: a dependent may wait on nothing now (the caller rings)."""
    ids = sorted({token.job_id for token, _ in items})
    pairs: dict[tuple[str, int], str | None] = {}
    for (job_id, epoch), result in items:
        pairs.setdefault((job_id, epoch), result)
    results = [(key, value) for key, value in pairs.items() if value is not None]
    if results:
        case = "CASE " + " ".join(["WHEN id = %s AND lease_epoch = %s THEN %s"] * len(results))
        result_sql = case + " END"
        result_params = [v for (job_id, epoch), value in results for v in (job_id, epoch, value)]
    else:
        result_sql, result_params = "NULL", []
    id_list = ph(len(ids))
    flat = [v for pair in pairs for v in pair]
    update = q["complete_many"].format(result=result_sql, ids=id_list,
                                       pairs=", ".join(["(%s, %s)"] * len(pairs)))
    counted = [(sql, [*ids, *flat]) for sql in split(q["count_completed"].format(
        ids=id_list, pairs=", ".join(["(%s, %s)"] * len(pairs))))]
    statements: list[tuple[str, Sequence[Any]]] = [
        (q["complete_lock"].format(ids=id_list), ids),
        (q["counted_on"], ()),
        (update, [*result_params, *ids, *flat]),
        *counted,
        (q["counted_off"], ()),
        (q["claim_edges_many"].format(ids=id_list), [*ids, *ids]),
    ]
    statements += [(sql.format(ids=id_list), ids) for sql in split(q["release_claimed_many"])]
    answered = script(cur, statements)
    found = {job_id: epoch for job_id, epoch in answered[0][1]}
    accepted: set[tuple[str, int]] = set()
    out: list[bool] = []
    for token, _ in items:
        ok = found.get(token.job_id) == token.epoch and tuple(token) not in accepted
        if ok:
            accepted.add((token.job_id, token.epoch))
        out.append(ok)
    return out, answered[2][0] > 0


def lock_ready(cur: Cursor, q: dict[str, str], queues: Sequence[str], limit: int) -> list[str]:
    """Start a transaction and lock up to ``limit`` of the best ready jobs.

    The first round picks and locks in one statement (``reserve_pick``, uncontended: done).
    When it comes up short, later rounds read candidates past those taken without locks and
    lock what is still free, each looking four times as far down the list as is missing; the
    few extra rows they lock are released unused at commit.
    """
    pick = q["reserve_pick"].format(queues=ph(len(queues)))
    found = script(cur, [("START TRANSACTION", ()), (pick, (*queues, limit))],
                                tx=False)
    taken = [r[0] for r in found[1][1]]
    seen = list(taken)
    window = limit - len(taken)
    for _ in range(3):
        if len(taken) >= limit:
            break
        exclude = f"AND id NOT IN ({ph(len(seen))})" if seen else ""
        sql = q["reserve_candidates"].format(queues=ph(len(queues)), exclude=exclude)
        cur.execute(sql, (*queues, *seen, window))
        candidates = [r[0] for r in cur.fetchall()]
        if not candidates:
            break
        cur.execute(q["reserve_lock"].format(ids=ph(len(candidates))), candidates)
        locked = {r[0] for r in cur.fetchall()}
        taken += [c for c in candidates if c in locked][: limit - len(taken)]
        seen += candidates
        if len(candidates) < window:
            break
        window = 4 * (limit - len(taken))
    return taken
