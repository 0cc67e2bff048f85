"""The English schedule grammar: a table of phrases and the cron they compile to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from taskqueue.scheduling.cron import ScheduleError, normalize_cron, zone
from taskqueue.scheduling.natural import compile_phrase
from taskqueue.scheduling.schedules import parse_schedule_text

PHRASES = [
    # the examples
    ("every 5 minutes", "*/5 * * * *"),
    ("every hour at :15", "15 * * * *"),
    ("every day at 9:30", "30 9 * * *"),
    ("every weekday at 9am", "0 9 * * 1-5"),
    ("every monday and thursday at 18:00", "0 18 * * 1,4"),
    ("on the 1st of every month at midnight", "0 0 1 * *"),
    ("every 2 hours between 8am and 6pm", "0 8-18/2 * * *"),
    # seconds (6 fields, seconds first)
    ("every second", "* * * * * *"),
    ("every 30 seconds", "*/30 * * * * *"),
    ("every 90 seconds".replace("90", "120"), "*/2 * * * *"),
    ("every day at 9:30:15", "15 30 9 * * *"),
    # minutes and hours
    ("every minute", "* * * * *"),
    ("every 15 mins", "*/15 * * * *"),
    ("every half hour", "*/30 * * * *"),
    ("every quarter hour", "*/15 * * * *"),
    ("every hour", "0 * * * *"),
    ("hourly", "0 * * * *"),
    ("hourly at :45", "45 * * * *"),
    ("every hour at :00 and :30", "0,30 * * * *"),
    ("every 2 hours", "0 */2 * * *"),
    ("every 2 hours at :30", "30 */2 * * *"),
    ("every 120 minutes", "0 */2 * * *"),
    ("every 24 hours", "0 0 * * *"),
    ("every 15 minutes between 9am and 5pm", "*/15 9-16 * * *"),
    ("every 15 minutes between 9am and 5pm on weekdays", "*/15 9-16 * * 1-5"),
    ("every hour from 9:00 to 17:00", "0 9-17 * * *"),
    ("every 10 minutes between 10pm and 2am", "*/10 0,1,22,23 * * *"),
    ("every 2 hours between 10pm and 6am", "0 0,2,4,6,22 * * *"),
    # days
    ("every day", "0 0 * * *"),
    ("daily", "0 0 * * *"),
    ("daily at 6:15pm", "15 18 * * *"),
    ("every day at noon", "0 12 * * *"),
    ("every day at 12am", "0 0 * * *"),
    ("every day at 12pm", "0 12 * * *"),
    ("every day at 9 am", "0 9 * * *"),
    ("every day at 9:00 and 17:00", "0 9,17 * * *"),
    ("every day at 9:00 and 9:30", "0,30 9 * * *"),
    ("at 9am every day", "0 9 * * *"),
    ("every weekend at 10:00", "0 10 * * 0,6"),
    ("every weekday", "0 0 * * 1-5"),
    ("weekdays at 8:45", "45 8 * * 1-5"),
    ("every monday, wednesday and friday at 8am", "0 8 * * 1,3,5"),
    ("every mon, wed, fri at 7", "0 7 * * 1,3,5"),
    ("every monday to friday at 9:15", "15 9 * * 1-5"),
    ("every mon-fri at 9", "0 9 * * 1-5"),
    ("on tuesdays at 14:00", "0 14 * * 2"),
    ("mondays at 7am", "0 7 * * 1"),
    ("every sunday at midnight", "0 0 * * 0"),
    ("every saturday and sunday", "0 0 * * 0,6"),
    ("at 9am on weekdays", "0 9 * * 1-5"),
    # weeks, months, years
    ("every week", "0 0 * * 0"),
    ("weekly", "0 0 * * 0"),
    ("every month", "0 0 1 * *"),
    ("monthly at 6am", "0 6 1 * *"),
    ("every month on the 15th at 6am", "0 6 15 * *"),
    ("on the 1st and 15th of every month at noon", "0 12 1,15 * *"),
    ("on the last day of every month at 23:00", "0 23 L * *"),
    ("on the 1st of the month", "0 0 1 * *"),
    ("on the first of every month at 8", "0 8 1 * *"),
    ("every 3 months", "0 0 1 */3 *"),
    ("every year", "0 0 1 1 *"),
    ("yearly", "0 0 1 1 *"),
    ("on january 1st at midnight", "0 0 1 1 *"),
    ("on the 4th of july at noon", "0 12 4 7 *"),
    ("every day in december at 8", "0 8 * 12 *"),
    ("every monday in january and july at 9", "0 9 * 1,7 1"),
    # case and spacing do not matter
    ("  Every   Weekday  AT 9AM ", "0 9 * * 1-5"),
]


@pytest.mark.parametrize(("phrase", "cron"), PHRASES)
def test_phrase_compiles_to_cron(phrase: str, cron: str) -> None:
    compiled = compile_phrase(phrase)
    assert compiled.cron == cron
    assert normalize_cron(compiled.cron) == cron  # and it is valid cron
    assert compiled.timezone is None


@pytest.mark.parametrize(("phrase", "cron", "tz"), [
    ("every day at 9:30 in Europe/Paris", "30 9 * * *", "Europe/Paris"),
    ("every weekday at 9am in america/new_york", "0 9 * * 1-5", "America/New_York"),
    ("every hour in UTC", "0 * * * *", "UTC"),
])
def test_phrase_may_name_a_zone(phrase: str, cron: str, tz: str) -> None:
    compiled = compile_phrase(phrase)
    assert (compiled.cron, compiled.timezone) == (cron, tz)


@pytest.mark.parametrize(("phrase", "message"), [
    ("every blue moon", 'at "blue" (word 2): expected a number, \'other\', a unit'),
    ("every 5", "at the end: expected a unit after the number"),
    ("every 5 parsecs", 'at "parsecs" (word 3): expected a unit'),
    ("every day at 25:00", 'at "25:00" (word 4): expected a time'),
    ("every day at", "at the end: expected a time"),
    ("every day at 9:30 in Mars/Olympus", 'at "Mars/Olympus" (word 6): expected a month or an '
                                          "IANA time zone"),
    ("on the 40th", 'at "40th" (word 3): expected a day of the month'),
    ("sometimes", 'at "sometimes" (word 1): expected a clause'),
    ("every 5 minutes every 2 hours", 'at "every" (word 4): a second frequency'),
    ("every 2 hours between 8am or 6pm", 'at "or" (word 6): expected \'and\''),
    ("every 0 minutes", "every 0 minutes never repeats; the number must be 1 or more"),
    ("every 0 hours", "every 0 hours never repeats"),
    ("twice a week", 'at "week" (word 3): expected day, hour or minute'),
    ("7 times a day", "7 times a day is not an even number of hours"),
    ("every 2 months in march", "name the months or give a step, not both"),
    ("the 6th monday of the month", "expected first to fifth or last before a weekday"),
    ("every hour at 15", "use ':MM' for minutes past the hour"),
    ("every 5 minutes at 9am", "'at' a time conflicts with every N minutes"),
    ("every day at 9:30 and 17:15", "9:30 and 17:15 differ in both hour and minute"),
    ("every monday on the 1st", "both a weekday and a day of the month"),
    ("every 15 minutes between 9:30 and 17:00", "'between' needs whole hours"),
    ("every day between 9am and 5pm", "'between' limits intervals"),
    ("", "empty schedule"),
])
def test_bad_phrases_say_which_part_failed(phrase: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        compile_phrase(phrase)
    assert message in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("phrase", ["sometimes", "every blue moon", "whenever"])
def test_phrases_that_start_wrong_list_what_is_supported(phrase: str) -> None:
    with pytest.raises(ScheduleError) as info:
        compile_phrase(phrase)
    text = str(info.value)
    for example in ("Supported: every N seconds/minutes/hours/days/weeks/months",
                    "every other day", "twice a day", "the first monday of the month",
                    "between 9am and 5pm", "in Europe/Paris"):
        assert example in text, text


@pytest.mark.parametrize(("phrase", "cron", "period"), [
    # what people type (issue 19 item 6)
    ("every other day", "0 0 * * *", (2, "day")),
    ("twice a day", "0 */12 * * *", None),
    ("every 1st of the month", "0 0 1 * *", None),
    ("first monday of the month", "0 0 * * 1#1", None),
    ("every 2 weeks", "0 0 * * 0", (2, "week")),
    ("every 7 minutes", "* * * * *", (7, "minute")),
    # and their neighbours
    ("every other day at 9am", "0 9 * * *", (2, "day")),
    ("every other week on monday at 9:30", "30 9 * * 1", (2, "week")),
    ("every fortnight", "0 0 * * 0", (2, "week")),
    ("3 times a day", "0 */8 * * *", None),
    ("4 times an hour", "*/15 * * * *", None),
    ("once a day at 6pm", "0 18 * * *", None),
    ("every 15th of the month at noon", "0 12 15 * *", None),
    ("on the second tuesday of every month at 8", "0 8 * * 2#2", None),
    ("every last friday of the month at 17:00", "0 17 * * L5", None),
    ("the first monday and third wednesday of the month", "0 0 * * 1#1,3#3", None),
    ("every 90 minutes", "* * * * *", (90, "minute")),
    ("every 45 seconds", "* * * * * *", (45, "second")),
    ("every 5 hours", "0 * * * *", (5, "hour")),
    ("every 7 minutes between 9am and 5pm", "* 9-16 * * *", (7, "minute")),
    ("every 5 months", "0 0 1 * *", (5, "month")),
    ("every 2 years", "0 0 1 * *", (24, "month")),
    ("every 3 months", "0 0 1 */3 *", None),
])
def test_calendar_phrases_and_intervals_cron_cannot_express(
        phrase: str, cron: str, period: tuple[int, str] | None) -> None:
    compiled = compile_phrase(phrase)
    assert (compiled.cron, compiled.period) == (cron, period)


def test_interval_schedules_fire_at_real_intervals_across_hours_and_dst() -> None:
    """every 7 minutes is 7 real minutes apart, through the hour and the autumn repeat
    (cron's */7 would fire at :56 and :00); every other day skips alternate days."""
    from datetime import UTC, datetime, timedelta

    from taskqueue.scheduling.schedules import Schedule
    from taskqueue.scheduling.timing import Period

    created = datetime(2027, 10, 30, 23, 3, 27, tzinfo=UTC)
    seven = Schedule.create("s", "t", every="every 7 minutes", timezone="Europe/Berlin")
    seven = replace(seven, period=Period.starting(7, "minute", created))
    runs = seven.next_runs(60, created)
    assert runs[0] == datetime(2027, 10, 30, 23, 10, tzinfo=UTC)
    assert {b - a for a, b in zip(runs, runs[1:], strict=False)} == {timedelta(minutes=7)}
    other = Schedule.create("d", "t", every="every other day at 9am", timezone="Europe/Berlin")
    days = other.next_runs(5, other.since)
    assert [(b - a).days for a, b in zip(days, days[1:], strict=False)] == [2, 2, 2, 2]
    assert all(d.astimezone(zone("Europe/Berlin")).hour == 9 for d in days)


@pytest.mark.parametrize(("text", "cron"), [
    ("*/5 * * * *", "*/5 * * * *"),
    ("@hourly", "0 * * * *"),
    ("0 9 * * mon-fri", "0 9 * * mon-fri"),
    ("every 5 minutes", "*/5 * * * *"),
    ("weekday at 9am", "0 9 * * 1-5"),          # "every" may be left out
])
def test_text_may_be_cron_or_english(text: str, cron: str) -> None:
    assert parse_schedule_text(text)[0] == cron


def test_cron_looking_text_reports_the_cron_error() -> None:
    with pytest.raises(ScheduleError, match="has 7 fields"):
        parse_schedule_text("*/5 * * * * * *")
