"""Security 11 (issue #11): key rotation with jobs in flight, and ``taskqueue key:reencrypt``.

The command is exercised through a tiny click group (the same ``ctx.obj = {"url": ...}`` the
real ``taskqueue`` group sets), on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from taskqueue import QueueManager, State, Worker, WorkerOptions, generate_key
from taskqueue.cli import keys
from taskqueue.codec import parse_key
from taskqueue.codec.crypto import key_id
from taskqueue.errors import DecryptionError
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain

OLD, NEW = generate_key(), generate_key()


@click.group()
@click.option("--url")
@click.pass_context
def group(ctx: click.Context, url: str | None) -> None:
    ctx.obj = {"url": url}


for _command in keys.COMMANDS:
    group.add_command(_command)


def reencrypt(url: str, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(group, ["--url", url, "key:reencrypt", *args],
                              env={"ENCRYPTION_KEY": "", "ENCRYPTION_PREVIOUS_KEYS": "", **env},
                              catch_exceptions=False)


def kid(payload: bytes) -> bytes:
    return payload[4:8]


@pytest.fixture
def old(store_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(store_url, encryption_key=OLD)
    yield m
    m.close()


@pytest.fixture
def rotated(store_url: str) -> Iterator[QueueManager]:
    m = QueueManager.from_url(store_url, encryption_key=NEW, encryption_previous_keys=OLD)
    yield m
    m.close()


def test_rotation_with_jobs_in_flight_then_reencrypt(store_url: str, old: QueueManager,
                                                     rotated: QueueManager) -> None:
    waiting = [old.push(t.add.call([i, i], {})) for i in range(12)]
    delayed = old.push(t.add.call([100, 1], {}), delay=3600)
    in_flight = old.driver.reserve("w-old", ["default"], 3, 300)  # an old worker holds these
    assert len(in_flight) == 3
    done = old.driver.reserve("w-old", ["default"], 1, 300)[0]
    assert old.driver.complete(done.token, old.encode_result(7, done.id))
    due_before = old.get(delayed).available_at  # type: ignore[union-attr]

    # rotation: new producers write with NEW; a job pushed by a not-yet-restarted producer
    late = old.push(t.add.call([5, 5], {}))
    fresh = rotated.push(t.add.call([6, 6], {}))
    assert kid(rotated.get(fresh).payload) == key_id(parse_key(NEW))  # type: ignore[union-attr]

    result = reencrypt(store_url, {"ENCRYPTION_KEY": NEW, "ENCRYPTION_PREVIOUS_KEYS": OLD},
                       "--json")
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output)
    pending_ids = set(waiting) - {j.id for j in in_flight} - {done.id}
    assert summary["reencrypted"] == len(pending_ids) + 2  # + the delayed and the late job
    assert summary["already_current"] == 1
    assert summary["unreadable"] == 0
    assert summary["old_key_in_other_states"] == {"processing": 3, "completed": 1}
    assert "ENCRYPTION_PREVIOUS_KEYS" in summary["note"]
    assert OLD not in result.output and NEW not in result.output
    assert OLD.removeprefix("base64:") not in result.output

    new_id = key_id(parse_key(NEW))
    for job_id in [*pending_ids, delayed, late, fresh]:
        record = rotated.get(job_id)
        assert record is not None and record.state == State.PENDING
        assert kid(record.payload) == new_id, job_id
    for job in in_flight:  # not pending: untouched, still the old key
        assert kid(rotated.get(job.id).payload) == kid(job.payload)  # type: ignore[union-attr]
    due_after = rotated.get(delayed).available_at  # type: ignore[union-attr]
    assert abs((due_after - due_before).total_seconds()) < 5, "the delay was kept"

    # a worker that only knows the new key cannot read what stayed on the old one ...
    new_only = QueueManager.from_url(store_url, encryption_key=NEW)
    try:
        with pytest.raises(DecryptionError, match="not in the key ring"):
            new_only.decode(in_flight[0])
        assert new_only.decode(rotated.get(late)) == {"args": [5, 5]}  # type: ignore[arg-type]
    finally:
        new_only.close()
    # ... so the old key stays in ENCRYPTION_PREVIOUS_KEYS: in-flight jobs still finish
    for job in in_flight:
        worker = Worker(rotated, WorkerOptions(worker_id="w-old"))
        worker.process_reserved(job)
        worker.executor.close()
    assert rotated.cancel(delayed)  # due in an hour: not waiting for it
    drain(rotated, timeout=60)
    for job_id in [*pending_ids, late, fresh, *(j.id for j in in_flight)]:
        assert rotated.get(job_id).state == State.COMPLETED, job_id  # type: ignore[union-attr]
    assert rotated.result(done.id) == 7, "a result sealed with the old key still reads"

    again = reencrypt(store_url, {"ENCRYPTION_KEY": NEW, "ENCRYPTION_PREVIOUS_KEYS": OLD})
    assert again.exit_code == 0, again.output
    assert "re-encrypted 0 of 0 pending jobs" in again.output, again.output
    assert "keep the old key in ENCRYPTION_PREVIOUS_KEYS" in again.output


def test_reencrypt_reports_jobs_no_key_can_read(store_url: str, old: QueueManager) -> None:
    lost_key = old.push(t.add.call([1, 1], {}))
    result = reencrypt(store_url, {"ENCRYPTION_KEY": NEW}, "--json")  # OLD forgotten
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert summary["unreadable"] == 1 and summary["unreadable_examples"][0]["id"] == lost_key
    assert "not in the key ring" in summary["unreadable_examples"][0]["reason"]
    record = old.get(lost_key)
    assert record is not None and record.state == State.PENDING, "left alone"


def test_reencrypt_without_a_key_is_a_usage_error(store_url: str) -> None:
    result = reencrypt(store_url, {})
    assert result.exit_code == 2
    assert "ENCRYPTION_KEY is not set" in result.output


def test_dry_run_changes_nothing(store_url: str, old: QueueManager) -> None:
    job_id = old.push(t.add.call([1, 1], {}))
    before = old.get(job_id).payload  # type: ignore[union-attr]
    result = reencrypt(store_url, {"ENCRYPTION_KEY": NEW, "ENCRYPTION_PREVIOUS_KEYS": OLD},
                       "--dry-run")
    assert result.exit_code == 0 and "would re-encrypt 1 of 1" in result.output, result.output
    assert old.get(job_id).payload == before  # type: ignore[union-attr]


def test_reencrypt_counts_never_encrypted_jobs_apart(store_url: str, old: QueueManager) -> None:
    """Turning encryption on: jobs queued without a key are "encrypted", not "re-encrypted";
    they are touched only while key:accept-plaintext is on, which the run then turns off."""
    sealed_old = old.push(t.add.call([1, 1], {}))
    with QueueManager.from_url(store_url) as plain:
        unencrypted = [plain.push(t.add.call([i, i], {})) for i in range(3)]
    env = {"ENCRYPTION_KEY": NEW, "ENCRYPTION_PREVIOUS_KEYS": OLD}

    refused = reencrypt(store_url, env, "--json")
    assert refused.exit_code == 1, refused.output
    summary = json.loads(refused.output)
    assert (summary["reencrypted"], summary["encrypted"], summary["unencrypted_refused"]) \
        == (1, 0, 3)
    text = reencrypt(store_url, env).output
    assert "3 pending jobs are not encrypted" in text and "key:accept-plaintext" in text

    switch = CliRunner().invoke(group, ["--url", store_url, "key:accept-plaintext"], env=env)
    assert switch.exit_code == 0, switch.output
    dry = json.loads(reencrypt(store_url, env, "--dry-run", "--json").output)
    assert (dry["would_encrypt"], dry["would_reencrypt"], dry["accept_plaintext"]) == (3, 0, "on")
    done = reencrypt(store_url, env)
    assert done.exit_code == 0, done.output
    assert "re-encrypted 0 of 4 pending jobs" in done.output, done.output
    assert "encrypted 3 pending jobs that were not encrypted at all" in done.output
    assert "refused again" in done.output
    with QueueManager.from_url(store_url, encryption_key=NEW,
                               encryption_previous_keys=OLD) as rotated:
        assert not rotated.plaintext.is_on(fresh=True), "the run turned the switch off"
        for job_id in [*unencrypted, sealed_old]:
            assert kid(rotated.get(job_id).payload) == key_id(parse_key(NEW))  # type: ignore
        drain(rotated, timeout=60)
        assert [rotated.result(j) for j in unencrypted] == [0, 2, 4]


def test_accept_plaintext_needs_a_key(store_url: str) -> None:
    result = CliRunner().invoke(group, ["--url", store_url, "key:accept-plaintext"],
                                env={"ENCRYPTION_KEY": ""})
    assert result.exit_code == 2 and "ENCRYPTION_KEY is not set" in result.output


def test_jobs_list_json_decrypts_results_with_the_key(store_url: str, old: QueueManager) -> None:
    from taskqueue.cli import cli

    job_id = old.push(t.add.call([20, 22], {}))
    drain(old, timeout=60)
    assert (old.get(job_id).result or "").startswith("tq1:"), "stored encrypted"  # type: ignore
    for command in (["jobs", "list", "--json"], ["jobs", "show", job_id, "--json"]):
        out = CliRunner().invoke(cli, ["--url", store_url, *command],
                                 env={"ENCRYPTION_KEY": OLD}, catch_exceptions=False).stdout
        listed = json.loads(out)
        row = listed[0] if isinstance(listed, list) else listed
        assert row["id"] == job_id and row["result"] == 42, out
    keyless = CliRunner().invoke(cli, ["--url", store_url, "jobs", "list", "--json"],
                                 env={"ENCRYPTION_KEY": ""}, catch_exceptions=False).stdout
    assert json.loads(keyless)[0]["result"].startswith("(cannot be read: payload is encrypted")
