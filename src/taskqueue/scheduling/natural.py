"""Schedules in plain English, compiled to cron: ``compile_phrase("every weekday at 9am")``.

The grammar is a sequence of clauses, in any order, case-insensitive::

    every|each N seconds|minutes|hours|days|weeks|months   every 5 minutes, every 7 minutes,
                                                           every 2 weeks, every 3 months
    every other day|week|month, every fortnight every 2 days, every 2 weeks, ...
    every second|minute|hour|day|week|month|year, every half hour, every quarter hour
    hourly | daily | weekly | monthly | yearly | annually
    once|twice|thrice|N times a|an|per day|hour|minute     twice a day = every 12 hours
    every|on DAYS           DAYS: monday and thursday, mon, wed and fri, weekdays, weekends,
                                  monday to friday, tue-thu (plural "mondays" is fine)
    on the ORDINALS [of every month|of the month|of MONTHS]    1st, 15th, first, last
    every ORDINAL [of the month]                every 1st of the month, every 15th
    [on the] ORDINAL WEEKDAY [of the month]     first monday of the month, last friday
    at TIMES                TIMES: 9am, 9:30, 21:00, 6:15pm, 9:30:15, noon, midnight, :15 (minutes
                                   past the hour); several joined by "and" or ","
    between TIME and TIME | from TIME to TIME      limits an interval to part of the day
    in MONTHS | of MONTHS   january, jul, ...
    in ZONE                 an IANA zone such as Europe/Paris (the schedule's time zone)

Phrases compile to the cron form :mod:`taskqueue.scheduling.cron` runs (seconds make it a
6-field expression). An interval that cron cannot express (every 7 minutes: ``*/7`` would fire
at :56 and again at :00; every 2 days; every 2 weeks; every 5 months) compiles to a base cron
expression plus a period (:mod:`taskqueue.scheduling.timing`): every 7 real minutes from the
schedule's creation, every other calendar day at the given time, and so on. ``between`` is
inclusive for hour steps (every 2 hours between 8am and 6pm fires at 8, 10, ..., 18) and covers
the whole hours from the start up to the end for minute and second steps (every 15 minutes
between 9am and 5pm runs 9:00 ... 16:45). Text that does not parse raises :class:`ScheduleError`
naming the word that failed and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from taskqueue.scheduling.cron import ScheduleError, normalize_cron, zone

WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4,
            "friday": 5, "saturday": 6}
MONTHS = {"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
          "august": 8, "september": 9, "october": 10, "november": 11, "december": 12}
UNITS = {"second": "second", "sec": "second", "minute": "minute", "min": "minute",
         "hour": "hour", "hr": "hour", "day": "day", "week": "week", "month": "month",
         "year": "year"}
ADVERBS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month",
           "yearly": "year", "annually": "year"}
ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?(am|pm)?$")
_ORDINAL = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")
_JOINERS = {"and", ","}
#: Appended to the errors of phrases that start wrong: what the grammar understands.
SUPPORTED = (". Supported: every N seconds/minutes/hours/days/weeks/months (any N, e.g. every "
             "7 minutes), every other day/week, hourly/daily/weekly/monthly, twice a day, "
             "N times an hour, at 9am / 17:30 / noon, on mondays / weekdays / weekends, on the "
             "1st / 15th / last day of the month, the first monday of the month, between 9am "
             "and 5pm, in december, in Europe/Paris")
_Lookup = Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A phrase's cron form, plus the time zone the phrase named (if any)."""

    cron: str
    timezone: str | None = None
    #: ``(count, unit)`` when only every ``count``-th unit of the cron's times fire (see
    #: :mod:`taskqueue.scheduling.timing`); None for a plain cron schedule.
    period: tuple[int, str] | None = None


