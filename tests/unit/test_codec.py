"""Tests for taskqueue.codec: strict JSON, compression, encryption and the envelope format."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import decimal
import enum
import os
import uuid
import zlib
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskqueue.codec as codec_pkg
from taskqueue.codec import Codec, KeyRing, dumps, generate_key, loads, parse_key
from taskqueue.codec.compress import compress, decompress
from taskqueue.codec.crypto import key_id
from taskqueue.codec.serialize import INT_MAX, INT_MIN, MAX_DEPTH
from taskqueue.errors import (
    ConfigError,
    DecryptionError,
    PayloadError,
    PayloadTooLarge,
    UnencryptedPayload,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
JOB = "01J9Z3K6Y2V4M8Q0R5T7W9X1A3"
QUEUE = "default"
BODY = {"args": [1, "two", {"three": 3.5}], "kwargs": {"flag": True, "none": None}}
ALLOWED = "(only dict, list, str, int, float, bool and None are allowed)"
PREFIX = "job arguments are not JSON-serializable: "
AUTH_FAILED = "payload failed authentication: tampered, or copied from another job"

# Property tests keep no example database so they leave nothing behind in the repository.
PROPERTY = settings(database=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=40,
)


def b64(raw: bytes) -> str:
    """Standard base64 text of ``raw``."""
    return base64.b64encode(raw).decode("ascii")


def encrypted_codec(**options: Any) -> Codec:
    """A codec whose ring encrypts with KEY_A."""
    return Codec(KeyRing(KEY_A), **options)


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with the bits in ``mask`` flipped at ``index``."""
    changed = bytearray(data)
    changed[index] ^= mask
    return bytes(changed)


