"""Error messages normalised for grouping: ids, numbers, hex, quoted strings and long tokens
become placeholders; the literal rest stays, and its longest piece anchors a store search."""

from __future__ import annotations

import pytest

from taskqueue.dashboard.error_patterns import anchor, pattern
from taskqueue.dashboard.query import JobQuery


@pytest.mark.parametrize(("message", "expected"), [
    ("ValueError: card declined for customer 110", "ValueError: card declined for customer <n>"),
    ("OSError: image 5007: not a JPEG", "OSError: image <n>: not a JPEG"),
    ("KeyError: 'user_42'", "KeyError: '<str>'"),
    ('HTTPError: 404 for "https://x.test/a/1"', 'HTTPError: <n> for "<str>"'),
    ("job 3f2c1e7a-1b2c-4d5e-8f90-123456789ABC gone", "job <uuid> gone"),
    ("bad pointer 0x7f3a2b1c, digest deadbeef99", "bad pointer <hex>, digest <hex>"),
    ("token tok_1Nb2Xy3Z4aBcDeFgH revoked", "token <token> revoked"),
    ("timed out after 30s at 2.5 MB/s (-3 left).", "timed out after <n>s at <n> MB/s (<n> left)."),
    ("utf8 codec, version v1.2.3, ipv6", "utf8 codec, version v1.2.3, ipv6"),
    ("balance 20000000000000000000 too high", "balance <n> too high"),
    ("ValueError: boom", "ValueError: boom"),
    ("", ""),
])
def test_variable_parts_become_placeholders(message: str, expected: str) -> None:
    assert pattern(message) == expected


def test_messages_differing_only_by_ids_share_a_pattern() -> None:
    texts = [f"card declined for customer {n} (charge ch_{n}abcdefghijklmnop)"
             for n in (1, 22, 333_333)]
    assert len({pattern(t) for t in texts}) == 1
    assert pattern("card declined for customer 1") != pattern("card refused for customer 1")


def test_the_anchor_is_the_longest_literal_piece_and_every_message_contains_it() -> None:
    group = pattern("OSError: image 5007: not a JPEG")
    assert anchor(group) == "OSError: image "
    assert anchor(group) in "OSError: image 12: not a JPEG"
    assert anchor("<n> <n>") is None and anchor("<n>: <uuid>") is None


def test_a_group_filter_searches_the_anchor_and_tests_the_pattern_here() -> None:
    query = JobQuery.from_params({"group": "ValueError: declined for <n>"})
    assert query.filter().exception_contains == "ValueError: declined for "
    assert query.scans_here and not query.bounded_scan
    assert set(query.states) == {"failed", "retrying"}
    bare = JobQuery.from_params({"group": "<n>"})
    assert bare.filter().exception_contains is None and bare.bounded_scan
