"""The MySQL driver's stats counters, kept by the driver itself (migration 8: no triggers).

Every statement that adds, moves or removes jobs is preceded by a read that locks the rows it
will change and returns their queue, state and priority (``FOR UPDATE``: under those locks the
change touches exactly them), so the counter changes are known before the change runs and go
to the server in the same script and transaction: ``Tally`` adds them up, one row per queue,
state and priority, and renders them as one upsert (plus one for the completions per second).
A batch of completions, which takes its locks inside its one-round-trip script, counts with a
grouped statement of its own instead (mysql.sql: ``count_completed``).

Counters are split into 16 slots by connection (see migration 6); the rows of one upsert are
written in key order, so two transactions that share a slot take them in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from taskqueue.jobs.states import State

Cursor = Any
#: (queue, state, priority) as a locking read returns them.
Row = Sequence[Any]
_COMPLETED = State.COMPLETED.value


class Tally:
    """Counter changes of one transaction, rendered as statements by ``statements``."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.completed: dict[str, int] = {}

    def add(self, queue: str, state: str, priority: int, n: int = 1) -> None:
        key = (queue, state, int(priority))
        self.counts[key] = self.counts.get(key, 0) + n

    def move(self, row: Row, state: str | None = None, priority: int | None = None) -> None:
        """A job of ``row`` (queue, state, priority) goes to ``state`` and ``priority`` (each
        unchanged when None); ``state=""`` removes it."""
        queue, old_state, old_priority = row[0], row[1], int(row[2])
        new_state = old_state if state is None else state
        new_priority = old_priority if priority is None else priority
        if (new_state, new_priority) == (old_state, old_priority):
            return
        self.add(queue, old_state, old_priority, -1)
        if new_state:
            self.add(queue, new_state, new_priority)
        if new_state == _COMPLETED != old_state:
            self.completed[queue] = self.completed.get(queue, 0) + 1

    def moves(self, rows: Iterable[Row], state: str | None = None,
              priority: int | None = None) -> Tally:
        for row in rows:
            self.move(row, state, priority)
        return self

    def statements(self, cur: Cursor, q: dict[str, str]) -> list[str]:
        """The upserts for these changes (none when nothing changed), values escaped."""
        out: list[str] = []
        changed = sorted((key, n) for key, n in self.counts.items() if n)
        if changed:
            rows = ", ".join(cur.mogrify(q["count_row"], (*key, n)) for key, n in changed)
            out.append(q["count_moves"].format(rows=rows))
        if self.completed:
            rows = ", ".join(cur.mogrify(q["completion_row"], item)
                             for item in sorted(self.completed.items()))
            out.append(q["count_completions"].format(rows=rows))
        return out

    def run(self, cur: Cursor, q: dict[str, str]) -> None:
        """Execute ``statements`` one by one (on a session that may not allow scripts)."""
        for sql in self.statements(cur, q):
            cur.execute(sql)


def corrections(table: Iterable[Row], counters: Iterable[Row]) -> Tally:
    """What to add to the counters so they equal the table: both are (queue, state, priority,
    jobs) rows read in one snapshot."""
    tally = Tally()
    for queue, state, priority, n in table:
        tally.add(queue, state, priority, int(n))
    for queue, state, priority, n in counters:
        tally.add(queue, state, priority, -int(n))
    return tally
