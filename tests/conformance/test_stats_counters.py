"""``stats`` at millions (issue 20 item 5): the SQL stores read counters kept as jobs change
state instead of counting the table. Whatever path moves a job, the figures must equal an exact
count of the rows: a random mix of every verb that changes jobs, checked against ``count`` and
``search`` after each step, on every backend."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest

from taskqueue.drivers import Driver, JobFilter
from taskqueue.drivers.base import CompletesAndReserves
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new

QUEUES = ("a", "b")
WAITING = (State.PENDING, State.RETRYING)


def exact(driver: Driver) -> dict[str, dict[str, object]]:
    """What ``stats`` must say, from exact counts and the waiting jobs themselves."""
    out: dict[str, dict[str, object]] = {}
    for queue in QUEUES:
        counts = {s: driver.count(JobFilter(queues=(queue,), states=(s,))) for s in State}
        if not any(counts.values()):
            continue
        waiting = driver.search(JobFilter(queues=(queue,), states=WAITING, limit=10_000))
        out[queue] = {
            "counts": counts,
            "avg_priority": (sum(j.priority for j in waiting) / len(waiting)) if waiting
            else None,
            "oldest": min((j.available_at for j in waiting), default=None),
        }
    return out


def check(driver: Driver, completions: int, step: str) -> None:
    want = exact(driver)
    got = driver.stats()
    got = {q: s for q, s in got.items() if any(s.counts.values())}
    assert set(got) == set(want), step
    for queue, figures in want.items():
        qs = got[queue]
        assert qs.counts == figures["counts"], (step, queue)
        if figures["avg_priority"] is None:
            assert qs.avg_priority is None, (step, queue)
        else:
            average = pytest.approx(figures["avg_priority"], abs=1e-3)
            assert qs.avg_priority == average, (step, queue)
        oldest = figures["oldest"]
        if oldest is None:
            assert qs.oldest_ready_at is None, (step, queue)
        else:
            assert qs.oldest_ready_at is not None, (step, queue)
            assert abs((qs.oldest_ready_at - oldest).total_seconds()) < 0.002, (step, queue)
    # completions in the last minute: at least the completed jobs still there, at most the
    # completions made (a store that counts completions keeps counting a pruned one)
    present = sum(int(f["counts"][State.COMPLETED]) for f in want.values())  # type: ignore[index]
    recent = sum(s.completed_last_minute for s in got.values())
    assert present <= recent <= completions, step


class Mix:
    """The operations, each on a random job in the state it needs; ``run`` picks them."""

    def __init__(self, driver: Driver, rng: random.Random) -> None:
        self.d, self.rng, self.completions, self.removed = driver, rng, 0, 0
        self.held: dict[str, JobRecord] = {}   # reserved by us: id -> record (token)

    def _pick(self, *states: State) -> JobRecord | None:
        found = self.d.search(JobFilter(states=states, limit=200))
        return self.rng.choice(found) if found else None

    def _take(self, count: int) -> list[JobRecord]:
        return [self.held.pop(i) for i in self.rng.sample(sorted(self.held),
                                                          min(count, len(self.held)))]

    def push(self) -> None:
        jobs = [new(queue_name=self.rng.choice(QUEUES), priority=self.rng.choice((1, 5, 10, 20)),
                    delay_seconds=self.rng.choice((0.0, 0.0, 30.0)))
                for _ in range(self.rng.randint(1, 6))]
        self.d.push(jobs)

    def reserve(self) -> None:
        lease = self.rng.choice((30.0, 30.0, 0.2))
        for rec in self.d.reserve("w1", list(QUEUES), self.rng.randint(1, 4), lease):
            self.held[rec.id] = rec

    def complete(self) -> None:
        taken = self._take(self.rng.randint(1, 3))
        answers = self.d.complete_many([(r.token, "ok") for r in taken])
        self.completions += sum(answers)

    def complete_and_reserve(self) -> None:
        if not isinstance(self.d, CompletesAndReserves):
            return self.complete()
        taken = self._take(self.rng.randint(0, 3))
        answers, got = self.d.complete_and_reserve([(r.token, None) for r in taken], "w1",
                                                   list(QUEUES), 2, 30.0)
        self.completions += sum(answers)
        self.held.update((r.id, r) for r in got)
        return None

    def fail(self) -> None:
        for rec in self._take(1):
            self.d.fail(rec.token, "boom", self.rng.choice((None, 0.0, 30.0)))

    def release(self) -> None:
        for rec in self._take(1):
            self.d.release(rec.token, self.rng.choice((0.0, 30.0)), "held")

    def cancel(self) -> None:
        rec = self._pick(State.PENDING, State.RETRYING, State.PROCESSING)
        if rec is not None:
            self.d.cancel(rec.id, "stop")

    def retry(self) -> None:
        rec = self._pick(State.FAILED, State.CANCELLED)
        if rec is not None:
            self.d.retry(rec.id)

    def set_priority(self) -> None:
        rec = self._pick(State.PENDING, State.RETRYING, State.PROCESSING)
        if rec is not None:
            self.d.set_priority(rec.id, self.rng.choice((0, 3, 50)))

    def delete(self) -> None:
        rec = self._pick(*State)
        if rec is not None and self.d.delete(rec.id):
            self.held.pop(rec.id, None)

    def bulk(self) -> None:
        """``apply_many``, the dashboard's set-based bulk action, on a random page."""
        action = self.rng.choice(("retry", "cancel", "priority", "delete"))
        page = [j.id for j in self.d.search(JobFilter(limit=200))]
        picked = self.rng.sample(page, min(len(page), self.rng.randint(1, 5)))
        changed = self.d.apply_many(action, picked, reason="bulk", priority=7)
        if action in ("cancel", "delete"):
            for job_id in changed:
                self.held.pop(job_id, None)

    def prune(self) -> None:
        self.d.prune(0.0, 0.0, limit=self.rng.choice((None, 2)))

    def recover(self) -> None:
        time.sleep(0.25)   # the 0.2 s leases run out
        for job_id in self.d.recover_expired():
            self.held.pop(job_id, None)

    def recover_worker(self) -> None:
        started = [i for i in self.held if self.rng.random() < 0.5]
        for job_id in self.d.recover_worker("w1", "died", started):
            self.held.pop(job_id, None)

    def restore(self) -> None:
        rec = self._pick(*State)
        if rec is not None:   # a copy under a new id, its state and all
            self.d.restore([replace(rec, id=new().id, idempotency_key=None, dependencies=())])
            self.completions += rec.state == State.COMPLETED

    def run(self, steps: int) -> None:
        verbs = ["push"] * 4 + ["reserve"] * 4 + ["complete"] * 3 + [
            "complete_and_reserve", "fail", "fail", "release", "cancel", "retry",
            "set_priority", "delete", "prune", "recover_worker", "restore", "bulk", "bulk"]
        for i in range(steps):
            verb = "recover" if i in (steps // 3, 2 * steps // 3) else self.rng.choice(verbs)
            getattr(self, verb)()
            check(self.d, self.completions, f"step {i}: {verb}")


@pytest.mark.parametrize("seed", [1, 2])
def test_stats_equal_an_exact_count_through_a_random_mix(driver: Driver, seed: int) -> None:
    Mix(driver, random.Random(seed)).run(60)


def test_stats_count_a_bulk_push_and_a_big_prune(driver: Driver) -> None:
    driver.push([new(queue_name="a", priority=i % 7) for i in range(300)])
    check(driver, 0, "pushed")
    done = 0
    while jobs := driver.reserve("w", ["a"], 100, 30.0):
        done += sum(driver.complete_many([(j.token, None) for j in jobs]))
    check(driver, done, "drained")
    time.sleep(0.05)
    assert driver.prune(0.0, 0.0) == 300
    check(driver, done, "pruned")
