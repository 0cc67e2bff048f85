"""Job search for the dashboard: request parameters -> a page of jobs, fast on big stores.

Everything the driver can filter on (state, queue, task name, tag, id, exception text) goes to
``JobFilter``; paging is keyset (``after_id``) on the time-sortable id, so page 5,000 costs the
same as page 1. Two filters are applied here on top:

* a creation-time range: ids are UUIDv7, so ``until`` becomes the starting cursor and ``since``
  the id where the scan stops -- both still index range scans;
* argument values, ``args.user_id:42`` (``args.0:42`` for a positional argument, dotted paths
  for nested values): the payload must be decoded, so one request decodes at most
  ``max_decode`` payloads; when that budget runs out the page comes back partial with a cursor
  to continue from. Encrypted payloads are decoded with the dashboard's key when it has one;
  payloads it cannot decode never match.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taskqueue.dashboard import error_patterns
from taskqueue.dashboard.signatures import named_positionals
from taskqueue.drivers.base import JobFilter
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

MAX_LIMIT = 500
#: Jobs one request reads at most for an error text shorter than a trigram (then the page is
#: partial, with a cursor to continue from).
SHORT_TEXT_SCAN = 2000
_ID = re.compile(r"^[0-9a-fA-F-]{1,36}$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class QueryError(ValueError):
    """A search parameter that cannot be understood (HTTP 400 with this message)."""


def error_line(exception: str | None) -> str:
    """The exception's last non-empty line (``ValueError: boom``), or a placeholder."""
    lines = [line.strip() for line in (exception or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no exception text)"


@dataclass(frozen=True, slots=True)
class ArgMatch:
    """``args.PATH:VALUE``: the argument at PATH equals VALUE (as JSON, or as text)."""

    path: tuple[str, ...]
    value: str

    def matches(self, body: Any, named: dict[str, Any] | None = None) -> bool:
        """``named``: the positional arguments by parameter name, when the task is known."""
        for root in ([named] if named else []) + _roots(body):
            found, value = _walk(root, self.path)
            if found and _equal(value, self.value):
                return True
        return False

    def __str__(self) -> str:
        return f"args.{'.'.join(self.path)}:{self.value}"


@dataclass(frozen=True, slots=True)
class JobQuery:
    states: tuple[State, ...] = ()
    queues: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    tag: str | None = None
    error: str | None = None
    #: An error pattern (``dashboard.error_patterns``): failures whose last line it stands for.
    group: str | None = None
    batch: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    args: tuple[ArgMatch, ...] = ()
    newest_first: bool = True
    cursor: str | None = None
    limit: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, str] | Any, default_limit: int = 50) -> JobQuery:
        """From query-string style parameters (repeatable or comma separated) and ``q``."""
        get_all: Callable[[str], list[str]] = (
            params.getlist if hasattr(params, "getlist") else lambda k: _as_list(params.get(k)))
        found: dict[str, list[str]] = {k: _split(get_all(k)) for k in
                                       ("state", "queue", "name", "id", "args")}
        single = {k: (params.get(k) or "").strip() or None
                  for k in ("tag", "error", "group", "batch", "since", "until", "cursor",
                            "order")}
        for key, value in parse_q(params.get("q") or ""):
            if key in found:
                found[key].append(value)
            else:
                single[key] = value
        states = tuple(_state(s) for s in found["state"])
        # other states' texts are reasons, not errors
        if (single["error"] or single["group"]) and not states:
            states = (State.FAILED, State.RETRYING)
        return cls(
            states=states,
            queues=tuple(found["queue"]), names=tuple(found["name"]),
            ids=tuple(_job_id(i) for i in found["id"]),
            tag=single["tag"], error=single["error"], group=single["group"],
            batch=single["batch"],
            since=parse_time(single["since"]), until=parse_time(single["until"]),
            args=tuple(parse_arg(a) for a in found["args"]),
            newest_first=(single["order"] or "newest") != "oldest",
            cursor=_job_id(single["cursor"]) if single["cursor"] else None,
            limit=_limit(params.get("limit"), default_limit))

    def filter(self, *, after_id: str | None = None, limit: int = 100,
               states: Sequence[State] | None = None) -> JobFilter:
        return JobFilter(queues=self.queues, states=tuple(states if states is not None
                                                          else self.states),
                         names=self.names, ids=self.ids, tag=self.tag, batch_id=self.batch,
                         exception_contains=self._contains,
                         after_id=after_id, limit=limit, newest_first=self.newest_first)

    @property
    def _contains(self) -> str | None:
        """The text the store searches exceptions for: the error text, else the group
        pattern's longest literal piece (every member's exception contains it)."""
        if self.error:
            return None if self.short_error else self.error
        return error_patterns.anchor(self.group) if self.group else None

    @property
    def short_error(self) -> bool:
        """An error text shorter than a trigram (``error=%``): no index finds it, so the store
        is not asked (it would read every failed job); pages test it here, reading at most
        ``SHORT_TEXT_SCAN`` jobs per request (see ``find_page``)."""
        return bool(self.error) and len(self.error or "") < 3

    def keeps(self, record: JobRecord) -> bool:
        """The test of the filters applied here rather than by the store (a short error text;
        argument values are tested separately, they need decoding)."""
        return self.keeps_text(record.exception)

    def keeps_text(self, exception: str | None) -> bool:
        """``keeps`` for a job whose exception is this text."""
        if self.short_error and (self.error or "") not in (exception or ""):
            return False
        return not self.group or error_patterns.pattern(error_line(exception)) == self.group

    @property
    def bounded_scan(self) -> bool:
        """The store cannot narrow the text filter (an error text shorter than a trigram, or a
        group pattern without a literal piece that long): a request reads at most
        ``SHORT_TEXT_SCAN`` jobs and continues from a cursor."""
        return self.short_error or (bool(self.group) and self._contains is None)

    @property
    def start_id(self) -> str | None:
        """Where the scan starts: the cursor, else the time bound the order starts from."""
        if self.cursor:
            return self.cursor
        edge = self.until if self.newest_first else self.since
        return time_id(edge, high=self.newest_first) if edge is not None else None

    def beyond(self, job_id: str) -> bool:
        """True once the scan has passed the far end of the time range."""
        edge = self.since if self.newest_first else self.until
        if edge is None:
            return False
        bound = time_id(edge, high=not self.newest_first)
        return job_id < bound if self.newest_first else job_id > bound

    @property
    def needs_decoding(self) -> bool:
        return bool(self.args)

    @property
    def scans_here(self) -> bool:
        """Some filter is applied here, after the store: pages are read in larger chunks, and
        the store's count is at most the number of matches."""
        return bool(self.args) or self.short_error or bool(self.group)

    def describe(self) -> str:
        parts = [f"state={','.join(self.states)}" if self.states else "",
                 f"queue={','.join(self.queues)}" if self.queues else "",
                 f"name={','.join(self.names)}" if self.names else "",
                 f"id={','.join(self.ids)}" if self.ids else "",
                 f"tag={self.tag}" if self.tag else "", f"error~{self.error}" if self.error else "",
                 f"group={self.group}" if self.group else "",
                 f"batch={self.batch}" if self.batch else "",
                 f"since={self.since.isoformat()}" if self.since else "",
                 f"until={self.until.isoformat()}" if self.until else "",
                 *(str(a) for a in self.args)]
        return " ".join(p for p in parts if p) or "all jobs"


