"""Recurring schedules and where they live: the driver's registry, so every node sees them.

A :class:`Schedule` says which task to enqueue (name, args, kwargs, job options), when (a cron
expression in an IANA zone, possibly compiled from an English phrase), what to do about runs
missed while no scheduler was up (``skip``, run ``once``, or run ``all`` of them, at most
:data:`MAX_CATCH_UP`), whether it is paused, and conditions checked before each run.

Storage: two registry kinds with a TTL of a century, so entries are durable.

* ``schedule``: the definition, written by people (add, replace, pause, resume, remove);
* ``schedule_state``: the last fire time handled, written only by the leading scheduler.

Keeping them apart means a pause typed while the scheduler records a run is never overwritten.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.jobs.definition import OPTION_DEFAULTS, Call, Runnable, check_options
from taskqueue.jobs.settle import settle
from taskqueue.scheduling.conditions import validate_conditions
from taskqueue.scheduling.cron import ScheduleError, normalize_cron, zone
from taskqueue.scheduling.natural import compile_phrase
from taskqueue.scheduling.timing import Period, next_fire_times

log = logging.getLogger("taskqueue.scheduler")

MISSED_POLICIES = ("skip", "once", "all")
#: The most missed runs a schedule with ``missed="all"`` enqueues after downtime (the latest).
MAX_CATCH_UP = 100
DURABLE_TTL = 100 * 365.25 * 86400.0
DEFINITIONS = "schedule"
STATES = "schedule_state"
#: Job options a schedule may not set: the scheduler owns timing and identity.
_NOT_FOR_SCHEDULES = ("delay", "eta", "idempotency_key", "depends_on", "batch_id", "every")


class ScheduleNotFound(ScheduleError):
    """No schedule has that name."""

    exit_code = 1


@dataclass(frozen=True)
class Schedule:
    """One recurring job. Build it with :meth:`create`, which validates and compiles."""

    name: str
    task: str
    cron: str
    timezone: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    missed: str = "skip"
    paused: bool = False
    conditions: tuple[str, ...] = ()
    #: The English phrase it was compiled from, if any (shown by ``schedule:list``).
    text: str | None = None
    #: Runs are due from here on: set at creation and on resume (missed runs before it never run).
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The last fire time the scheduler handled (from ``schedule_state``; None before the first).
    last_fire: datetime | None = None
    #: For intervals cron cannot express (every 7 minutes, every other day): only every Nth
    #: period of ``cron``'s times fires, counted from the schedule's creation.
    period: Period | None = None

    @classmethod
    def create(
        cls,
        name: str,
        task: str | Runnable,
        *,
        cron: str | None = None,
        every: str | None = None,
        timezone: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        missed: str = "skip",
        conditions: Sequence[str] = (),
        paused: bool = False,
        **options: Any,
    ) -> Schedule:
        """Validate and build. Give ``cron`` (5 or 6 fields, or an alias) or ``every`` (an
        English phrase, e.g. "every weekday at 9am"; "every" may be left out). A zone named in
        the phrase ("... in Europe/Paris") applies unless ``timezone`` is given."""
        expr, phrase_zone, phrase, period = _compile(cron, every)
        now = datetime.now(UTC)
        schedule = cls(
            name=name, task=task if isinstance(task, str) else task.name, cron=expr,
            timezone=timezone or phrase_zone or "UTC", args=tuple(args),
            kwargs=dict(kwargs or {}), options=dict(options), missed=missed, paused=paused,
            conditions=tuple(conditions), text=phrase, since=now,
            period=Period.starting(*period, now) if period else None,
        )
        schedule.validate()
        return schedule

    def validate(self) -> None:
        if not self.name or any(c.isspace() for c in self.name) or len(self.name) > 120:
            raise ScheduleError(f"schedule name {self.name!r} must be 1-120 characters without "
                                "spaces")
        if not self.task:
            raise ScheduleError(f"schedule {self.name}: a task name is required")
        normalize_cron(self.cron)
        zone(self.timezone)
        if self.missed not in MISSED_POLICIES:
            raise ScheduleError(f"schedule {self.name}: missed must be one of "
                                f"{', '.join(MISSED_POLICIES)}, got {self.missed!r}")
        check_options(self.options, f"schedule {self.name}")
        refused = sorted(set(self.options) & set(_NOT_FOR_SCHEDULES))
        if refused:
            raise ScheduleError(f"schedule {self.name}: option(s) {', '.join(refused)} cannot be "
                                "set on a schedule")
        try:  # the values too, as each run's push will: else every run fails, only in the log
            settle(Call(self.task, {}, {}), dict(self.options))
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"schedule {self.name}: {exc}") from None
        validate_conditions(self.conditions)

    def next_runs(self, count: int = 5, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` fire instants (UTC) after ``after`` (default: now)."""
        return next_fire_times(self.cron, self.timezone, after or datetime.now(UTC), count,
                               self.period)

    def upcoming(self, count: int = 1) -> tuple[list[datetime], str | None]:
        """(next runs, None), or ([], why) for a stored schedule that cannot fire (one saved
        by an older version that accepted it): listings show it instead of failing."""
        try:
            return self.next_runs(count), None
        except ValueError as exc:  # ScheduleError is a ConfigError, not a ValueError
            return [], f"invalid cron expression {self.cron!r}: {exc}"
        except ScheduleError as exc:
            return [], str(exc)

    def idempotency_key(self, fire: datetime) -> str:
        """The key that makes each fire time enqueue at most one job, on any node."""
        return f"schedule:{self.name}:{fire.astimezone(UTC).isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "task": self.task, "cron": self.cron, "timezone": self.timezone,
            "args": list(self.args), "kwargs": dict(self.kwargs), "options": dict(self.options),
            "missed": self.missed, "paused": self.paused, "conditions": list(self.conditions),
            "text": self.text, "since": self.since.isoformat(),
            "last_fire": self.last_fire.isoformat() if self.last_fire else None,
            "period": ({"count": self.period.count, "unit": self.period.unit,
                        "anchor": self.period.anchor.isoformat()} if self.period else None),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        last = data.get("last_fire")
        period = data.get("period")
        return cls(
            name=data["name"], task=data["task"], cron=data["cron"],
            timezone=data.get("timezone", "UTC"), args=tuple(data.get("args", ())),
            kwargs=dict(data.get("kwargs") or {}), options=dict(data.get("options") or {}),
            missed=data.get("missed", "skip"), paused=bool(data.get("paused")),
            conditions=tuple(data.get("conditions") or ()), text=data.get("text"),
            since=datetime.fromisoformat(data["since"]),
            last_fire=datetime.fromisoformat(last) if last else None,
            period=Period(int(period["count"]), str(period["unit"]),
                          datetime.fromisoformat(period["anchor"])) if period else None,
        )


