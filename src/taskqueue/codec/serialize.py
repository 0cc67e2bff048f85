"""Strict JSON for job bodies.

Only plain JSON values go into the queue: ``dict`` with ``str`` keys, ``list``, ``tuple`` (stored
as a list), ``str``, ``int`` (within orjson's 64-bit range), finite ``float``, ``bool`` and
``None``.  Anything else (datetimes, UUIDs, enums, sets, bytes, dataclasses, subclasses of the
allowed types) is refused rather than silently converted, because the worker would get back a
different value than the caller passed in.

orjson on its own is not strict enough: it writes UUIDs and enums natively and turns NaN into
``null`` without asking.  So :func:`dumps` first runs a tight type walk (exact-type checks, no
path bookkeeping unless something is wrong), then lets orjson do the encoding.  The location of a
bad value is assembled only while an error unwinds, so the success path pays nothing for it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any, Final, NoReturn

import orjson

from taskqueue.errors import PayloadError

__all__ = ["dumps", "dumps_many", "loads"]

#: orjson refuses documents nested deeper than this many containers.
MAX_DEPTH: Final = 254
#: orjson serializes integers in [-2**63, 2**64 - 1]; anything outside raises.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1

_PREFIX: Final = "job arguments are not JSON-serializable: "
_ALLOWED: Final = "only dict, list, str, int, float, bool and None are allowed"
_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_BASE_TYPES: Final = (dict, list, tuple, str, int, float)
#: Exact types that need no check beyond their type.
_SIMPLE: Final = frozenset((str, bool, type(None)))
_MAX_PATH_PARTS: Final = 12
_MAX_REPR: Final = 40
_isfinite = math.isfinite
_orjson_dumps = orjson.dumps

Key = str | int


class _Refusal(Exception):
    """Internal signal: a value was refused; ``path`` fills up (innermost first) as it unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[Key] = []