@dataclass
class Page:
    jobs: list[JobRecord] = field(default_factory=list)
    next_cursor: str | None = None
    scanned: int = 0
    decoded: int = 0
    #: The decode budget ran out before the page filled: continue from ``next_cursor``.
    partial: bool = False


Search = Callable[[JobFilter], list[JobRecord]]
Decode = Callable[[JobRecord], Any]


def find_page(search: Search, query: JobQuery, decode: Decode | None = None,
              max_decode: int = 2000, states: Sequence[State] | None = None) -> Page:
    """One page of matches, scanning in chunks until it is full or the data runs out."""
    page = Page()
    after = query.start_id
    chunk = query.limit + 1 if not query.scans_here else \
        max(query.limit * 4, 500 if query.short_error else 200)
    while True:
        batch = search(query.filter(after_id=after, limit=chunk, states=states))
        for record in batch:
            if query.beyond(record.id):
                return page
            if query.bounded_scan and page.scanned >= SHORT_TEXT_SCAN:
                page.partial, page.next_cursor = True, after
                return page
            page.scanned += 1
            if not query.keeps(record):
                after = record.id
                continue
            if query.needs_decoding:
                if page.decoded >= max(1, max_decode):
                    page.partial, page.next_cursor = True, after
                    return page
                page.decoded += 1
                if not _args_match(query.args, record, decode):
                    after = record.id
                    continue
            if len(page.jobs) == query.limit:
                page.next_cursor = page.jobs[-1].id
                return page
            page.jobs.append(record)
            after = record.id
        if len(batch) < chunk:
            return page


