"""The payload envelope: a job body in, the bytes stored in the queue out, and back.

Layout (version 1)::

    b"TQ" | version (1 byte) | flags (1 byte) | [key id (4 bytes)] | body

``flags`` bit 0 means the body is zlib-compressed, bit 1 that it is AES-256-GCM encrypted (the key
id is present only then).  The body is strict JSON, compressed first when that pays, then
encrypted when the key ring has a current key; the encrypted body is ``nonce + ciphertext + tag``.

The associated data authenticated by AES-GCM is the header plus ``job_id + b"\\x00" + queue``, so
a ciphertext copied onto another job or queue, or a header with flipped flags, fails to decrypt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from taskqueue.codec.compress import compress, decompress
from taskqueue.codec.crypto import KEY_ID_SIZE, NONCE_SIZE, TAG_SIZE, KeyRing
from taskqueue.codec.serialize import dumps, dumps_many, loads
from taskqueue.errors import (
    ConfigError,
    DecryptionError,
    PayloadError,
    PayloadTooLarge,
    UnencryptedPayload,
)

__all__ = ["FLAG_COMPRESSED", "FLAG_ENCRYPTED", "MAGIC", "VERSION", "Codec"]

MAGIC: Final = b"TQ"
VERSION: Final = 1
FLAG_COMPRESSED: Final = 0b01
FLAG_ENCRYPTED: Final = 0b10
_KNOWN_FLAGS: Final = FLAG_COMPRESSED | FLAG_ENCRYPTED
_PREAMBLE: Final = MAGIC + bytes((VERSION,))
_HEADER_SIZE: Final = len(_PREAMBLE) + 1
_SEALED_HEADER_SIZE: Final = _HEADER_SIZE + KEY_ID_SIZE
_PLAIN_HEADERS: Final = (_PREAMBLE + b"\x00", _PREAMBLE + bytes((FLAG_COMPRESSED,)))


class Codec:
    """Encode job bodies into envelopes and decode them, optionally compressing and encrypting."""

    __slots__ = ("_keyring", "_max_decoded", "_max_payload", "_sealer", "_threshold")

    def __init__(
        self,
        keyring: KeyRing | None = None,
        *,
        compress_threshold: int = 1024,
        max_payload: int = 1024 * 1024,
        max_decoded: int = 64 * 1024 * 1024,
    ) -> None:
        """Configure the codec; bad limits raise :class:`ConfigError`.

        ``compress_threshold``: bodies of at most this many JSON bytes are never compressed.
        ``max_payload``: the largest envelope :meth:`encode` will produce.
        ``max_decoded``: the most JSON bytes :meth:`decode` will inflate a payload to.
        """
        if compress_threshold < 0:
            raise ConfigError("compress_threshold must not be negative")
        if max_payload < 1:
            raise ConfigError("max_payload (TASKQUEUE_MAX_PAYLOAD) must be at least 1 byte")
        if max_decoded < 1:
            raise ConfigError("max_decoded must be at least 1 byte")
        self._keyring = keyring
        self._sealer = _sealer(keyring)
        self._threshold = compress_threshold
        self._max_payload = max_payload
        self._max_decoded = max_decoded

    @property
    def keyring(self) -> KeyRing | None:
        """The key ring used for encryption and decryption, if any."""
        return self._keyring

    def encode(self, body: Any, *, job_id: str, queue: str) -> bytes:
        """Turn a JSON-able ``body`` into envelope bytes for job ``job_id`` on ``queue``.

        Raises :class:`PayloadError` for values that are not strict JSON and
        :class:`PayloadTooLarge` when the result would exceed the configured limits.
        """
        raw = dumps(body)
        self._check_decoded(len(raw))
        data, compressed = compress(raw, self._threshold)
        if self._sealer is None:
            self._check_size(_HEADER_SIZE + len(data))
            return _PLAIN_HEADERS[compressed] + data
        flags = FLAG_ENCRYPTED | (FLAG_COMPRESSED if compressed else 0)
        ring, kid = self._sealer
        return self._seal(ring, kid, data, flags, job_id, queue)

    def encode_many(self, bodies: Sequence[Any], *, job_ids: Sequence[str],
                    queue: str) -> list[bytes]:
        """:meth:`encode` of each of ``bodies`` for the job id of the same index, all on
        ``queue``: the same envelopes and refusals (a fresh nonce for each encryption), with
        what a batch shares done once (the checks of every body, then the encoding; sizes
        checked against the longest; the nonces drawn together)."""
        raws = dumps_many(bodies)
        longest = max(map(len, raws), default=0)
        self._check_decoded(longest)
        if longest > self._threshold:
            packed = [compress(raw, self._threshold) for raw in raws]
        elif self._sealer is None:  # the common case: small and plain
            self._check_size(_HEADER_SIZE + longest)
            plain = _PLAIN_HEADERS[0]
            return [plain + raw for raw in raws]
        else:
            packed = [(raw, False) for raw in raws]
        if self._sealer is None:
            self._check_size(_HEADER_SIZE + max(len(data) for data, _ in packed))
            return [_PLAIN_HEADERS[compressed] + data for data, compressed in packed]
        ring, kid = self._sealer
        self._check_size(_SEALED_HEADER_SIZE + NONCE_SIZE + TAG_SIZE
                         + max(len(data) for data, _ in packed))
        headers = [_PREAMBLE + bytes((FLAG_ENCRYPTED | (FLAG_COMPRESSED if compressed else 0),))
                   + kid for _, compressed in packed]
        blobs = ring.encrypt_many([data for data, _ in packed],
                                  [_aad(header, job_id, queue)
                                   for header, job_id in zip(headers, job_ids, strict=True)])
        return [header + blob for header, blob in zip(headers, blobs, strict=True)]

    def decode(self, data: bytes, *, job_id: str, queue: str, allow_plaintext: bool = False) -> Any:
        """Turn envelope bytes back into the body that was encoded for ``job_id`` on ``queue``.

        Raises :class:`PayloadError` for malformed data and :class:`DecryptionError` when an
        encrypted payload cannot be decrypted.  When this codec encrypts (a current key is set),
        an unencrypted envelope raises :class:`UnencryptedPayload` unless ``allow_plaintext``:
        without that rule, writing plain arguments over a job's payload would bypass the
        authentication encryption gives.
        """
        if self._sealer is not None and not allow_plaintext \
                and data[:_HEADER_SIZE] in _PLAIN_HEADERS:
            raise UnencryptedPayload(
                "payload is not encrypted but ENCRYPTION_KEY is set: refused (a downgraded "
                "payload, or one queued before encryption was switched on: see "
                "`taskqueue key:accept-plaintext`)"
            )
        if data[:_HEADER_SIZE] == _PLAIN_HEADERS[0]:
            return loads(memoryview(data)[_HEADER_SIZE:])
        if data[:3] != _PREAMBLE or len(data) < _HEADER_SIZE:
            raise PayloadError(_header_problem(data))
        flags = data[3]
        if flags & ~_KNOWN_FLAGS:
            raise PayloadError(f"payload header has unknown flags 0x{flags:02x}")
        body: bytes | memoryview
        if flags & FLAG_ENCRYPTED:
            body = self._open(data, job_id, queue)
        else:
            body = memoryview(data)[_HEADER_SIZE:]
        if flags & FLAG_COMPRESSED:
            body = decompress(body, self._max_decoded)
        return loads(body)

    def __repr__(self) -> str:
        """Summarize the settings; the key ring shows key ids only."""
        return (
            f"Codec(keyring={self._keyring!r}, compress_threshold={self._threshold}, "
            f"max_payload={self._max_payload}, max_decoded={self._max_decoded})"
        )

    def _seal(
        self, ring: KeyRing, kid: bytes, data: bytes, flags: int, job_id: str, queue: str
    ) -> bytes:
        """Encrypt ``data`` under the ring's current key (id ``kid``) and prepend the header."""
        self._check_size(_SEALED_HEADER_SIZE + NONCE_SIZE + len(data) + TAG_SIZE)
        header = _PREAMBLE + bytes((flags,)) + kid
        _, blob = ring.encrypt(data, _aad(header, job_id, queue))
        return header + blob

    def _open(self, data: bytes, job_id: str, queue: str) -> bytes:
        """Check and decrypt the body of an encrypted envelope."""
        if self._keyring is None:
            raise DecryptionError("payload is encrypted but ENCRYPTION_KEY is not set")
        if len(data) < _SEALED_HEADER_SIZE:
            raise PayloadError(
                f"encrypted payload is truncated ({len(data)} bytes; its header alone is "
                f"{_SEALED_HEADER_SIZE})"
            )
        header = bytes(data[:_SEALED_HEADER_SIZE])
        kid = header[_HEADER_SIZE:]
        blob = bytes(data[_SEALED_HEADER_SIZE:])
        return self._keyring.decrypt(kid, blob, _aad(header, job_id, queue))

    def _check_decoded(self, size: int) -> None:
        """Raise :class:`PayloadTooLarge` when ``size`` bytes of JSON are more than a decode
        may inflate."""
        if size > self._max_decoded:
            raise PayloadTooLarge(
                f"payload is {size:,} bytes of JSON; the limit for decoding is "
                f"{self._max_decoded:,} (max_decoded)"
            )

    def _check_size(self, size: int) -> None:
        """Raise :class:`PayloadTooLarge` when an envelope of ``size`` bytes is over the limit."""
        if size > self._max_payload:
            raise PayloadTooLarge(
                f"payload is {size:,} bytes after compression; the limit is "
                f"{self._max_payload:,} (TASKQUEUE_MAX_PAYLOAD)"
            )


def _sealer(keyring: KeyRing | None) -> tuple[KeyRing, bytes] | None:
    """Return the ring and its current key id when new payloads should be encrypted."""
    if keyring is None:
        return None
    kid = keyring.current_id
    return None if kid is None else (keyring, kid)


def _aad(header: bytes, job_id: str, queue: str) -> bytes:
    """Associated data binding a ciphertext to its header, job and queue."""
    if "\x00" in job_id:
        raise PayloadError("job id must not contain NUL characters")
    return b"".join(
        (
            header,
            job_id.encode("utf-8", "surrogatepass"),
            b"\x00",
            queue.encode("utf-8", "surrogatepass"),
        )
    )


def _header_problem(data: bytes) -> str:
    """Explain why ``data`` does not start with a valid version-1 header."""
    if len(data) >= 2 and data[:2] != MAGIC:
        return f"payload does not start with the taskqueue marker {MAGIC!r}; it is not an envelope"
    if len(data) < _HEADER_SIZE:
        return f"payload is truncated ({len(data)} bytes; the header alone is {_HEADER_SIZE})"
    return (
        f"payload format version {data[2]} is not supported (this taskqueue reads version "
        f"{VERSION}); upgrade taskqueue"
    )
