"""The key under which ``Client`` remembers a call's settled options (``jobs.settle``): the
consecutive jobs of one task in ``push_many``, and a task pushed again and again with the same
options, have them checked once. And the jobs of a ``push_many`` made a run at a time as a
driver takes them (``PreparedJobs``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, overload

from taskqueue.jobs.model import JobRun, NewJob
from taskqueue.jobs.priority import Priority

#: Option values a settled-options key may hold: immutable, and equal only to values of their
#: own type that settle the same way (the key holds each value's type: ``True == 1``, but
#: ``priority=True`` is refused where 1 is not).
_KEYABLE = frozenset({str, int, float, bool, type(None), timedelta, Priority})


def settle_key(name: str, options: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """A key for the settled options of a call of task ``name`` (its ``options`` with
    ``overrides`` on top), or None when they must be settled afresh: ``eta`` (it counts from
    now) or a value other than a plain scalar, a timedelta, a Priority or a tuple or list of
    strings (a list is keyed by what it holds now)."""
    if "eta" in options or "eta" in overrides:
        return None
    items: list[Any] = [name]
    for source in (options, overrides):
        for option, value in source.items():
            kind = type(value)
            if kind is tuple or kind is list:
                if not all(type(v) is str for v in value):
                    return None
                value = tuple(value)
            elif kind not in _KEYABLE:
                return None
            items += (option, kind, value)
        items.append(None)
    return tuple(items)


#: Jobs in a run of a streamed batch (``PreparedJobs``): a store can insert one run while the
#: next is made.
SLICE = 128


class PreparedJobs(Sequence[NewJob]):
    """The jobs of one ``push_many``, none with an idempotency key, a dependency, a delay or
    a recurrence (their settled options said so before any job was made), made a run of up
    to ``SLICE`` jobs at a time as they are taken.

    A driver that can (``PushesRuns``) inserts each run while the next is made; read as a
    sequence, every job is made first. ``make`` yields the runs and raises what making a job
    raises (a payload refused, too large)."""

    def __init__(self, count: int, make: Iterator[JobRun]) -> None:
        self._count = count
        self._make = make
        self.taken: list[JobRun] = []
        self._jobs: list[NewJob] | None = None

    def runs(self) -> Iterator[JobRun]:
        """The jobs a run at a time, each made when it is taken. Taken again (a store's
        retry), the runs made already come first, then the rest."""
        yield from list(self.taken)
        for run in self._make:
            self.taken.append(run)
            yield run

    def made(self) -> list[NewJob]:
        """Every job, the rest made now."""
        if self._jobs is None:
            self.taken += self._make
            jobs = [job for run in self.taken for job in run.jobs()]
            if len(jobs) != self._count:  # making them raised and was ignored
                raise RuntimeError(f"{self._count - len(jobs)} of the batch's jobs were "
                                   "never made")
            self._jobs = jobs
        return self._jobs

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> NewJob: ...

    @overload
    def __getitem__(self, index: slice) -> list[NewJob]: ...

    def __getitem__(self, index: int | slice) -> NewJob | list[NewJob]:
        return self.made()[index]

    def __iter__(self) -> Iterator[NewJob]:
        return iter(self.made())