def _args_match(args: Sequence[ArgMatch], record: JobRecord, decode: Decode | None) -> bool:
    if decode is None:
        return False
    try:
        body = decode(record)
    except Exception:  # noqa: BLE001 - an undecodable payload (no key, corrupt) never matches
        return False
    named = named_positionals(record.name, body)
    return all(a.matches(body, named) for a in args)


# -- parsing ------------------------------------------------------------------------------------

def parse_q(text: str) -> list[tuple[str, str]]:
    """``state:failed queue:emails "error:connection reset" args.user_id:42 some words``."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise QueryError(f"cannot parse the search text: {exc}") from None
    out: list[tuple[str, str]] = []
    aliases = {"exception": "error", "task": "name", "status": "state"}
    for word in words:
        key, sep, value = word.partition(":")
        if word.startswith("args."):
            out.append(("args", word))
        elif sep and (key := aliases.get(key, key)) in ("state", "queue", "name", "id", "tag",
                                                         "error", "batch", "since", "until"):
            out.append((key, value))
        else:
            out.append(("error", word))  # bare words search the exception text
    return out


def parse_arg(text: str) -> ArgMatch:
    body = text.removeprefix("args.")
    path, sep, value = body.partition(":")
    if not sep or not path or any(not p for p in path.split(".")):
        raise QueryError(f"argument filter {text!r} must look like args.NAME:VALUE")
    return ArgMatch(tuple(path.split(".")), value)


def parse_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (naive means UTC), or relative to now: ``15m``, ``2h``, ``7d``."""
    if not text:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"not a time: {text!r} (use ISO 8601 or e.g. 15m, 2h, 7d)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def time_id(moment: datetime, *, high: bool) -> str:
    """The smallest (or largest) UUIDv7 that can be made at ``moment``'s millisecond."""
    ms = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    head = f"{ms:012x}"
    tail = "-ffff-ffff-ffffffffffff" if high else "-0000-0000-000000000000"
    return f"{head[:8]}-{head[8:]}{tail}"


def _state(text: str) -> State:
    try:
        return State(text.strip().lower())
    except ValueError:
        raise QueryError(f"unknown state {text!r}; states: "
                         f"{', '.join(s.value for s in State)}") from None


def _job_id(text: str) -> str:
    if not _ID.match(text.strip()):
        raise QueryError(f"not a job id: {text!r}")
    return text.strip().lower()


def _limit(raw: str | None, default: int) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"limit must be a number, got {raw!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _split(values: Sequence[str]) -> list[str]:
    """``?state=failed,cancelled&state=pending`` -> three values (args keep their commas)."""
    out: list[str] = []
    for value in values:
        if value.startswith("args."):
            out.append(value.strip())
        else:
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _roots(body: Any) -> list[Any]:
    """Where named arguments live: kwargs, a Job's data, the body itself; and positional."""
    if not isinstance(body, dict):
        return [body]
    roots: list[Any] = []
    for key in ("kwargs", "data"):
        if isinstance(body.get(key), dict):
            roots.append(body[key])
    if isinstance(body.get("args"), list):
        roots.append(body["args"])
    roots.append(body)
    return roots


def _walk(value: Any, path: Sequence[str]) -> tuple[bool, Any]:
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, bool) or value is None:
        return wanted.lower() == json.dumps(value)
    if isinstance(value, str):
        return value == wanted or json.dumps(value) == wanted
    if isinstance(value, int | float):
        try:
            return float(wanted) == value
        except ValueError:
            return False
    try:
        return bool(json.loads(wanted) == value)
    except ValueError:
        return False