def repetitive_body(size: int = 10 * 1024) -> dict[str, Any]:
    """A body whose JSON is about ``size`` bytes of highly repetitive text."""
    return {"args": ["hello world " * (size // 12)], "kwargs": {}}


class Color(enum.Enum):
    RED = 1


class Mood(enum.StrEnum):
    HAPPY = "happy"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


class Pair(NamedTuple):
    a: int
    b: int


class Thing:
    pass


# --------------------------------------------------------------------------- package surface


def test_package_exports_exactly_the_public_api() -> None:
    assert sorted(codec_pkg.__all__) == sorted(
        ["Codec", "KeyRing", "generate_key", "parse_key", "dumps", "loads"]
    )
    for name in codec_pkg.__all__:
        assert getattr(codec_pkg, name) is not None


# --------------------------------------------------------------------------- serialize


def test_dumps_writes_compact_json() -> None:
    assert dumps(BODY) == b'{"args":[1,"two",{"three":3.5}],"kwargs":{"flag":true,"none":null}}'


def test_dumps_stores_tuples_as_lists() -> None:
    assert loads(dumps({"args": (1, (2, 3))})) == {"args": [1, [2, 3]]}


def test_dumps_accepts_the_64_bit_integer_limits_and_nesting_limit() -> None:
    assert loads(dumps([INT_MIN, INT_MAX])) == [INT_MIN, INT_MAX]
    nested: Any = 0
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert loads(dumps(nested)) == nested


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"args": [1, {"when": datetime.datetime(2024, 1, 2)}]},
            f"args[1]['when'] is a datetime {ALLOWED}",
        ),
        ({"args": [datetime.date(2024, 1, 2)]}, f"args[0] is a date {ALLOWED}"),
        ({"kwargs": {"tags": {"a", "b"}}}, f"kwargs['tags'] is a set {ALLOWED}"),
        ({"kwargs": {"obj": Thing()}}, f"kwargs['obj'] is a Thing {ALLOWED}"),
        ({"args": [b"raw"]}, f"args[0] is a bytes {ALLOWED}"),
        ({"args": [uuid.UUID(int=1)]}, f"args[0] is a UUID {ALLOWED}"),
        ({"args": [decimal.Decimal("1.5")]}, f"args[0] is a Decimal {ALLOWED}"),
        ({"args": [Point(1)]}, f"args[0] is a Point {ALLOWED}"),
        ({"args": [Color.RED]}, "args[0] is a Color enum member (pass its .value instead)"),
        ({"args": [Mood.HAPPY]}, "args[0] is a Mood enum member (pass its .value instead)"),
        ({"args": [Level.HIGH]}, "args[0] is a Level enum member (pass its .value instead)"),
        (
            {"kwargs": collections.OrderedDict(a=1)},
            "kwargs is an OrderedDict, a subclass of dict (convert it to a plain dict)",
        ),
        (
            {"kwargs": {"p": Pair(1, 2)}},
            "kwargs['p'] is a Pair, a subclass of tuple (convert it to a plain tuple)",
        ),
        (
            {"kwargs": {1: "x"}},
            "kwargs has a key of type int (1); JSON object keys must be str",
        ),
        (
            {"args": [{None: 1}]},
            "args[0] has a key of type NoneType (None); JSON object keys must be str",
        ),
        (
            {"kwargs": {"ratio": float("nan")}},
            "kwargs['ratio'] is nan (NaN and Infinity are not valid JSON)",
        ),
        ({"args": [float("-inf")]}, "args[0] is -inf (NaN and Infinity are not valid JSON)"),
        (
            {"args": [INT_MAX + 1]},
            f"args[0] is an integer outside the 64-bit range ({INT_MIN} to {INT_MAX})",
        ),
        (
            {"kwargs": {"n": -(2**70)}},
            f"kwargs['n'] is an integer outside the 64-bit range ({INT_MIN} to {INT_MAX})",
        ),
        (
            {"args": [INT_MIN - 1]},
            f"args[0] is an integer outside the 64-bit range ({INT_MIN} to {INT_MAX})",
        ),
        (
            {"args": ["ok", "bad \ud800"]},
            "args[1] is a str that is not valid UTF-8 (it contains a lone surrogate)",
        ),
        (
            {"kwargs": {"\udc00": 1}},
            "kwargs has a key ('\\udc00') that is not valid UTF-8 (it contains a lone surrogate)",
        ),
        ([1, 2, {1.5}], f"payload[2] is a set {ALLOWED}"),
        ({"not an identifier": [{1}]}, f"payload['not an identifier'][0] is a set {ALLOWED}"),
        (datetime.time(1, 2), f"the payload is a time {ALLOWED}"),
    ],
)
def test_dumps_refuses_non_json_values_naming_where_they_are(value: Any, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dumps(value)
    assert str(info.value) == PREFIX + message
    assert type(info.value) is PayloadError


def test_dumps_refuses_nesting_deeper_than_orjson_supports() -> None:
    nested: Any = 0
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(PayloadError, match=r"is nested more than 254 levels deep") as info:
        dumps(nested)
    assert str(info.value).startswith(PREFIX + "payload[0][0][0][0][0][0]...[0][0]")


def test_dumps_refuses_reference_cycles() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(PayloadError, match=r"reference cycle"):
        dumps({"args": cycle})


def test_dumps_clips_huge_keys_in_messages() -> None:
    big_key = ("k" * 1000,)
    with pytest.raises(PayloadError) as info:
        dumps({"kwargs": {big_key: 1}})
    assert len(str(info.value)) < 200
    assert "has a key of type tuple (('kkkk" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"{", b"NaN", b"[1,]", b"\xff", b'{"a":1}x'])
def test_loads_refuses_invalid_json(data: bytes) -> None:
    with pytest.raises(PayloadError, match=r"^stored payload is not valid JSON: "):
        loads(data)


@PROPERTY
@given(json_values)
def test_dumps_loads_round_trip(value: Any) -> None:
    data = dumps(value)
    assert data == orjson.dumps(value)
    assert loads(data) == value


@PROPERTY
@given(st.lists(json_values, max_size=5), st.data())
def test_a_bad_value_anywhere_in_a_list_is_located(items: list[Any], data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(items)))
    items.insert(index, {"when": datetime.datetime(2024, 1, 1)})
    with pytest.raises(PayloadError) as info:
        dumps({"args": items})
    assert str(info.value) == f"{PREFIX}args[{index}]['when'] is a datetime {ALLOWED}"


# --------------------------------------------------------------------------- compress


def test_compress_leaves_data_at_or_below_the_threshold_alone() -> None:
    data = b"a" * 1024
    assert compress(data) == (data, False)
    assert compress(data, threshold=2000) == (data, False)