def _compile(cron: str | None, every: str | None
             ) -> tuple[str, str | None, str | None, tuple[int, str] | None]:
    """(cron, zone named in the phrase, the phrase as compiled, its period if any)."""
    if (cron is None) == (every is None):
        raise ScheduleError("give exactly one of cron= (a cron expression) or every= "
                            "(a phrase such as 'every day at 9:30')")
    if cron is not None:
        return normalize_cron(cron), None, None, None
    assert every is not None
    text = " ".join(every.split())
    try:
        compiled = compile_phrase(text)
    except ScheduleError as first:
        if text.lower().startswith("every "):
            raise
        try:  # --every "5 minutes", every="weekday at 9am"
            text = f"every {text}"
            compiled = compile_phrase(text)
        except ScheduleError:
            raise first from None
    return compiled.cron, compiled.timezone, text, compiled.period


def looks_like_cron(text: str) -> bool:
    """An alias, or five or more fields starting with a numeric or ``*`` field."""
    words = text.split()
    return text.strip().startswith("@") or (
        len(words) >= 5 and re.fullmatch(r"[\d*/,\-?]+", words[0]) is not None)


def parse_schedule_text(text: str) -> tuple[str, str | None]:
    """A cron expression or an English phrase -> (cron, zone named in the phrase or None)."""
    if looks_like_cron(text):
        return normalize_cron(text), None
    cron, tz, _, _ = _compile(None, text)
    return cron, tz


class ScheduleStore:
    """Schedules in the driver's registry (see the module docstring for the layout)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def list(self) -> list[Schedule]:
        """Every schedule, by name, with its last fire time."""
        fired = {s.get("name"): s.get("last_fire") for s in self.driver.registry_list(STATES)}
        found = []
        for data in self.driver.registry_list(DEFINITIONS):
            try:
                found.append(Schedule.from_dict({**data, "last_fire": fired.get(data["name"])}))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("ignoring a malformed schedule entry %r: %s", data.get("name"), exc)
        return sorted(found, key=lambda s: s.name)

    def get(self, name: str) -> Schedule | None:
        return next((s for s in self.list() if s.name == name), None)

    def require(self, name: str) -> Schedule:
        schedule = self.get(name)
        if schedule is None:
            known = ", ".join(s.name for s in self.list()) or "none"
            raise ScheduleNotFound(f"no schedule named {name!r} (known: {known})")
        return schedule

    def add(self, schedule: Schedule, *, replace_existing: bool = False) -> Schedule:
        """Store a new schedule; with ``replace_existing``, overwrite the definition of one that
        exists while keeping its pause flag, its start and its last fire time."""
        schedule.validate()
        existing = self.get(schedule.name)
        if existing is not None:
            if not replace_existing:
                raise ScheduleError(f"a schedule named {schedule.name!r} already exists "
                                    "(remove it first, or replace it)")
            period = schedule.period
            if period and existing.period and (period.count, period.unit) == (
                    existing.period.count, existing.period.unit):
                period = existing.period  # same interval: keep counting from the same start
            schedule = replace(schedule, paused=existing.paused, since=existing.since,
                               period=period)
        self._put(schedule)
        return schedule

    def remove(self, name: str) -> None:
        self.require(name)
        self.driver.registry_remove(DEFINITIONS, name)
        self.driver.registry_remove(STATES, name)

    def pause(self, name: str) -> Schedule:
        schedule = replace(self.require(name), paused=True)
        self._put(schedule)
        return schedule

    def resume(self, name: str) -> Schedule:
        """Unpause; runs that fell due while paused are not made up."""
        schedule = replace(self.require(name), paused=False, since=datetime.now(UTC))
        self._put(schedule)
        return schedule

    def record_fire(self, name: str, fire: datetime) -> None:
        """Remember the last fire time handled (scheduler only)."""
        self.driver.registry_put(STATES, name, {"name": name, "last_fire": fire.isoformat()},
                                 DURABLE_TTL)

    def _put(self, schedule: Schedule) -> None:
        data = schedule.to_dict()
        data.pop("last_fire")
        self.driver.registry_put(DEFINITIONS, schedule.name, data, DURABLE_TTL)


def schedule_options() -> list[str]:
    """Job options a schedule accepts (queue, priority, max_attempts, timeout, tags, ...)."""
    return [k for k in OPTION_DEFAULTS if k not in _NOT_FOR_SCHEDULES]
