"""AES-256-GCM encryption of payloads, with key rotation.

Keys are written the way Laravel writes ``APP_KEY``: ``base64:`` followed by the base64 of 32
random bytes, or, as the original specification allows, exactly 32 characters used as they are. A
:class:`KeyRing` encrypts with its current key and decrypts with the current key or any previous
one, so a key can be rotated while jobs encrypted with the old key are still waiting. Each
ciphertext is tagged with a 4-byte key id (the start of the key's SHA-256) so the right key is
picked without trial decryption. Neither keys nor anything derived from them beyond that id ever
appear in messages or reprs.

``cryptography`` (and OpenSSL's ``hashlib``) are imported only when a key is added to a ring, so
a process without an encryption key never loads them.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from taskqueue.errors import ConfigError, DecryptionError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "KeyRing",
    "generate_key",
    "key_id",
    "parse_key",
]

KEY_SIZE: Final = 32
KEY_ID_SIZE: Final = 4
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
_PREFIX: Final = "base64:"
_CURRENT_VAR: Final = "ENCRYPTION_KEY"
_PREVIOUS_VAR: Final = "ENCRYPTION_PREVIOUS_KEYS"


def generate_key() -> str:
    """Return a new random key as ``base64:<44 characters>``, ready for ENCRYPTION_KEY."""
    return _PREFIX + base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def parse_key(text: str, *, name: str = "encryption key") -> bytes:
    """Turn the text of a key setting into a 32-byte AES-256 key.

    Three forms are accepted: ``base64:`` followed by the base64 of 32 bytes (what
    :func:`generate_key` writes); exactly 32 characters used as they are (the original
    specification's "32 characters" key: its UTF-8 bytes must number 32); and bare base64 of 32
    bytes.  ``name`` says where the text came from and is used in error messages; the key text
    itself is never echoed.  Anything else raises :class:`ConfigError`.
    """
    body = text.strip()
    prefixed = body.startswith(_PREFIX)
    if prefixed:
        body = body[len(_PREFIX) :]
    if not body:
        raise ConfigError(f"{name} is empty")
    if not prefixed and len(body.encode("utf-8")) == KEY_SIZE:
        return body.encode("utf-8")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        if prefixed:
            raise ConfigError(
                f"{name} is not valid base64 (expected 'base64:' followed by 44 characters; "
                "create one with `taskqueue key:generate`)"
            ) from None
        raise ConfigError(_length_problem(name, body)) from None
    if len(raw) != KEY_SIZE:
        if prefixed:
            raise ConfigError(
                f"{name} decodes to {len(raw)} bytes; AES-256 needs exactly {KEY_SIZE}"
            )
        raise ConfigError(_length_problem(name, body) + f" (as base64 it decodes to "
                          f"{len(raw)} bytes)")
    return raw


def _length_problem(name: str, body: str) -> str:
    """Explain which key forms exist, for a key text that is none of them."""
    size = len(body.encode("utf-8"))
    return (
        f"{name} is {size} bytes long; use exactly {KEY_SIZE} characters, or 'base64:' "
        f"followed by the base64 of {KEY_SIZE} bytes (create one with `taskqueue key:generate`)"
    )


def key_id(key: bytes) -> bytes:
    """Return the 4-byte id of ``key``: the first bytes of its SHA-256 digest."""
    import hashlib

    return hashlib.sha256(key).digest()[:KEY_ID_SIZE]


class KeyRing:
    """The current encryption key plus older keys that are still accepted for decryption."""

    __slots__ = ("_ciphers", "_current", "_current_id", "_digests")

    def __init__(self, current: bytes | None, previous: Sequence[bytes] = ()) -> None:
        """Build a ring; every key must be exactly 32 bytes, else :class:`ConfigError`."""
        self._ciphers: dict[bytes, AESGCM] = {}
        self._digests: dict[bytes, bytes] = {}
        self._current: AESGCM | None = None
        self._current_id = b""
        if current is not None:
            self._current_id = self._add(current, _CURRENT_VAR)
            self._current = self._ciphers[self._current_id]
        for number, key in enumerate(previous, start=1):
            self._add(key, f"{_PREVIOUS_VAR} entry {number}")

    @classmethod
    def from_strings(cls, current: str | None, previous: str | None = None) -> KeyRing:
        """Build a ring from ENCRYPTION_KEY and the comma-separated ENCRYPTION_PREVIOUS_KEYS.

        Empty or missing values mean "no key"; blank entries in the list are ignored.
        """
        current_key = None
        if current is not None and current.strip():
            current_key = parse_key(current, name=_CURRENT_VAR)
        entries = [part for part in (previous or "").split(",") if part.strip()]
        previous_keys = [
            parse_key(entry, name=f"{_PREVIOUS_VAR} entry {number}")
            for number, entry in enumerate(entries, start=1)
        ]
        return cls(current_key, previous_keys)

    @property
    def enabled(self) -> bool:
        """True when there is a current key, i.e. new payloads get encrypted."""
        return self._current is not None

    @property
    def current_id(self) -> bytes | None:
        """Id of the current key (what :meth:`encrypt` will tag with), or None."""
        return self._current_id if self._current is not None else None

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """Ids of every key in the ring, current first."""
        return tuple(self._ciphers)

    def encrypt(self, plain: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Encrypt with the current key and a fresh random nonce.

        Returns ``(key_id, nonce + ciphertext_with_tag)``.  Raises :class:`ConfigError` when the
        ring has no current key.
        """
        if self._current is None:
            raise ConfigError(f"cannot encrypt: {_CURRENT_VAR} is not set")
        nonce = os.urandom(NONCE_SIZE)
        return self._current_id, nonce + self._current.encrypt(nonce, plain, aad)

    def encrypt_many(self, plains: Sequence[bytes], aads: Sequence[bytes]) -> list[bytes]:
        """:meth:`encrypt` each of ``plains`` with its ``aads`` entry (the current key's id is
        ``current_id``): every nonce fresh and random, all of them drawn in one call."""
        if self._current is None:
            raise ConfigError(f"cannot encrypt: {_CURRENT_VAR} is not set")
        seal = self._current.encrypt
        nonces = os.urandom(NONCE_SIZE * len(plains))
        out = []
        for i, (plain, aad) in enumerate(zip(plains, aads, strict=True)):
            nonce = nonces[i * NONCE_SIZE:(i + 1) * NONCE_SIZE]
            out.append(nonce + seal(nonce, plain, aad))
        return out

    def decrypt(self, key_id: bytes, blob: bytes, aad: bytes) -> bytes:
        """Decrypt ``nonce + ciphertext`` made by :meth:`encrypt` with the key named ``key_id``.

        Raises :class:`DecryptionError` when the ring is empty, the key is unknown, or the data
        does not authenticate against ``aad``.
        """
        cipher = self._cipher_for(key_id)
        if len(blob) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionError(
                f"encrypted payload is truncated ({len(blob)} bytes; at least "
                f"{NONCE_SIZE + TAG_SIZE} expected)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            return cipher.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except InvalidTag:
            raise DecryptionError(
                "payload failed authentication: tampered, or copied from another job"
            ) from None

    def __repr__(self) -> str:
        """Show key ids only, never key material."""
        current = self._current_id.hex() if self._current is not None else None
        previous = [kid.hex() for kid in self._ciphers if kid != self._current_id]
        return f"KeyRing(current={current!r}, previous={previous!r})"

    def _add(self, key: bytes, name: str) -> bytes:
        """Validate ``key`` and register its cipher; returns its id."""
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
            raise ConfigError(f"{name} must be {KEY_SIZE} bytes for AES-256")
        import hashlib

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        digest = hashlib.sha256(key).digest()
        kid = digest[:KEY_ID_SIZE]
        known = self._digests.setdefault(kid, digest)
        if known != digest:
            raise ConfigError(f"{name} has the same key id as another key; generate a new key")
        if kid not in self._ciphers:
            self._ciphers[kid] = AESGCM(bytes(key))
        return kid

    def _cipher_for(self, kid: bytes) -> AESGCM:
        """Find the cipher for a key id or explain why there is none."""
        if not self._ciphers:
            raise DecryptionError(f"payload is encrypted but {_CURRENT_VAR} is not set")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(
                "payload was encrypted with a key that is not in the key ring "
                f"(key id {kid.hex()}); set {_PREVIOUS_VAR}"
            )
        return cipher