def test_compress_shrinks_repetitive_data_over_the_threshold() -> None:
    data = b"hello world " * 1000
    packed, compressed = compress(data)
    assert compressed is True
    assert len(packed) < len(data) // 10
    assert zlib.decompress(packed) == data


def test_compress_keeps_incompressible_data_as_is() -> None:
    data = os.urandom(10 * 1024)
    assert compress(data) == (data, False)


def test_decompress_round_trips_and_accepts_exactly_max_size() -> None:
    data = b"x" * 5000
    packed = zlib.compress(data)
    assert decompress(packed, max_size=5000) == data
    assert decompress(packed, max_size=10**9) == data


def test_decompress_refuses_output_one_byte_over_max_size() -> None:
    packed = zlib.compress(b"x" * 5000)
    with pytest.raises(PayloadError, match=r"expands beyond 4,999 bytes"):
        decompress(packed, max_size=4999)


def test_decompress_refuses_a_compression_bomb() -> None:
    bomb = zlib.compress(b"\0" * (50 * 1024 * 1024), 9)
    assert len(bomb) < 100 * 1024
    with pytest.raises(PayloadError, match=r"compression bomb") as info:
        decompress(bomb, max_size=1024 * 1024)
    assert "1,048,576 bytes" in str(info.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not zlib at all", r"^compressed payload is corrupt: "),
        (zlib.compress(b"x" * 100)[:-3], r"^compressed payload is truncated"),
        (zlib.compress(b"x" * 100)[:5], r"^compressed payload is truncated"),
        (zlib.compress(b"x" * 100) + b"junk", r"^compressed payload has stray bytes"),
        (b"", r"^compressed payload is truncated"),
    ],
)
def test_decompress_reports_broken_streams(data: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decompress(data, max_size=1024)


def test_decompress_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="max_size"):
        decompress(zlib.compress(b"x"), max_size=0)


# --------------------------------------------------------------------------- keys


def test_generate_key_yields_distinct_parseable_32_byte_keys() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for text in keys:
        assert text.startswith("base64:")
        assert len(text) == len("base64:") + 44
        raw = parse_key(text)
        assert len(raw) == 32
        assert base64.b64encode(raw).decode() == text.removeprefix("base64:")


@pytest.mark.parametrize(
    "text",
    [
        "base64:" + b64(KEY_A),
        b64(KEY_A),
        "  base64:" + b64(KEY_A) + "\n",
    ],
)
def test_parse_key_accepts_prefixed_and_bare_base64(text: str) -> None:
    assert parse_key(text) == KEY_A


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "encryption key is empty"),
        ("base64:", "encryption key is empty"),
        ("   ", "encryption key is empty"),
        ("base64:not*base64!", "encryption key is not valid base64"),
        (b64(KEY_A)[:-1], "encryption key is 43 bytes long; use exactly 32 characters, or "
         "'base64:' followed by the base64 of 32 bytes"),
        ("k" * 31, "encryption key is 31 bytes long; use exactly 32 characters"),
        ("é" * 32, "encryption key is 64 bytes long; use exactly 32 characters"),
        (
            "base64:" + b64(b"k" * 16),
            "encryption key decodes to 16 bytes; AES-256 needs exactly 32",
        ),
        (b64(b"k" * 33), "encryption key is 44 bytes long; use exactly 32 characters"),
        ("base64:" + b64(b"k" * 33), "encryption key decodes to 33 bytes; AES-256 needs"),
    ],
)
def test_parse_key_refuses_bad_keys_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_key(text)
    assert str(info.value).startswith(message)
    body = text.strip().removeprefix("base64:")
    if body:
        assert body not in str(info.value)


@pytest.mark.parametrize("text", ["0123456789abcdef0123456789abcdef",  # valid base64 too
                                  "correct horse battery staple!!!!", "Zz " * 10 + "!?"])
def test_parse_key_takes_32_characters_as_the_key_itself(text: str) -> None:
    # The original specification's ENCRYPTION_KEY is "32 characters": its bytes are the key,
    # even when the text also happens to be valid base64 (of 24 bytes).
    assert parse_key(text) == text.strip().encode()
    ring = KeyRing.from_strings(text)
    data = Codec(ring).encode(BODY, job_id=JOB, queue=QUEUE)
    assert Codec(KeyRing(text.strip().encode())).decode(data, job_id=JOB, queue=QUEUE) == BODY


