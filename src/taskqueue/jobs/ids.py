"""Time-sortable job ids (UUID version 7, RFC 9562)."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
#: Random bytes from ``os.urandom``, taken 8 at a time: one system call per 512 ids instead of
#: one per id (a third of making an id on a loaded machine). A forked child starts with none
#: (``_forget``): parent and child must never hand out the same bits.
_RANDOM_CHUNK = 4096
_random = b""
_used = 0


def _forget() -> None:
    global _random, _used
    _random, _used = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def uuid7() -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, then a 12-bit counter and random bits.

    Ids made in one process are strictly increasing, even within the same millisecond.
    """
    global _last_ms, _counter, _random, _used
    with _lock:
        if _used >= len(_random):
            _random, _used = os.urandom(_RANDOM_CHUNK), 0
        rand = int.from_bytes(_random[_used:_used + 8], "big")
        _used += 8
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = (rand >> 54) & 0x3FF  # random start, with headroom to count up
        counter = _counter
    rand &= (1 << 62) - 1
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"  # str(uuid.UUID(int=value)) without building the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Byte map that gives the first of a UUID's 8 random bytes the RFC 9562 variant bits (0b10).
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
_HEX = b"0123456789abcdef"
#: The three hex digits of the counters 0..0xFFF, one column each (high, middle, low digit):
#: the digits of counters ``first`` to ``first + n`` are ``[first:first + n]`` of each.
_COUNTER_DIGITS = (b"".join(bytes((c,)) * 256 for c in _HEX),
                   b"".join(bytes((c,)) * 16 for c in _HEX) * 16,
                   _HEX * 256)
#: Where the counter's digits and the random hex digits go in ``xxxxxxxx-xxxx-7ccc-rrrr-rrr…``.
_COUNTER_AT = (15, 16, 17)
_RANDOM_AT = (19, 20, 21, 22, *range(24, 36))
_ROW = 37  # an id and the space after it


def uuid7_many(count: int) -> list[str]:
    """``count`` UUIDv7 strings, the ids ``count`` calls of :func:`uuid7` would make (strictly
    increasing, after every id made before), at a fraction of the cost per id: the clock is
    read and the lock taken once, and the text of all of them is written a column at a time
    (each character position of every id by one slice assignment) and split."""
    global _last_ms, _counter, _random, _used
    if count <= 0:
        return []
    with _lock:
        size = 8 * count
        if _used + size > len(_random):
            _random, _used = os.urandom(max(_RANDOM_CHUNK, size)), 0
        bits = bytearray(_random[_used:_used + size])
        _used += size
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            counter = _counter + 1
            ms = _last_ms
        else:
            counter = bits[0] << 2 & 0x3FF | bits[1] >> 6  # uuid7's start: 10 random bits
        # ``counter`` counts up within a millisecond; past 0xFFF the next one is borrowed,
        # its counter starting at 0
        stamps: list[tuple[int, int, int]] = []  # (millisecond, first counter, how many)
        left = count
        while left:
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
            n = min(left, 0x1000 - counter)
            stamps.append((ms, counter, n))
            counter += n
            left -= n
        _last_ms, _counter = ms, counter - 1
    bits[0::8] = bits[0::8].translate(_VARIANT)
    random_hex = bits.hex().encode()  # 16 digits per id
    out: list[str] = []
    done = 0
    for ms, first, n in stamps:
        h = f"{ms & 0xFFFFFFFFFFFF:012x}"
        text = bytearray(f"{h[:8]}-{h[8:12]}-7000-0000-000000000000 ".encode() * n)
        for at, digits in zip(_COUNTER_AT, _COUNTER_DIGITS, strict=True):
            text[at::_ROW] = digits[first:first + n]
        mine = random_hex[16 * done:16 * (done + n)]
        for k, at in enumerate(_RANDOM_AT):
            text[at::_ROW] = mine[k::16]
        out += text.decode("ascii").split()
        done += n
    return out
