"""Reliability 7 (issue #11): a Hypothesis state machine against a simple in-memory model, on
every driver.

Rules: push, reserve (with a long or an already-expired lease), heartbeat, complete, fail (retry
or dead-letter), release, cancel, manual retry, expire + recover. Settle calls are made with any
token ever issued, stale ones included. After every step each job's state, attempts and lease
epoch in the store must equal the model's, and every accept/refuse must match the model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from taskqueue.drivers import Driver
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import LeaseToken, NewJob
from taskqueue.jobs.states import State

SHORT = 0.01  # a lease that is over by the time anyone looks
LONG = 60.0


@dataclass
class ModelJob:
    state: State = State.PENDING
    attempts: int = 0
    max_attempts: int = 3
    epoch: int = 0
    short: bool = False


def make_machine(driver: Driver) -> type[RuleBasedStateMachine]:
    class DriverModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.queue = "m" + uuid7()[-12:]
            self.jobs: dict[str, ModelJob] = {}
            self.tokens: list[LeaseToken] = []

        def ready(self) -> set[str]:
            return {j for j, m in self.jobs.items() if m.state in (State.PENDING,
                                                                   State.RETRYING)}

        def accepts(self, token: LeaseToken) -> bool:
            m = self.jobs[token.job_id]
            return m.state == State.PROCESSING and m.epoch == token.epoch

        @rule(count=st.integers(1, 3), max_attempts=st.integers(1, 3))
        def push(self, count: int, max_attempts: int) -> None:
            jobs = [NewJob(id=uuid7(), name="model", payload=b"{}", queue_name=self.queue,
                           max_attempts=max_attempts) for _ in range(count)]
            assert driver.push(jobs) == [j.id for j in jobs]
            for job in jobs:
                self.jobs[job.id] = ModelJob(max_attempts=max_attempts)

        @rule(limit=st.integers(1, 3), short=st.booleans())
        def reserve(self, limit: int, short: bool) -> None:
            ready = self.ready()
            got = driver.reserve("w", [self.queue], limit, SHORT if short else LONG)
            assert len(got) == min(limit, len(ready)), (len(got), limit, len(ready))
            for record in got:
                assert record.id in ready, "reserved a job that was not ready"
                m = self.jobs[record.id]
                m.state, m.attempts, m.epoch, m.short = (State.PROCESSING, m.attempts + 1,
                                                         m.epoch + 1, short)
                assert (record.attempts, record.lease_epoch) == (m.attempts, m.epoch)
                self.tokens.append(record.token)

        @precondition(lambda self: self.tokens)
        @rule(data=st.data())
        def heartbeat(self, data: st.DataObject) -> None:
            # leases that ran out but were not recovered yet are left alone: the contract
            # does not say whether a heartbeat may still renew them
            candidates = [t for t in self.tokens if not (self.accepts(t)
                                                         and self.jobs[t.job_id].short)
                          and not any(self.accepts(o) and self.jobs[o.job_id].short
                                      for o in self.tokens if o.job_id == t.job_id)]
            if not candidates:
                return
            tokens = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3,
                                        unique_by=lambda t: t.job_id))
            result = driver.heartbeat("w", tokens, LONG)
            held = {t.job_id for t in tokens if self.accepts(t)}
            expected_lost = {t.job_id for t in tokens if not self.accepts(t)} - held
            assert set(result.extended) == held, (result, held)
            # a job cancelled meanwhile is reported as cancelled, anything else as lost
            assert set(result.lost) | set(result.cancelled) == expected_lost, (result,
                                                                                 expected_lost)
            assert all(self.jobs[j].state == State.CANCELLED for j in result.cancelled)

        @precondition(lambda self: self.tokens)
        @rule(data=st.data(), how=st.sampled_from(["complete", "retry", "dead", "release"]))
        def settle(self, data: st.DataObject, how: str) -> None:
            token = data.draw(st.sampled_from(self.tokens))
            expected = self.accepts(token)
            if how == "complete":
                accepted = driver.complete(token, '"ok"')
            elif how == "release":
                accepted = driver.release(token, 0.0)
            else:
                accepted = driver.fail(token, "boom", 0.0 if how == "retry" else None)
            assert bool(accepted) == expected, (how, token, self.jobs[token.job_id])
            if expected:
                m = self.jobs[token.job_id]
                m.short = False
                if how == "complete":
                    m.state = State.COMPLETED
                elif how == "release":
                    m.state, m.attempts = State.PENDING, max(m.attempts - 1, 0)
                else:
                    m.state = State.RETRYING if how == "retry" else State.FAILED

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            m = self.jobs[job_id]
            expected = m.state in (State.PENDING, State.RETRYING, State.PROCESSING)
            assert driver.cancel(job_id, "model") == expected
            if expected:
                m.state, m.short = State.CANCELLED, False

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def manual_retry(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            m = self.jobs[job_id]
            expected = m.state in (State.FAILED, State.CANCELLED)
            assert driver.retry(job_id) == expected
            if expected:
                m.state, m.attempts = State.PENDING, 0

        @rule()
        def expire_and_recover(self) -> None:
            time.sleep(SHORT * 3)
            recovered = set(driver.recover_expired()) & set(self.jobs)
            expected = {j for j, m in self.jobs.items() if m.state == State.PROCESSING
                        and m.short}
            assert recovered == expected
            for job_id in expected:
                m = self.jobs[job_id]
                m.short = False
                m.state = State.FAILED if m.attempts >= m.max_attempts else State.RETRYING

        @invariant()
        def store_matches_model(self) -> None:
            for job_id, m in self.jobs.items():
                record = driver.get(job_id)
                assert record is not None, job_id
                assert (record.state, record.attempts, record.lease_epoch) == (
                    m.state, m.attempts, m.epoch), (job_id, record.state, m)

    return DriverModel


def test_driver_matches_the_model(driver: Driver) -> None:
    machine = make_machine(driver)
    machine.TestCase.settings = settings(
        max_examples=20, stateful_step_count=20, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=machine.TestCase.settings)


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