def test_parse_key_uses_the_given_name() -> None:
    with pytest.raises(ConfigError, match=r"^ENCRYPTION_KEY is empty$"):
        parse_key("", name="ENCRYPTION_KEY")


def test_key_id_is_the_start_of_the_sha256() -> None:
    import hashlib

    assert key_id(KEY_A) == hashlib.sha256(KEY_A).digest()[:4]
    assert len(key_id(KEY_A)) == 4


def test_keyring_from_strings_parses_current_and_previous_keys() -> None:
    ring = KeyRing.from_strings(
        "base64:" + b64(KEY_B), f" base64:{b64(KEY_A)} , ,{b64(bytes(32))},"
    )
    assert ring.enabled
    assert ring.current_id == key_id(KEY_B)
    assert ring.key_ids == (key_id(KEY_B), key_id(KEY_A), key_id(bytes(32)))


@pytest.mark.parametrize(("current", "previous"), [(None, None), ("", ""), ("  ", " , ")])
def test_keyring_from_empty_strings_is_disabled(current: str | None, previous: str | None) -> None:
    ring = KeyRing.from_strings(current, previous)
    assert not ring.enabled
    assert ring.current_id is None
    assert ring.key_ids == ()


def test_keyring_from_strings_names_the_bad_setting() -> None:
    with pytest.raises(ConfigError, match=r"^ENCRYPTION_KEY is 5 bytes long; use exactly 32"):
        KeyRing.from_strings("nope!")
    with pytest.raises(ConfigError, match=r"^ENCRYPTION_KEY is not valid base64"):
        KeyRing.from_strings("base64:nope!")
    with pytest.raises(ConfigError, match=r"^ENCRYPTION_PREVIOUS_KEYS entry 2 is 4 bytes long"):
        KeyRing.from_strings(generate_key(), f"{b64(KEY_A)},{b64(b'abc')}")


@pytest.mark.parametrize("bad", [b"short", KEY_A + b"x", "a" * 32])
def test_keyring_refuses_keys_that_are_not_32_bytes(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"^ENCRYPTION_KEY must be 32 bytes for AES-256$"):
        KeyRing(bad)
    with pytest.raises(
        ConfigError, match=r"^ENCRYPTION_PREVIOUS_KEYS entry 2 must be 32 bytes for AES-256$"
    ):
        KeyRing(KEY_A, [KEY_B, bad])


def test_keyring_repr_shows_ids_not_keys() -> None:
    ring = KeyRing(KEY_A, [KEY_B])
    text = repr(ring)
    assert text == f"KeyRing(current={key_id(KEY_A).hex()!r}, previous=[{key_id(KEY_B).hex()!r}])"
    for key in (KEY_A, KEY_B):
        assert b64(key) not in text
        assert key.hex() not in text
        assert repr(key) not in text
    assert repr(KeyRing(None)) == "KeyRing(current=None, previous=[])"
    codec_text = repr(Codec(ring))
    assert b64(KEY_A) not in codec_text
    assert KEY_A.hex() not in codec_text


def test_keyring_encrypt_decrypt_round_trip_with_fresh_nonces() -> None:
    ring = KeyRing(KEY_A)
    kid, blob = ring.encrypt(b"secret", b"aad")
    kid2, blob2 = ring.encrypt(b"secret", b"aad")
    assert kid == kid2 == key_id(KEY_A)
    assert len(blob) == 12 + len(b"secret") + 16
    assert blob[:12] != blob2[:12]
    assert ring.decrypt(kid, blob, b"aad") == b"secret"
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        ring.decrypt(kid, blob, b"other aad")


def test_keyring_without_current_key_cannot_encrypt() -> None:
    with pytest.raises(ConfigError, match=r"^cannot encrypt: ENCRYPTION_KEY is not set$"):
        KeyRing(None).encrypt(b"x", b"")


def test_empty_keyring_cannot_decrypt() -> None:
    _, blob = KeyRing(KEY_A).encrypt(b"x", b"")
    with pytest.raises(
        DecryptionError, match=r"^payload is encrypted but ENCRYPTION_KEY is not set$"
    ):
        KeyRing(None).decrypt(key_id(KEY_A), blob, b"")


