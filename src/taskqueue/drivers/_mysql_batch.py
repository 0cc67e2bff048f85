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
from taskqueue.drivers._mysql_counts import Tally
from taskqueue.jobs.model import LeaseToken
from taskqueue.jobs.states import State

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
    """``complete`` for every item as one transaction in two round trips (see mysql.sql:
    complete_lock, complete_many, claim_edges_many, release_claimed_many): the first locks the
    batch's jobs still processing and reads their epochs, queue and priority; under those locks
    the second completes exactly the rows whose epoch matches, counts them (``Tally``) and
    releases their dependents. Also says whether an edge was satisfied: a dependent may wait on
    nothing now (the caller rings)."""
    ids = sorted({token.job_id for token, _ in items})
    locked = script(cur, [("START TRANSACTION", ()),
                          (q["complete_lock"].format(ids=ph(len(ids))), ids)], tx=False)[1][1]
    found = {row[0]: row for row in locked}
    results: dict[str, str | None] = {}
    for (job_id, epoch), result in items:
        if job_id in found and found[job_id][1] == epoch:
            results.setdefault(job_id, result)
    out: list[bool] = []
    accepted: set[str] = set()
    for token, _ in items:
        ok = token.job_id in results and found[token.job_id][1] == token.epoch \
            and token.job_id not in accepted
        if ok:
            accepted.add(token.job_id)
        out.append(ok)
    if not results:
        cur.execute("COMMIT")
        return out, False
    done = sorted(results)
    given = [(job_id, value) for job_id, value in results.items() if value is not None]
    result_sql = "CASE id " + " ".join(["WHEN %s THEN %s"] * len(given)) + " END" if given \
        else "NULL"
    marks = ph(len(done))
    counts = Tally().moves((found[job_id][2:] for job_id in done), State.COMPLETED.value)
    statements: list[tuple[str, Sequence[Any]]] = [
        (q["complete_many"].format(result=result_sql, ids=marks),
         [*(v for pair in given for v in pair), *done]),
        *[(sql, ()) for sql in counts.statements(cur, q)],
    ]
    claim = len(statements)
    statements.append((q["claim_edges_many"].format(ids=marks), done))
    statements += [(sql.format(ids=marks), done) for sql in split(q["release_claimed_many"])]
    answered = script(cur, [*statements, ("COMMIT", ())], tx=False)
    return out, answered[claim][0] > 0


def lock_ready(cur: Cursor, q: dict[str, str], queues: Sequence[str],
               limit: int) -> list[tuple[Any, ...]]:
    """Start a transaction and lock up to ``limit`` of the best ready jobs: their (id, queue,
    state, priority) rows, the counters' moves.

    The first round picks and locks in one statement (``reserve_pick``, uncontended: done).
    When it comes up short, later rounds read candidates past those taken without locks and
    lock what is still free, each looking four times as far down the list as is missing; the
    few extra rows they lock are released unused at commit.
    """
    pick = q["reserve_pick"].format(queues=ph(len(queues)))
    found = script(cur, [("START TRANSACTION", ()), (pick, (*queues, limit))],
                                tx=False)
    taken = list(found[1][1])
    seen = [r[0] for r in taken]
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
        locked = {r[0]: r for r in cur.fetchall()}
        taken += [locked[c] for c in candidates if c in locked][: limit - len(taken)]
        seen += candidates
        if len(candidates) < window:
            break
        window = 4 * (limit - len(taken))
    return taken
