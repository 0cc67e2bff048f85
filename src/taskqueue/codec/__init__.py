"""Payload codec: strict JSON, optional zlib compression and AES-256-GCM encryption.

:class:`Codec` turns a job body into the versioned envelope bytes stored in the queue and back;
:class:`KeyRing`, :func:`generate_key` and :func:`parse_key` manage encryption keys;
:func:`dumps` and :func:`loads` are the strict JSON layer on its own.  Nothing here does I/O.
"""

from taskqueue.codec.crypto import KeyRing, generate_key, parse_key
from taskqueue.codec.envelope import Codec
from taskqueue.codec.serialize import dumps, loads

__all__ = ["Codec", "KeyRing", "dumps", "generate_key", "loads", "parse_key"]