def test_keyring_decrypt_reports_truncated_blobs() -> None:
    with pytest.raises(DecryptionError, match=r"^encrypted payload is truncated \(27 bytes"):
        KeyRing(KEY_A).decrypt(key_id(KEY_A), b"\0" * 27, b"")


def test_decrypt_only_ring_still_opens_old_payloads() -> None:
    kid, blob = KeyRing(KEY_A).encrypt(b"old", b"aad")
    ring = KeyRing(None, [KEY_A])
    assert not ring.enabled
    assert ring.decrypt(kid, blob, b"aad") == b"old"


def test_keyring_ignores_a_key_listed_twice() -> None:
    ring = KeyRing(KEY_A, [KEY_A, KEY_B, KEY_B])
    assert ring.key_ids == (key_id(KEY_A), key_id(KEY_B))


# --------------------------------------------------------------------------- envelope: formats


def test_plain_envelope_layout_and_round_trip() -> None:
    codec = Codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    assert data == b"TQ\x01\x00" + dumps(BODY)
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == BODY


def test_plain_envelope_does_not_depend_on_job_or_queue() -> None:
    data = Codec().encode(BODY, job_id=JOB, queue=QUEUE)
    assert Codec().decode(data, job_id="other", queue="elsewhere") == BODY


def test_large_repetitive_payload_is_compressed() -> None:
    body = repetitive_body()
    raw = dumps(body)
    assert len(raw) > 10_000
    codec = Codec()
    data = codec.encode(body, job_id=JOB, queue=QUEUE)
    assert data[:4] == b"TQ\x01\x01"
    assert len(data) < len(raw) // 10
    assert zlib.decompress(data[4:]) == raw
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == body


def test_small_payload_is_not_compressed() -> None:
    data = Codec().encode(BODY, job_id=JOB, queue=QUEUE)
    assert data[3] == 0
    assert len(dumps(BODY)) <= 1024


def test_payload_that_does_not_shrink_is_not_compressed() -> None:
    codec = Codec(compress_threshold=0)
    data = codec.encode("ab", job_id=JOB, queue=QUEUE)
    assert data == b'TQ\x01\x00"ab"'
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == "ab"


def test_compress_threshold_is_respected() -> None:
    body = repetitive_body()
    size = len(dumps(body))
    assert Codec(compress_threshold=size).encode(body, job_id=JOB, queue=QUEUE)[3] == 0
    assert Codec(compress_threshold=size - 1).encode(body, job_id=JOB, queue=QUEUE)[3] == 1


def test_encrypted_envelope_layout_and_round_trip() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    assert data[:4] == b"TQ\x01\x02"
    assert data[4:8] == key_id(KEY_A)
    assert len(data) == 8 + 12 + len(dumps(BODY)) + 16
    assert b"three" not in data
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == BODY


def test_compressed_and_encrypted_round_trip() -> None:
    body = repetitive_body()
    codec = encrypted_codec()
    data = codec.encode(body, job_id=JOB, queue=QUEUE)
    assert data[:4] == b"TQ\x01\x03"
    assert len(data) < len(dumps(body)) // 10
    assert b"hello" not in data
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == body


def test_two_encryptions_of_the_same_body_differ() -> None:
    codec = encrypted_codec()
    first = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    second = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    assert first[:8] == second[:8]
    assert first[8:20] != second[8:20]
    assert first[20:] != second[20:]
    assert codec.decode(first, job_id=JOB, queue=QUEUE) == codec.decode(
        second, job_id=JOB, queue=QUEUE
    )


def test_plain_payload_is_refused_when_a_key_is_set_unless_allowed() -> None:
    # A downgrade: plain bytes written over an encrypted job must not run with a key set.
    for body in (BODY, repetitive_body()):
        data = Codec().encode(body, job_id=JOB, queue=QUEUE)
        assert data[3] & 0b10 == 0
        with pytest.raises(UnencryptedPayload, match=r"^payload is not encrypted but "
                           r"ENCRYPTION_KEY is set: refused"):
            encrypted_codec().decode(data, job_id=JOB, queue=QUEUE)
        assert encrypted_codec().decode(data, job_id=JOB, queue=QUEUE,
                                        allow_plaintext=True) == body
    # a ring with only previous keys does not encrypt, so it does not refuse either
    data = Codec().encode(BODY, job_id=JOB, queue=QUEUE)
    assert Codec(KeyRing(None, [KEY_A])).decode(data, job_id=JOB, queue=QUEUE) == BODY


