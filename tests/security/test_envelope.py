"""Security 11 (issue #11): the payload envelope under attack, end to end through the store.

tests/unit/test_codec.py flips every bit of an envelope at the codec level; here the tampered
bytes sit in a real store on every backend and a real worker meets them: each tampered job ends
``failed`` with a clear reason, the untouched job next to it completes, the worker lives on.
Plus: a ciphertext moved onto another job, nonce uniqueness over 1,000,000 encryptions, a
compression bomb, and a push of exactly the size limit and one byte more.
"""

from __future__ import annotations

import base64
import functools
import os
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from taskqueue import PayloadTooLarge, QueueManager, State, generate_key
from taskqueue.codec import Codec, KeyRing, parse_key
from taskqueue.codec.crypto import NONCE_SIZE, TAG_SIZE
from taskqueue.drivers import JobFilter
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.model import NewJob
from tests.apps import sample_tasks as t
from tests.integration.conftest import drain

KEY = generate_key()
HEADER = 8  # b"TQ" + version + flags + 4-byte key id


@pytest.fixture
def sealed(store_url: str) -> Iterator[QueueManager]:
    manager = QueueManager.from_url(store_url, encryption_key=KEY)
    try:
        yield manager
    finally:
        manager.close()


def regions(payload: bytes) -> dict[str, list[int]]:
    """Byte offsets to flip in each part of an encrypted envelope (first, middle, last)."""
    def pick(lo: int, hi: int) -> list[int]:
        return sorted({lo, (lo + hi - 1) // 2, hi - 1})

    n = len(payload)
    return {"magic+version": [0, 1, 2], "flags": [3], "key id": pick(4, HEADER),
            "nonce": pick(HEADER, HEADER + NONCE_SIZE),
            "ciphertext": pick(HEADER + NONCE_SIZE, n - TAG_SIZE),
            "tag": pick(n - TAG_SIZE, n)}


EXPECTED = {  # what the dead-letter reason says for each region
    "magic+version": ("taskqueue marker", "format version"),
    "flags": ("failed authentication", "unknown flags"),
    "key id": ("not in the key ring",),
    "nonce": ("failed authentication",),
    "ciphertext": ("failed authentication",),
    "tag": ("failed authentication",),
}


def test_tampered_bytes_in_the_store_dead_letter_with_a_reason(sealed: QueueManager) -> None:
    template = sealed.get(sealed.push(t.add.call([1, 2], {})))
    assert template is not None and template.payload[3] & 0b10, "the payload is encrypted"
    tampered: dict[str, tuple[str, int]] = {}
    for region, offsets in regions(template.payload).items():
        for offset in offsets:
            job_id = str(sealed.push(t.add.call([2, 3], {})))
            record = sealed.get(job_id)
            assert record is not None
            data = bytearray(record.payload)
            data[offset] ^= 0xFF
            assert sealed.driver.replace_payload(job_id, bytes(data), 0)
            tampered[job_id] = (region, offset)
    control = sealed.push(t.add.call([20, 22], {}))
    drain(sealed, timeout=60)
    for job_id, (region, offset) in tampered.items():
        record = sealed.get(job_id)
        assert record is not None
        assert record.state == State.FAILED, (region, offset, record.state)
        assert record.attempts == 1, "no retry of a payload that can never decode"
        reason = record.exception or ""
        assert any(text in reason for text in EXPECTED[region]), (region, offset, reason)
    assert sealed.result(control) == 42, "the worker lived on and ran the untouched job"
    assert sealed.result(template.id) == 3


def test_ciphertext_moved_to_another_job_or_queue_fails(sealed: QueueManager) -> None:
    source = sealed.push(t.add.call([1, 1], {}))
    target = sealed.push(t.add.call([5, 5], {}))
    elsewhere = sealed.push(t.add.call([7, 7], {}), queue="other")
    stolen = sealed.get(source).payload  # type: ignore[union-attr]
    assert sealed.driver.replace_payload(target, stolen, 0)
    # same job id in another queue: copy the record's payload into a job we create there
    forged = NewJob(id=source, name="tests.add", payload=stolen, queue_name="other")
    assert sealed.driver.delete(source)
    assert sealed.driver.push([forged]) == [source]
    drain(sealed, queues=["default", "other"], timeout=60)
    for job_id in (target, source):
        record = sealed.get(job_id)
        assert record is not None and record.state == State.FAILED
        assert "copied from another job" in (record.exception or ""), record.exception
    assert sealed.result(elsewhere) == 14


def test_a_million_encryptions_never_repeat_a_nonce() -> None:
    """Every nonce KeyRing.encrypt uses is fresh. 1,000,000 encryptions; on a machine where
    that would take more than 20 s the test stops at 200,000 and says so."""
    ring = KeyRing(parse_key(KEY))
    count, done = 1_000_000, 0
    seen: set[bytes] = set()
    started = time.monotonic()
    while done < count:
        seen.add(ring.encrypt(b"{}", b"aad")[1][:NONCE_SIZE])
        done += 1
        if done == 200_000 and (time.monotonic() - started) * 5 > 20:
            count = done
    elapsed = time.monotonic() - started
    print(f"SECURITY nonces: {done:,} encryptions, {len(seen):,} distinct nonces in "
          f"{elapsed:.1f}s" + ("" if done == 1_000_000 else " (reduced: slow machine)"))
    assert len(seen) == done, f"{done - len(seen)} nonces repeated"


def test_compression_bomb_in_the_store_fails_cleanly(sealed: QueueManager) -> None:
    packer = zlib.compressobj(9)
    chunk = b"\0" * (1024 * 1024)
    body = packer.compress(b'"') + b"".join(packer.compress(chunk) for _ in range(100))
    body += packer.compress(b'"') + packer.flush()
    assert len(body) < 200 * 1024, "100 MiB of zeros in a small payload"
    bomb = NewJob(id=uuid7(), name="tests.add", payload=b"TQ\x01\x01" + body)
    sealed.driver.push([bomb])
    sealed.plaintext.turn_on()  # else it is refused before inflating, as unencrypted
    after = sealed.push(t.add.call([1, 2], {}))
    rss = psutil.Process().memory_info().rss
    drain(sealed, timeout=60)
    record = sealed.get(bomb.id)
    assert record is not None and record.state == State.FAILED
    assert "compression bomb" in (record.exception or ""), record.exception
    assert sealed.result(after) == 3
    grew = (psutil.Process().memory_info().rss - rss) / 2**20
    assert grew < 150, f"decoding the bomb grew the worker by {grew:.0f} MiB"


@functools.cache
def _sized_push_args(target: int) -> str:
    """An argument whose encoded envelope (plain codec, default settings) is exactly
    ``target`` bytes: a binary search on the length of an incompressible string."""
    rng = random.Random(11)
    noise = base64.b64encode(rng.randbytes(1_200_000)).decode()  # 6 bits per character
    codec = Codec(max_payload=10 * target)

    def size(n: int) -> int:
        body = t.echo.call([noise[:n]], {}).body  # what QueueManager.prepare encodes
        return len(codec.encode(body, job_id="x", queue="q"))

    lo, hi = 1, len(noise)
    while lo < hi:
        mid = (lo + hi) // 2
        if size(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    for n in (lo, lo - 1, lo + 1, lo - 2, lo + 2, lo + 3, lo - 3):
        if size(n) == target:
            return noise[:n]
    raise AssertionError(f"no length gives exactly {target} bytes")


def test_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(store_url: str) -> None:
    manager = QueueManager.from_url(store_url)  # default limit: 1 MiB after compression
    try:
        limit = manager.settings.max_payload
        assert limit == 1024 * 1024
        at_limit, over = _sized_push_args(limit), _sized_push_args(limit + 1)
        with pytest.raises(PayloadTooLarge) as info:
            t.echo.push([over], manager=manager)
        assert str(info.value) == (f"payload is {limit + 1:,} bytes after compression; the "
                                   f"limit is {limit:,} (TASKQUEUE_MAX_PAYLOAD)")
        assert manager.driver.count(JobFilter()) == 0, "nothing was stored"
        job_id = t.echo.push([at_limit], manager=manager)
        record = manager.get(job_id)
        assert record is not None and len(record.payload) == limit
    finally:
        manager.close()


def test_plain_payload_written_over_an_encrypted_job_is_refused(sealed: QueueManager) -> None:
    """A downgrade attack: whoever can write to the store swaps the authenticated payload for
    plain JSON with arguments of their choosing. With ENCRYPTION_KEY set the job fails with the
    reason, as a tampered one does; the switch row can only be made with the key."""
    victim = sealed.push(t.add.call([1, 2], {}))
    forged = Codec().encode({"args": [1000, 337]}, job_id=victim, queue="default")
    assert sealed.driver.replace_payload(victim, forged, 0)
    # a switch row written by the attacker (plain, or sealed with another key) does not count
    sealed.driver.registry_put("plaintext_accepted", "switch", {
        "id": "switch", "token": base64.b64encode(Codec().encode(
            {"accept_plaintext": True}, job_id="switch", queue="plaintext_accepted")).decode()},
        3600)
    other = Codec(KeyRing(parse_key(generate_key())))
    sealed.driver.registry_put("plaintext_accepted", "other", {
        "id": "other", "token": base64.b64encode(other.encode(
            {"accept_plaintext": True}, job_id="switch", queue="plaintext_accepted")).decode()},
        3600)
    control = sealed.push(t.add.call([20, 22], {}))
    drain(sealed, timeout=60)
    record = sealed.get(victim)
    assert record is not None and record.state == State.FAILED, record
    assert record.attempts == 1
    assert "payload is not encrypted but ENCRYPTION_KEY is set" in (record.exception or "")
    assert sealed.result(control) == 42


def test_the_migration_switch_lets_plain_jobs_run(store_url: str, sealed: QueueManager) -> None:
    """Jobs queued before encryption was switched on run while the switch is on, and fail
    again once it is off (every manager sharing the store sees it)."""
    with QueueManager.from_url(store_url) as before:  # a producer without the key
        early = [before.push(t.add.call([i, 1], {})) for i in range(3)]
    sealed.plaintext.turn_on()
    drain(sealed, timeout=60)
    assert [sealed.result(j) for j in early] == [1, 2, 3]
    with QueueManager.from_url(store_url) as before:
        late = before.push(t.add.call([5, 5], {}))
    with QueueManager.from_url(store_url, encryption_key=KEY) as other_process:
        other_process.plaintext.turn_off()
    assert not sealed.plaintext.is_on(fresh=True)
    drain(sealed, timeout=60)
    record = sealed.get(late)
    assert record is not None and record.state == State.FAILED
    assert "key:accept-plaintext" in (record.exception or "")


def test_taskqueue_work_refuses_a_downgraded_payload(tmp_path: Path) -> None:
    """The product path: the real `taskqueue work` process with ENCRYPTION_KEY in its
    environment fails the forged job with the reason and runs its neighbour."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with QueueManager.from_url(url, encryption_key=KEY) as producer:
        victim = producer.push(t.add.call([1, 2], {}))
        forged = Codec().encode({"args": [1000, 337]}, job_id=victim, queue="default")
        assert producer.driver.replace_payload(victim, forged, 0)
        honest = producer.push(t.add.call([20, 22], {}))
    done = subprocess.run(
        [sys.executable, "-m", "taskqueue", "--url", url, "work", "--stop-when-empty",
         "--app", "tests.apps.sample_tasks"], cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "ENCRYPTION_KEY": KEY}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with QueueManager.from_url(url, encryption_key=KEY) as reader:
        record = reader.get(victim)
        assert record is not None and record.state == State.FAILED
        assert "payload is not encrypted but ENCRYPTION_KEY is set" in (record.exception or "")
        assert reader.result(honest) == 42
