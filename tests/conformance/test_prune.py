"""Prune in batches and as a dry run, on every backend (issue 20 item 4): a large prune is many
short transactions that workers interleave with, never one statement that stalls them."""

from __future__ import annotations

import time

import pytest

from taskqueue.drivers import Driver, JobFilter
from taskqueue.jobs.states import State
from tests.conformance.test_driver import new


def finish(driver: Driver, count: int, *, fail: bool = False) -> list[str]:
    jobs = [new() for _ in range(count)]
    driver.push(jobs)
    done = []
    while len(done) < count:
        for rec in driver.reserve("w1", ["default"], 50, 30.0):
            if fail:
                assert driver.fail(rec.token, "boom", retry_in=None)
            else:
                assert driver.complete(rec.token, None)
            done.append(rec.id)
    return done


def test_prune_in_batches_and_dry_run(driver: Driver) -> None:
    finish(driver, 25)
    finish(driver, 5, fail=True)
    waiting = new()
    driver.push([waiting])
    time.sleep(1.1)  # finished more than a second ago

    assert driver.prune(1.0, 1.0, dry_run=True) == 30
    assert driver.count(JobFilter()) == 31, "a dry run deletes nothing"
    assert driver.prune(3600.0, 3600.0, dry_run=True) == 0, "younger than the age: kept"

    batches = []
    while True:
        deleted = driver.prune(1.0, 1.0, limit=7)
        assert deleted <= 7
        batches.append(deleted)
        if deleted < 7:
            break
    assert sum(batches) == 30 and len(batches) >= 5
    assert driver.count(JobFilter()) == 1
    assert driver.get(waiting.id) is not None and driver.get(waiting.id).state == State.PENDING


@pytest.mark.parametrize("limit", [None, 1000])
def test_prune_without_a_limit_or_with_a_large_one_takes_everything(driver: Driver,
                                                                     limit: int | None) -> None:
    finish(driver, 12)
    time.sleep(1.1)
    assert driver.prune(1.0, 1.0, limit=limit) == 12
    assert driver.count(JobFilter()) == 0