def test_disabled_keyring_means_no_encryption() -> None:
    data = Codec(KeyRing(None, [KEY_A])).encode(BODY, job_id=JOB, queue=QUEUE)
    assert data == b"TQ\x01\x00" + dumps(BODY)


def test_nul_in_job_id_is_refused_for_encrypted_payloads() -> None:
    with pytest.raises(PayloadError, match=r"^job id must not contain NUL characters$"):
        encrypted_codec().encode(BODY, job_id="a\x00b", queue=QUEUE)


# --------------------------------------------------------------------------- envelope: attacks


def test_flipping_any_bit_of_an_encrypted_payload_is_detected() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    for index in range(len(data)):
        for bit in range(8):
            with pytest.raises(PayloadError) as info:
                codec.decode(flip(data, index, 1 << bit), job_id=JOB, queue=QUEUE)
            if index >= 8:
                assert type(info.value) is DecryptionError
                assert str(info.value) == AUTH_FAILED
            elif index >= 4:
                assert type(info.value) is DecryptionError
                assert "not in the key ring" in str(info.value)


def test_flipping_the_compressed_flag_fails_authentication() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        codec.decode(flip(data, 3, 0x01), job_id=JOB, queue=QUEUE)


def test_ciphertext_moved_to_another_job_fails() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        codec.decode(data, job_id=JOB[:-1] + "4", queue=QUEUE)


def test_ciphertext_moved_to_another_queue_fails() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id=JOB, queue=QUEUE)
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        codec.decode(data, job_id=JOB, queue="emails")


def test_job_and_queue_boundary_is_part_of_the_binding() -> None:
    codec = encrypted_codec()
    data = codec.encode(BODY, job_id="ab", queue="c")
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        codec.decode(data, job_id="a", queue="bc")


def test_wrong_key_is_reported_with_the_key_id() -> None:
    data = encrypted_codec().encode(BODY, job_id=JOB, queue=QUEUE)
    with pytest.raises(DecryptionError) as info:
        Codec(KeyRing(KEY_B)).decode(data, job_id=JOB, queue=QUEUE)
    assert str(info.value) == (
        "payload was encrypted with a key that is not in the key ring "
        f"(key id {key_id(KEY_A).hex()}); set ENCRYPTION_PREVIOUS_KEYS"
    )


def test_same_key_id_with_a_different_key_fails_authentication() -> None:
    data = encrypted_codec().encode(BODY, job_id=JOB, queue=QUEUE)
    forged = data[:4] + key_id(KEY_B) + data[8:]
    with pytest.raises(DecryptionError, match=f"^{AUTH_FAILED}$"):
        Codec(KeyRing(KEY_B)).decode(forged, job_id=JOB, queue=QUEUE)


def test_rotated_key_decrypts_old_payloads_and_encrypts_with_the_new_key() -> None:
    old = Codec(KeyRing(KEY_A)).encode(BODY, job_id=JOB, queue=QUEUE)
    rotated = Codec(KeyRing.from_strings(f"base64:{b64(KEY_B)}", f"base64:{b64(KEY_A)}"))
    assert rotated.decode(old, job_id=JOB, queue=QUEUE) == BODY
    new = rotated.encode(BODY, job_id=JOB, queue=QUEUE)
    assert new[4:8] == key_id(KEY_B)
    assert rotated.decode(new, job_id=JOB, queue=QUEUE) == BODY
    with pytest.raises(DecryptionError, match="not in the key ring"):
        Codec(KeyRing(KEY_A)).decode(new, job_id=JOB, queue=QUEUE)


@pytest.mark.parametrize("keyring", [None, KeyRing(None)])
def test_encrypted_payload_without_any_key_says_so(keyring: KeyRing | None) -> None:
    data = encrypted_codec().encode(BODY, job_id=JOB, queue=QUEUE)
    with pytest.raises(
        DecryptionError, match=r"^payload is encrypted but ENCRYPTION_KEY is not set$"
    ):
        Codec(keyring).decode(data, job_id=JOB, queue=QUEUE)