@dataclass
class _Spec:
    """What the clauses said, before it becomes cron fields."""

    interval: tuple[int, str] | None = None
    times: list[tuple[int, int, int]] = field(default_factory=list)
    minute_marks: list[int] = field(default_factory=list)
    between: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    weekdays: list[int] = field(default_factory=list)
    monthdays: list[int] = field(default_factory=list)   # -1: the last day
    months: list[int] = field(default_factory=list)
    nth_weekdays: list[tuple[int, int]] = field(default_factory=list)  # (n or -1, weekday)
    month_step: int = 1
    timezone: str | None = None


class _Tokens:
    """The words of a phrase, with a cursor, and errors that point at a word."""

    def __init__(self, text: str) -> None:
        self.text = text
        spaced = re.sub(r"\s*(,)\s*", r" \1 ", text.strip())
        spaced = re.sub(r"(\d)\s+(am|pm)\b", r"\1\2", spaced, flags=re.IGNORECASE)
        self.raw = spaced.split()
        self.words = [w.lower() for w in self.raw]
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.words[i] if i < len(self.words) else None

    def take(self) -> str:
        word = self.peek()
        if word is None:
            raise self.error("the phrase ends too early")
        self.pos += 1
        return word

    def accept(self, *words: str) -> bool:
        if self.peek() in words:
            self.pos += 1
            return True
        return False

    def error(self, expected: str) -> ScheduleError:
        if self.pos >= len(self.words):
            where = "at the end"
        else:
            where = f'at "{self.raw[self.pos]}" (word {self.pos + 1})'
        return ScheduleError(f'cannot parse schedule "{self.text}" {where}: {expected}')


def compile_phrase(text: str) -> Compiled:
    """Compile an English schedule to cron; raise ScheduleError saying which part failed."""
    return _compile(" ".join(text.split()))


@lru_cache(maxsize=512)
def _compile(text: str) -> Compiled:
    if not text:
        raise ScheduleError("empty schedule: write e.g. 'every 5 minutes' or a cron expression")
    tokens = _Tokens(text)
    spec = _Spec()
    while tokens.peek() is not None:
        _clause(tokens, spec)
    builder = _Builder(spec, text)
    cron = normalize_cron(builder.cron())
    return Compiled(cron, spec.timezone, builder.period)


# -- clauses --------------------------------------------------------------------------------------

def _clause(tok: _Tokens, spec: _Spec) -> None:
    word = tok.peek()
    assert word is not None
    if word in _JOINERS:
        tok.take()
    elif tok.accept("every", "each"):
        _every(tok, spec)
    elif word in ADVERBS:
        _set_interval(tok, spec, (1, ADVERBS[tok.take()]), tok.pos - 1)
    elif tok.accept("at"):
        _times(tok, spec)
    elif tok.accept("on"):
        _on(tok, spec)
    elif tok.accept("between", "from"):
        _between(tok, spec)
    elif tok.accept("in", "of"):
        _in(tok, spec)
    elif _is_days(word):
        _days(tok, spec)
    elif _ordinal(word) is not None:
        _monthdays(tok, spec)
    elif word in _TIMES or (word.isdigit() and tok.peek(1) == "times"):
        _frequency(tok, spec)
    elif _time(word) is not None:
        _times(tok, spec)
    elif word == "the" and _ordinal(tok.peek(1) or "") is not None:
        tok.take()
        _monthdays(tok, spec)
    else:
        raise tok.error("expected a clause such as 'every ...', 'at ...', 'on ...', "
                        "'between ... and ...' or 'in ...'" + SUPPORTED)


_TIMES = {"once": 1, "twice": 2, "thrice": 3}