def dumps(obj: Any) -> bytes:
    """Serialize ``obj`` to compact JSON bytes, refusing anything that is not plain JSON.

    Raises :class:`PayloadError` whose message names where the offending value sits
    (for example ``args[1]['when']``) and what it is.
    """
    try:
        _walk(obj, 1)
    except _Refusal as refusal:
        raise PayloadError(_message(refusal)) from None
    try:
        return orjson.dumps(obj, default=_refuse, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise _diagnose(obj, exc) from exc


def dumps_many(objs: Sequence[Any]) -> list[bytes]:
    """:func:`dumps` of each of ``objs`` (a batch of job bodies), with the same refusals: the
    checks of all of them first, then the encoding, in two loops instead of a call each."""
    try:
        for obj in objs:
            if type(obj) is dict:  # a job's body
                _walk_dict(obj, 1)
            else:
                _walk(obj, 1)
    except _Refusal as refusal:
        raise PayloadError(_message(refusal)) from None
    try:
        return [_orjson_dumps(obj, default=_refuse, option=_OPTIONS) for obj in objs]
    except orjson.JSONEncodeError:
        return [dumps(obj) for obj in objs]  # raises, located, at the culprit


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Parse JSON bytes produced by :func:`dumps`; invalid JSON raises :class:`PayloadError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"stored payload is not valid JSON: {exc}") from None


def _walk(value: Any, depth: int) -> None:
    """Raise :class:`_Refusal` unless ``value`` is strict JSON; ``depth`` counts containers.

    Inside containers, strings, booleans, None, in-range ints and finite floats are accepted
    without a call, which covers most of what real payloads hold.
    """
    kind = type(value)
    if kind is dict:
        _walk_dict(value, depth)
    elif kind is list or kind is tuple:
        _walk_sequence(value, depth)
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _Refusal(f"is an integer outside the 64-bit range ({INT_MIN} to {INT_MAX})")
    elif kind is float:
        if not math.isfinite(value):
            raise _Refusal(f"is {value!r} (NaN and Infinity are not valid JSON)")
    elif kind not in _SIMPLE:
        raise _Refusal(_describe(value))


def _walk_dict(value: dict[Any, Any], depth: int) -> None:
    """Check a dict's keys and recurse into its values."""
    if depth > MAX_DEPTH:
        raise _Refusal(_too_deep())
    for key, item in value.items():
        if type(key) is not str:
            raise _Refusal(
                f"has a key of type {type(key).__name__} ({_short_repr(key)}); "
                "JSON object keys must be str"
            )
        kind = type(item)
        if kind in _SIMPLE or (kind is int and INT_MIN <= item <= INT_MAX) or (
                kind is float and _isfinite(item)):
            continue
        try:
            if kind is list:  # the arguments of a body
                _walk_sequence(item, depth + 1)
            else:
                _walk(item, depth + 1)
        except _Refusal as refusal:
            refusal.path.append(key)
            raise


def _walk_sequence(value: list[Any] | tuple[Any, ...], depth: int) -> None:
    """Recurse into the items of a list or tuple."""
    if depth > MAX_DEPTH:
        raise _Refusal(_too_deep())
    for index, item in enumerate(value):
        kind = type(item)
        if kind in _SIMPLE or (kind is int and INT_MIN <= item <= INT_MAX) or (
                kind is float and _isfinite(item)):
            continue
        try:
            if kind is list:  # the arguments of a body
                _walk_sequence(item, depth + 1)
            else:
                _walk(item, depth + 1)
        except _Refusal as refusal:
            refusal.path.append(index)
            raise


def _find_bad_text(value: Any) -> None:
    """Raise :class:`_Refusal` at the first string or key that cannot be written as UTF-8.

    Only used to explain an orjson failure on data :func:`_walk` accepted, so it may be slow.
    """
    kind = type(value)
    if kind is str:
        _check_text(value, "is a str that")
        return
    if kind is dict:
        items: Any = value.items()
    elif kind is list or kind is tuple:
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if type(key) is str:
            _check_text(key, f"has a key ({_short_repr(key)}) that")
        try:
            _find_bad_text(item)
        except _Refusal as refusal:
            refusal.path.append(key)
            raise


def _check_text(text: str, subject: str) -> None:
    """Refuse strings orjson cannot write, i.e. ones holding lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refusal(f"{subject} is not valid UTF-8 (it contains a lone surrogate)") from None


def _describe(value: object) -> str:
    """Explain why a value of an unsupported type was refused."""
    kind = type(value)
    name = kind.__name__
    if isinstance(value, enum.Enum):
        return f"is {_article(name)} {name} enum member (pass its .value instead)"
    for base in _BASE_TYPES:
        if isinstance(value, base):
            plain = base.__name__
            return (
                f"is {_article(name)} {name}, a subclass of {plain} (convert it to a plain {plain})"
            )
    return f"is {_article(name)} {name} ({_ALLOWED})"


def _too_deep() -> str:
    """Reason used when containers nest deeper than orjson accepts (or refer to themselves)."""
    return f"is nested more than {MAX_DEPTH} levels deep (is there a reference cycle?)"


def _message(refusal: _Refusal) -> str:
    """Build the user-facing message for a refusal: prefix, location, reason."""
    return f"{_PREFIX}{_location(refusal.path[::-1])} {refusal.reason}"


def _location(path: list[Key]) -> str:
    """Render a path like ``args[1]['when']``; a leading identifier key is shown bare."""
    if not path:
        return "the payload"
    head = path[0]
    if isinstance(head, str) and head.isidentifier():
        root, rest = head, path[1:]
    else:
        root, rest = "payload", path
    parts = [f"[{part!r}]" for part in rest]
    if len(parts) > _MAX_PATH_PARTS:
        keep = _MAX_PATH_PARTS // 2
        parts = [*parts[:keep], "...", *parts[-keep:]]
    return root + "".join(parts)


def _article(word: str) -> str:
    """Pick the article for a type name ("u" counts as a consonant: a UUID, a UserDict)."""
    return "an" if word[:1].lower() in "aeio" else "a"


def _short_repr(value: object) -> str:
    """``repr`` clipped so that a huge key cannot flood the message."""
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _refuse(value: object) -> NoReturn:
    """orjson ``default`` hook: never convert anything."""
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _diagnose(obj: Any, exc: orjson.JSONEncodeError) -> PayloadError:
    """Turn an orjson failure on already-walked data into a located :class:`PayloadError`."""
    try:
        _find_bad_text(obj)
    except _Refusal as refusal:
        return PayloadError(_message(refusal))
    return PayloadError(f"{_PREFIX}{exc}")