# --------------------------------------------------------------------------- envelope: limits


def test_payload_at_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    codec = Codec(max_payload=100, compress_threshold=10_000)
    assert len(codec.encode("x" * 94, job_id=JOB, queue=QUEUE)) == 100
    with pytest.raises(PayloadTooLarge) as info:
        codec.encode("x" * 95, job_id=JOB, queue=QUEUE)
    assert str(info.value) == (
        "payload is 101 bytes after compression; the limit is 100 (TASKQUEUE_MAX_PAYLOAD)"
    )


def test_size_limit_counts_encryption_overhead() -> None:
    codec = Codec(KeyRing(KEY_A), max_payload=100, compress_threshold=10_000)
    # 8 header + 12 nonce + 16 tag + JSON ("x" * 62 is 64 bytes of JSON) = 100
    assert len(codec.encode("x" * 62, job_id=JOB, queue=QUEUE)) == 100
    with pytest.raises(PayloadTooLarge, match=r"^payload is 101 bytes after compression; "):
        codec.encode("x" * 63, job_id=JOB, queue=QUEUE)


def test_default_limit_applies_after_compression() -> None:
    codec = Codec()
    compressible = repetitive_body(2 * 1024 * 1024)
    assert len(dumps(compressible)) > 1024 * 1024
    data = codec.encode(compressible, job_id=JOB, queue=QUEUE)
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == compressible
    incompressible = {"args": [os.urandom(1536 * 1024).hex()]}
    with pytest.raises(PayloadTooLarge) as info:
        codec.encode(incompressible, job_id=JOB, queue=QUEUE)
    message = str(info.value)
    assert message.startswith("payload is ")
    assert message.endswith(
        " bytes after compression; the limit is 1,048,576 (TASKQUEUE_MAX_PAYLOAD)"
    )
    size = int(message.removeprefix("payload is ").split(" ")[0].replace(",", ""))
    assert size > 1024 * 1024
    assert isinstance(info.value, PayloadError)


def test_json_larger_than_the_decode_limit_is_refused_at_encode_time() -> None:
    codec = Codec(max_decoded=5000)
    with pytest.raises(PayloadTooLarge, match=r"^payload is 10,002 bytes of JSON; the limit"):
        codec.encode("x" * 10_000, job_id=JOB, queue=QUEUE)


def test_compression_bomb_is_refused_on_decode() -> None:
    bomb = b"TQ\x01\x01" + zlib.compress(b'"' + b"a" * (20 * 1024 * 1024) + b'"', 9)
    with pytest.raises(PayloadError, match=r"compression bomb") as info:
        Codec(max_decoded=1024 * 1024).decode(bomb, job_id=JOB, queue=QUEUE)
    assert type(info.value) is PayloadError


def test_compression_bomb_inside_encryption_is_refused_on_decode() -> None:
    ring = KeyRing(KEY_A)
    header = b"TQ\x01\x03" + key_id(KEY_A)
    inner = zlib.compress(b"[" + b"0," * (5 * 1024 * 1024) + b"0]", 9)
    _, blob = ring.encrypt(inner, header + JOB.encode() + b"\x00" + QUEUE.encode())
    with pytest.raises(PayloadError, match=r"compression bomb"):
        Codec(ring, max_decoded=1024 * 1024).decode(header + blob, job_id=JOB, queue=QUEUE)


