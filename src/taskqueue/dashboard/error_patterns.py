"""Error messages with their variable parts replaced by placeholders, so failures that differ
only by an id group together: ``ValueError: card declined for customer 110`` and ``... 2471``
both become ``ValueError: card declined for customer <n>``.

Replaced, in this order (an earlier rule's text is not looked at again by a later one):

* quoted strings, ``'...'`` or ``"..."`` -> ``<str>`` (the quotes stay);
* UUIDs -> ``<uuid>``; ``0x`` numbers and hex runs of 8+ characters with a digit and a
  letter -> ``<hex>``;
* long tokens: 16+ letters, digits, ``_-+/=.`` with both a letter and a digit (API keys,
  session tokens, base64, paths with ids) -> ``<token>``;
* numbers (integers and decimals standing alone or with a short unit, ``30s`` -> ``<n>s``;
  not inside a word or version like ``utf8``, ``v1.2.3``) -> ``<n>``.

:func:`anchor` gives the longest literal piece of a pattern: every message of the group
contains it, so the store can narrow a search by it (an ordinary "exception contains" filter)
before the pattern is compared here.
"""

from __future__ import annotations

import re
from functools import lru_cache

PLACEHOLDERS = ("<str>", "<uuid>", "<hex>", "<token>", "<n>")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'[^'\n]*'"), "'<str>'"),
    (re.compile(r'"[^"\n]*"'), '"<str>"'),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b|"
                r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![\w+/=.-])(?=[\w+/=.-]*\d)(?=[\w+/=.-]*[A-Za-z])[\w+/=.-]{16,}"),
     "<token>"),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?=[a-zA-Z]{0,3}(?:[^\w.]|\.(?!\w)|$))"),
     "<n>"),
)
_SPLIT = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))
#: The shortest text the stores' substring search is asked for (their trigram indexes).
MIN_ANCHOR = 3


@lru_cache(maxsize=4096)
def pattern(message: str) -> str:
    """``message`` with numbers, UUIDs, hex, quoted strings and long tokens replaced."""
    pieces = [message]  # even indexes: literal text still to look at; odd: placeholders
    for rule, placeholder in _RULES:
        out: list[str] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                out.append(piece)
                continue
            for j, part in enumerate(_cut(rule, piece)):
                if j:
                    out.append(placeholder)
                out.append(part)
        pieces = out
    return "".join(pieces)


def _cut(rule: re.Pattern[str], text: str) -> list[str]:
    """``text`` split around the matches of ``rule`` (their text dropped)."""
    parts, start = [], 0
    for match in rule.finditer(text):
        parts.append(text[start:match.start()])
        start = match.end()
    parts.append(text[start:])
    return parts


def anchor(group: str) -> str | None:
    """The longest literal piece of a pattern (None when shorter than :data:`MIN_ANCHOR`):
    a substring of every message the pattern stands for."""
    longest = max(_SPLIT.split(group), key=len)
    return longest if len(longest) >= MIN_ANCHOR else None