def _frequency(tok: _Tokens, spec: _Spec) -> None:
    """``twice a day``, ``3 times an hour``: an even interval of the smaller unit."""
    start = tok.pos
    word = tok.take()
    times = _TIMES.get(word) or int(word)
    if word.isdigit() and not tok.accept("times"):
        tok.pos = start
        raise tok.error("expected 'times' after the number (3 times a day)")
    if not tok.accept("a", "an", "per", "every", "each"):
        raise tok.error(f"expected 'a', 'an' or 'per' after '{word}' (twice a day)")
    unit = _unit(tok.peek())
    finer = {"day": ("hour", 24), "hour": ("minute", 60), "minute": ("second", 60)}
    if unit not in finer or times < 1:
        raise tok.error("expected day, hour or minute (twice a day, 4 times an hour)")
    tok.take()
    smaller, size = finer[unit]
    if size % times:
        tok.pos = start
        raise tok.error(f"{times} times a {unit} is not an even number of {smaller}s; use "
                        f"every N {smaller}s or name the times")
    _set_interval(tok, spec, (size // times, smaller) if times > 1 else (1, unit), start)


def _every(tok: _Tokens, spec: _Spec) -> None:
    start = tok.pos - 1
    word = tok.peek()
    if word is None:
        raise tok.error("expected a number, a unit or a weekday after 'every'")
    if word.isdigit() or word == "other":
        count = 2 if tok.take() == "other" else int(word)
        unit = _unit(tok.peek())
        if unit is None:
            raise tok.error("expected a unit after the number (seconds, minutes, hours, "
                            "days, weeks, months or years)")
        if count < 1:
            raise tok.error(f"every {count} {unit}s never repeats; the number must be 1 or more")
        tok.take()
        _set_interval(tok, spec, (count, unit), start)
    elif word == "fortnight":
        tok.take()
        _set_interval(tok, spec, (2, "week"), start)
    elif word in ("half", "quarter"):
        tok.take()
        if _unit(tok.peek()) != "hour":
            raise tok.error(f"expected 'hour' after 'every {word}'")
        tok.take()
        _set_interval(tok, spec, (30 if word == "half" else 15, "minute"), start)
    elif (unit := _unit(word)) is not None:
        tok.take()
        _set_interval(tok, spec, (1, unit), start)
    elif _is_days(word):
        _days(tok, spec)
    elif _month(word) is not None:
        spec.months += _names(tok, _month, "a month")
    elif _ordinal(word) is not None:  # every 1st of the month, every first monday
        _monthdays(tok, spec)
    else:
        raise tok.error("expected a number, 'other', a unit (second, minute, hour, day, week, "
                        "month, year), a weekday or a day of the month after 'every'" + SUPPORTED)


def _set_interval(tok: _Tokens, spec: _Spec, interval: tuple[int, str], start: int) -> None:
    """Record the frequency; "every day" adds nothing to a finer one (every hour every day)."""
    if spec.interval in (None, (1, "day")):
        spec.interval = interval
    elif interval != (1, "day"):
        tok.pos = start
        raise tok.error(f"a second frequency; the phrase already says every "
                        f"{spec.interval[0]} {spec.interval[1]}(s)")


def _times(tok: _Tokens, spec: _Spec) -> None:
    while True:
        word = tok.peek()
        if word is not None and re.fullmatch(r":\d{2}", word):
            minute = int(tok.take()[1:])
            if minute > 59:
                raise tok.error("minutes past the hour must be :00 to :59")
            spec.minute_marks.append(minute)
        else:
            spec.times.append(_take_time(tok))
        if not (tok.peek() in _JOINERS and _starts_time(tok.peek(1))):
            return
        tok.take()


def _starts_time(word: str | None) -> bool:
    return word is not None and (_time(word) is not None or bool(re.fullmatch(r":\d{2}", word)))


def _on(tok: _Tokens, spec: _Spec) -> None:
    tok.accept("the")
    word = tok.peek()
    if word is not None and _ordinal(word) is not None:
        _monthdays(tok, spec)
    elif word is not None and _month(word) is not None:
        spec.months += _names(tok, _month, "a month")
        if tok.peek() is not None and _ordinal(tok.peek() or "") is not None:
            _monthdays(tok, spec)
    elif word is not None and word[:1].isdigit():
        raise tok.error("expected a day of the month such as 1st, 15th or last")
    else:
        _days(tok, spec)


def _monthdays(tok: _Tokens, spec: _Spec) -> None:
    while True:
        tok.accept("the")
        day = _ordinal(tok.peek() or "")
        if day is None:
            raise tok.error("expected a day of the month such as 1st, 15th or last")
        tok.take()
        weekday = _weekday(tok.peek() or "")
        if weekday is not None:  # the first monday (of the month)
            if not (1 <= day <= 5 or day == -1):
                raise tok.error("expected first to fifth or last before a weekday")
            tok.take()
            spec.nth_weekdays.append((day, weekday))
        else:
            tok.accept("day")
            spec.monthdays.append(day)
        after = 2 if tok.peek(1) == "the" else 1
        if not (tok.peek() in _JOINERS and _ordinal(tok.peek(after) or "") is not None):
            break
        tok.take()
    if tok.accept("of") or (tok.peek() == "in" and tok.peek(1) in ("the", "every", "each")
                            and tok.accept("in")):
        _of(tok, spec)


def _of(tok: _Tokens, spec: _Spec) -> None:
    if tok.accept("every", "each", "the"):
        if _unit(tok.peek()) != "month":
            raise tok.error("expected 'month' (as in 'of every month')")
        tok.take()
        return
    spec.months += _names(tok, _month, "'every month' or a month name")


def _between(tok: _Tokens, spec: _Spec) -> None:
    start = _take_time(tok)
    if not tok.accept("and", "to", "until", "till", "-"):
        raise tok.error("expected 'and' between the two times (between 8am and 6pm)")
    spec.between = (start, _take_time(tok))


def _in(tok: _Tokens, spec: _Spec) -> None:
    word = tok.peek()
    if word is not None and _month(word) is not None:
        spec.months += _names(tok, _month, "a month")
    elif tok.accept("every", "each", "the"):
        if _unit(tok.peek()) != "month":
            raise tok.error("expected 'month'")
        tok.take()
    elif word is not None:
        spec.timezone = _zone_name(tok)
    else:
        raise tok.error("expected a month or a time zone after 'in'")


def _zone_name(tok: _Tokens) -> str:
    raw = tok.raw[tok.pos]
    name = _zone_names().get(raw.lower(), raw)
    try:
        zone(name)
    except ScheduleError:
        raise tok.error("expected a month or an IANA time zone (e.g. Europe/Paris)") from None
    tok.take()
    return name


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    from zoneinfo import available_timezones

    return {name.lower(): name for name in available_timezones()}


def _is_days(word: str) -> bool:
    """A weekday, a weekday range (mon-fri), weekdays or weekends."""
    if word in ("weekday", "weekdays", "weekend", "weekends"):
        return True
    return all(_weekday(part) is not None for part in word.split("-", 1))


def _days(tok: _Tokens, spec: _Spec) -> None:
    word = tok.peek()
    if word in ("weekday", "weekdays"):
        tok.take()
        spec.weekdays += [1, 2, 3, 4, 5]
    elif word in ("weekend", "weekends"):
        tok.take()
        spec.weekdays += [0, 6]
    else:
        spec.weekdays += _names(tok, _weekday, "a weekday")


def _names(tok: _Tokens, lookup: _Lookup, what: str) -> list[int]:
    """A list of names joined by 'and'/',' with ranges ('monday to friday', 'mon-fri')."""
    found: list[int] = []
    while True:
        word = tok.peek() or ""
        if "-" in word and all(lookup(p) is not None for p in word.split("-", 1)):
            tok.take()
            low, high = (lookup(p) for p in word.split("-", 1))
            found += _span(low or 0, high or 0)
        else:
            first = lookup(word)
            if first is None:
                raise tok.error(f"expected {what}")
            tok.take()
            if tok.peek() in ("to", "through", "thru") and lookup(tok.peek(1) or "") is not None:
                tok.take()
                found += _span(first, lookup(tok.take()) or 0)
            else:
                found.append(first)
        if not (tok.peek() in _JOINERS and lookup(tok.peek(1) or "") is not None):
            return found
        tok.take()


def _span(low: int, high: int) -> list[int]:
    return list(range(low, high + 1)) if low <= high else [*range(low, 7), *range(0, high + 1)]


# -- words ----------------------------------------------------------------------------------------

def _unit(word: str | None) -> str | None:
    """``minutes`` -> ``minute``; None for anything that is not a unit."""
    if word is None:
        return None
    if word in UNITS:
        return UNITS[word]
    return UNITS.get(word[:-1]) if word.endswith("s") else None


def _weekday(word: str) -> int | None:
    word = word[:-1] if word.endswith("s") and word[:-1] in WEEKDAYS else word
    for name, number in WEEKDAYS.items():
        if word == name or (len(word) >= 3 and name.startswith(word)):
            return number
    return None


def _month(word: str) -> int | None:
    for name, number in MONTHS.items():
        if word == name or (len(word) >= 3 and name.startswith(word)):
            return number
    return None


def _ordinal(word: str) -> int | None:
    if word in ORDINAL_WORDS:
        return ORDINAL_WORDS[word]
    match = _ORDINAL.fullmatch(word)
    if match and 1 <= int(match[1]) <= 31:
        return int(match[1])
    return None


def _time(word: str) -> tuple[int, int, int] | None:
    if word == "noon":
        return (12, 0, 0)
    if word == "midnight":
        return (0, 0, 0)
    match = _TIME.fullmatch(word)
    if not match:
        return None
    hour, minute, second = int(match[1]), int(match[2] or 0), int(match[3] or 0)
    if match[4]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match[4] == "pm" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return (hour, minute, second)


def _take_time(tok: _Tokens) -> tuple[int, int, int]:
    value = _time(tok.peek() or "")
    if value is None:
        raise tok.error("expected a time such as 9am, 9:30, 18:00, 6:15pm, noon or midnight")
    tok.take()
    return value


# -- cron fields ----------------------------------------------------------------------------------

class _Builder:
    """Turns a :class:`_Spec` into one cron expression, or explains why it cannot."""

    def __init__(self, spec: _Spec, text: str) -> None:
        self.spec = spec
        self.text = text
        #: Set when the interval needs a period on top of the cron (every 7 minutes).
        self.period: tuple[int, str] | None = None

    def fail(self, why: str) -> ScheduleError:
        return ScheduleError(f'cannot express "{self.text}" as one cron expression: {why}')

    def cron(self) -> str:
        count, unit = self.spec.interval or (1, "day")
        if unit in ("second", "minute") and (count % 60 == 0):
            count, unit = count // 60, "minute" if unit == "second" else "hour"
        if unit == "hour" and count == 24:
            count, unit = 1, "day"
        if unit == "second":
            return self.seconds(count)
        if unit == "minute":
            return self.minutes(count)
        if unit == "hour":
            return self.hours(count)
        return self.days(count, unit)

    def seconds(self, count: int) -> str:
        self.no_times("every N seconds")
        return f"{self.step(count, 60, 'second')} * {self.hour_span()} {self.date_fields()}"

    def minutes(self, count: int) -> str:
        self.no_times("every N minutes")
        return f"{self.step(count, 60, 'minute')} {self.hour_span()} {self.date_fields()}"

    def step(self, count: int, whole: int, unit: str) -> str:
        """``*/N`` when N divides the unit's range; else every unit plus a period."""
        if whole % count == 0:
            return "*" if count == 1 else f"*/{count}"
        self.period = (count, unit)
        return "*"

    def hours(self, count: int) -> str:
        if self.spec.times:
            raise self.fail("'at' a time conflicts with an hourly interval; use ':MM' for "
                            "minutes past the hour (every hour at :15)")
        minute = _join(sorted(set(self.spec.minute_marks))) if self.spec.minute_marks else "0"
        step = self.step(count, 24, "hour")
        if self.spec.between is None:
            hour = step
        elif self.period is not None:
            hour = self.hour_span(inclusive=True)
        else:
            (h1, m1, _), (h2, _, _) = self.spec.between
            if m1:
                raise self.fail("'between' needs a whole hour to start from")
            hour = _range(h1, h2, count)
        return f"{minute} {hour} {self.date_fields()}"

    def days(self, count: int, unit: str) -> str:
        spec = self.spec
        if spec.between is not None:
            raise self.fail("'between' limits intervals of seconds, minutes or hours")
        if spec.minute_marks:
            raise self.fail("':MM' is for hourly schedules; write a full time (at 9:15)")
        if unit == "year":
            unit, count = ("month", 12 * count) if count > 1 else (unit, count)
            spec.months = spec.months or ([] if count > 1 else [1])
            spec.monthdays = spec.monthdays or ([] if spec.nth_weekdays else [1])
        if unit == "month":
            if not (spec.monthdays or spec.nth_weekdays):
                spec.monthdays = [1]
            if count > 1 and spec.months:
                raise self.fail("name the months or give a step, not both")
            if 12 % count:
                self.period = (count, "month")
            else:
                spec.month_step = count
        elif unit == "week" and not spec.weekdays:
            spec.weekdays = [0]
        if count > 1 and unit in ("day", "week"):
            self.period = (count, unit)
        return f"{self.clock()} {self.date_fields()}"

    def clock(self) -> str:
        times = sorted(set(self.spec.times)) or [(0, 0, 0)]
        seconds = {s for _, _, s in times}
        if len({(m, s) for _, m, s in times}) == 1:
            _, minute, second = times[0]
            clock = f"{minute} {_join(sorted({h for h, _, _ in times}))}"
        elif len({(h, s) for h, _, s in times}) == 1:
            hour, _, second = times[0]
            clock = f"{_join(sorted({m for _, m, _ in times}))} {hour}"
        else:
            shown = " and ".join(f"{h}:{m:02d}" for h, m, _ in times)
            raise self.fail(f"{shown} differ in both hour and minute; use one schedule per time")
        if len(seconds) > 1:
            raise self.fail("times with different seconds need separate schedules")
        return f"{second} {clock}" if second else clock

    def hour_span(self, *, inclusive: bool = False) -> str:
        if self.spec.between is None:
            return "*"
        (h1, m1, _), (h2, m2, _) = self.spec.between
        if m1 or m2:
            raise self.fail("'between' needs whole hours (between 9am and 5pm)")
        last = h2 if inclusive else (h2 - 1) % 24
        return _range(h1, last, 1)

    def date_fields(self) -> str:
        spec = self.spec
        if spec.weekdays and spec.monthdays:
            raise self.fail("cron cannot require both a weekday and a day of the month")
        if spec.nth_weekdays and (spec.weekdays or spec.monthdays):
            raise self.fail("'the first monday' cannot be combined with other days")
        days = sorted({d for d in spec.monthdays if d > 0})
        dom = ",".join(filter(None, [_join(days), "L" if -1 in spec.monthdays else ""])) or "*"
        month = _join(sorted(set(spec.months))) if spec.months else "*"
        if spec.month_step > 1:
            month = f"*/{spec.month_step}"
        dow = _join(sorted(set(spec.weekdays))) if spec.weekdays else "*"
        if spec.nth_weekdays:
            dow = ",".join(f"L{wd}" if n == -1 else f"{wd}#{n}"
                           for n, wd in sorted(set(spec.nth_weekdays)))
        return f"{dom} {month} {dow}"

    def no_times(self, what: str) -> None:
        if self.spec.times or self.spec.minute_marks:
            raise self.fail(f"'at' a time conflicts with {what}; use 'between' to limit hours")


def _range(first: int, last: int, step: int) -> str:
    if first <= last:
        span = f"{first}-{last}" if first != last else str(first)
        return span if step == 1 else f"{span}/{step}"
    return _join(sorted(h % 24 for h in range(first, last + 25, step)))


def _join(values: list[int]) -> str:
    """``1,2,3,4,5`` -> ``1-5``; runs shorter than three stay listed."""
    out: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{values[i]}-{values[j]}")
        else:
            out.extend(str(v) for v in values[i:j + 1])
        i = j + 1
    return ",".join(out)
