"""``task.s(...)`` / ``.delay(...)`` check the arguments against the function's signature. Plain
signatures are checked without ``inspect.Signature.bind`` (a few microseconds per enqueue);
the answer must be inspect's, for good and bad arguments alike."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest

from taskqueue.jobs.definition import Task


def plain(a: Any, b: Any = 1, c: Any = 2) -> None: ...


def required_only(a: Any, b: Any) -> None: ...


def nothing() -> None: ...


def keyword_only(a: Any, *, b: Any) -> None: ...


def var_args(a: Any, *rest: Any, **more: Any) -> None: ...


ARGS = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]
KWARGS = [{}, {"a": 1}, {"b": 2}, {"c": 3}, {"b": 2, "c": 3}, {"z": 0}, {"rest": 1}]


def inspect_accepts(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                    partial: bool) -> bool:
    signature = inspect.signature(fn)
    try:
        (signature.bind_partial if partial else signature.bind)(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("fn", [plain, required_only, nothing, keyword_only, var_args])
@pytest.mark.parametrize("partial", [False, True])
def test_arguments_are_accepted_exactly_when_inspect_accepts_them(fn: Any,
                                                                  partial: bool) -> None:
    job = Task(fn, f"binding.{fn.__name__}", {})
    for args, kwargs in itertools.product(ARGS, KWARGS):
        expected = inspect_accepts(fn, args, kwargs, partial)
        try:
            job.call(args, kwargs, partial=partial)
            accepted = True
        except TypeError as exc:
            assert str(exc).startswith(f"task binding.{fn.__name__}: ")
            accepted = False
        assert accepted == expected, (fn.__name__, args, kwargs, partial)
