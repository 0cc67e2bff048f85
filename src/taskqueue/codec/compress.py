"""zlib compression for payloads, with a hard ceiling on what decompression may produce."""

from __future__ import annotations

import zlib
from typing import Final

from taskqueue.errors import PayloadError

__all__ = ["compress", "decompress"]

#: zlib's default level: a good speed/size balance for JSON.
LEVEL: Final = 6


def compress(data: bytes, threshold: int = 1024) -> tuple[bytes, bool]:
    """Compress ``data`` when it is longer than ``threshold`` bytes and zlib actually shrinks it.

    Returns ``(bytes, compressed)``; when ``compressed`` is false the input comes back unchanged.
    """
    if len(data) <= threshold:
        return data, False
    packed = zlib.compress(data, LEVEL)
    if len(packed) >= len(data):
        return data, False
    return packed, True


def decompress(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    """Inflate a zlib stream, refusing to produce more than ``max_size`` bytes.

    A stream that would expand past the limit (a compression bomb), a corrupt or truncated stream,
    and bytes trailing the end of the stream all raise :class:`PayloadError`.
    """
    if max_size < 1:
        raise ValueError("max_size must be at least 1 byte")
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_size)
    except zlib.error as exc:
        raise PayloadError(f"compressed payload is corrupt: {exc}") from None
    if not inflater.eof:
        # zlib stops early only when the output hit max_size or the input ran out.
        if len(out) >= max_size:
            raise PayloadError(
                f"compressed payload expands beyond {max_size:,} bytes; refusing to decompress "
                "it (corrupt data or a compression bomb)"
            )
        raise PayloadError("compressed payload is truncated: the zlib stream does not end")
    if inflater.unused_data:
        raise PayloadError("compressed payload has stray bytes after the end of the zlib stream")
    return out