@pytest.mark.parametrize(
    "options",
    [{"compress_threshold": -1}, {"max_payload": 0}, {"max_decoded": 0}],
)
def test_codec_refuses_bad_settings(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        Codec(None, **options)


# --------------------------------------------------------------------------- envelope: garbage


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "payload is truncated (0 bytes; the header alone is 4)"),
        (b"T", "payload is truncated (1 bytes; the header alone is 4)"),
        (b"TQ\x01", "payload is truncated (3 bytes; the header alone is 4)"),
        (
            b'{"args":[]}',
            "payload does not start with the taskqueue marker b'TQ'; it is not an envelope",
        ),
        (
            b"XY\x01\x00[]",
            "payload does not start with the taskqueue marker b'TQ'; it is not an envelope",
        ),
        (
            b"TQ\x02\x00[]",
            "payload format version 2 is not supported (this taskqueue reads version 1); "
            "upgrade taskqueue",
        ),
        (b"TQ\x01\x04[]", "payload header has unknown flags 0x04"),
        (b"TQ\x01\x80[]", "payload header has unknown flags 0x80"),
        (b"TQ\x01\x02ab", "encrypted payload is truncated (6 bytes; its header alone is 8)"),
    ],
)
def test_malformed_envelopes_are_explained(data: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        encrypted_codec().decode(data, job_id=JOB, queue=QUEUE)
    assert str(info.value) == message
    assert type(info.value) is PayloadError


def test_garbage_bodies_are_payload_errors() -> None:
    codec = Codec()
    with pytest.raises(PayloadError, match=r"^stored payload is not valid JSON"):
        codec.decode(b"TQ\x01\x00{oops", job_id=JOB, queue=QUEUE)
    with pytest.raises(PayloadError, match=r"^compressed payload is corrupt"):
        codec.decode(b"TQ\x01\x01not zlib", job_id=JOB, queue=QUEUE)
    with pytest.raises(PayloadError, match=r"^stored payload is not valid JSON"):
        codec.decode(b"TQ\x01\x01" + zlib.compress(b"{oops"), job_id=JOB, queue=QUEUE)


@pytest.mark.parametrize(
    ("codec", "body"),
    [
        (Codec(), BODY),
        (Codec(), repetitive_body()),
        (encrypted_codec(), BODY),
        (encrypted_codec(), repetitive_body()),
    ],
    ids=["plain", "compressed", "encrypted", "compressed+encrypted"],
)
def test_every_truncation_is_a_payload_error(codec: Codec, body: Any) -> None:
    data = codec.encode(body, job_id=JOB, queue=QUEUE)
    for length in range(len(data)):
        with pytest.raises(PayloadError):
            codec.decode(data[:length], job_id=JOB, queue=QUEUE)


@PROPERTY
@given(st.binary(max_size=64))
def test_random_bytes_never_decode_by_accident_or_crash(data: bytes) -> None:
    codec = encrypted_codec()
    try:
        codec.decode(data, job_id=JOB, queue=QUEUE)
    except PayloadError:
        return
    # Only a well-formed plain envelope around valid JSON may decode.
    assert data[:4] == b"TQ\x01\x00"
    assert loads(data[4:]) == codec.decode(data, job_id=JOB, queue=QUEUE)


# --------------------------------------------------------------------------- envelope: properties


@PROPERTY
@given(json_values)
def test_plain_round_trip(value: Any) -> None:
    codec = Codec()
    assert (
        codec.decode(codec.encode(value, job_id=JOB, queue=QUEUE), job_id=JOB, queue=QUEUE) == value
    )


@PROPERTY
@given(json_values)
def test_compressed_round_trip(value: Any) -> None:
    codec = Codec(compress_threshold=0)
    data = codec.encode(value, job_id=JOB, queue=QUEUE)
    raw = dumps(value)
    assert data[3] == (1 if len(data) - 4 < len(raw) else 0)
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == value


@PROPERTY
@given(json_values, st.text(min_size=1).filter(lambda s: "\x00" not in s), st.text(min_size=1))
def test_encrypted_round_trip(value: Any, job_id: str, queue: str) -> None:
    codec = Codec(KeyRing(KEY_A, [KEY_B]), compress_threshold=64)
    data = codec.encode(value, job_id=job_id, queue=queue)
    assert data[3] & 0b10
    assert codec.decode(data, job_id=job_id, queue=queue) == value


@PROPERTY
@given(st.lists(json_values, min_size=1, max_size=4).map(lambda items: {"args": items}))
def test_encrypted_and_compressed_round_trip(value: dict[str, Any]) -> None:
    codec = Codec(KeyRing(KEY_A), compress_threshold=0)
    padded = {**value, "pad": "z" * 200}
    data = codec.encode(padded, job_id=JOB, queue=QUEUE)
    assert data[3] == 0b11
    assert codec.decode(data, job_id=JOB, queue=QUEUE) == padded
