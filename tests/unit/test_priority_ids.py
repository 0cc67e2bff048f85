from __future__ import annotations

import uuid

import pytest

from taskqueue import Priority
from taskqueue.jobs.ids import uuid7
from taskqueue.jobs.priority import validate_priority


def test_named_levels() -> None:
    assert (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT) == (1, 5, 10, 20)
    assert validate_priority("urgent") == 20
    assert validate_priority(Priority.HIGH) == 10
    assert validate_priority(0) == 0 and validate_priority(1000) == 1000
    assert validate_priority("42") == 42


@pytest.mark.parametrize("bad", [-1, 1001, 2.5, "extreme", None, True])
def test_bad_priorities_are_clear_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="priority"):
        validate_priority(bad)


def test_uuid7_is_version_7_and_sorted() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    # the canonical form, as str(uuid.UUID(...)) writes it (the id is formatted by hand)
    assert all(str(uuid.UUID(i)) == i for i in ids)


def test_a_forked_child_makes_ids_from_other_random_bits() -> None:
    """Ids draw random bits from a buffer; a child inherits the parent's buffer and must not
    hand out the same bits (same millisecond and counter would then make the same id)."""
    import os

    uuid7()  # the parent's buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, ",".join(uuid7()[-12:] for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    ours = {uuid7()[-12:] for _ in range(50)}
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        theirs = set(pipe.read().decode().split(","))
    assert len(theirs) == 50 and not ours & theirs
