"""Cron expressions: parsing, matching, next wall-clock minute, description."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.exceptions import ScheduleError
from switchyard.schedule.cron import Cron


@pytest.mark.parametrize("expr,field,value", [
    ("61 * * * *", "minute", "61"),
    ("0 24 * * *", "hour", "24"),
    ("0 0 0 * *", "day-of-month", "0"),
    ("0 0 32 * *", "day-of-month", "32"),
    ("0 0 * 13 *", "month", "13"),
    ("0 0 * * 8", "day-of-week", "8"),
    ("0 0 * foo *", "month", "foo"),
    ("0 0 * * mo", "day-of-week", "mo"),
    ("*/0 * * * *", "minute", "0"),
    ("*/x * * * *", "minute", "x"),
    ("5-1 * * * *", "minute", "5-1"),
    ("1,,2 * * * *", "minute", "''"),
    ("0 1-x * * *", "hour", "x"),
])
def test_parse_errors_name_the_field_and_value(expr, field, value):
    with pytest.raises(ScheduleError) as e:
        Cron.parse(expr)
    msg = str(e.value)
    assert f"cron '{expr}'" in msg and f"{field} " in msg and value in msg
    assert "\n" not in msg and (": use " in msg or ": write " in msg)


def test_out_of_range_message_says_how_to_fix():
    with pytest.raises(ScheduleError) as e:
        Cron.parse("61 * * * *")
    assert str(e.value) == ("cron '61 * * * *': minute 61 is out of range 0-59: use 0-59, '*', "
                            "lists (1,15), ranges (1-5) or steps (*/15)")


@pytest.mark.parametrize("expr", ["", "1 2 3", "* * * * * *", "@reboot", "@fortnightly"])
def test_wrong_shape_is_refused(expr):
    with pytest.raises(ScheduleError, match="fields|macro"):
        Cron.parse(expr)


def test_impossible_day_is_refused_at_parse_time():
    never = r"cron '0 0 30 2 \*': day-of-month 30 never occurs in month feb"
    with pytest.raises(ScheduleError, match=never):
        Cron.parse("0 0 30 2 *")
    with pytest.raises(ScheduleError, match="apr,jun"):
        Cron.parse("0 0 31 apr,jun *")
    # With a restricted weekday too the OR rule gives matches, so it is fine.
    assert Cron.parse("0 0 30 2 mon").next_local(datetime(2026, 1, 1)) == datetime(2026, 2, 2)


def test_fields_steps_lists_ranges():
    c = Cron.parse("*/15 9-17/4 1,15,20-22 * *")
    assert c.minutes == (0, 15, 30, 45)
    assert c.hours == (9, 13, 17)
    assert c.days == (1, 15, 20, 21, 22)
    assert Cron.parse("5/20 * * * *").minutes == (5, 25, 45)  # a/n = a-max/n
    assert Cron.parse("0-10/5,58 * * * *").minutes == (0, 5, 10, 58)


def test_names_any_case_and_sunday_is_0_and_7():
    c = Cron.parse("0 0 * JAN,mar-May Mon-FRI")
    assert c.months == (1, 3, 4, 5) and c.weekdays == (1, 2, 3, 4, 5)
    assert Cron.parse("0 0 * * 7").weekdays == (0,) == Cron.parse("0 0 * * sun").weekdays
    assert Cron.parse("0 0 * * 5-7").weekdays == (0, 5, 6)
    assert Cron.parse("0 0 * * fri-sat").weekdays == (5, 6)


@pytest.mark.parametrize("macro,same", [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"),
                                        ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
                                        ("@daily", "0 0 * * *"), ("@MIDNIGHT", "0 0 * * *"),
                                        ("@hourly", "0 * * * *")])
def test_macros(macro, same):
    a, b = Cron.parse(macro), Cron.parse(same)
    assert a.expr == macro
    assert (a.minutes, a.hours, a.days, a.months, a.weekdays, a.hour_star) == \
           (b.minutes, b.hours, b.days, b.months, b.weekdays, b.hour_star)


def test_day_of_month_or_day_of_week_when_both_restricted():
    c = Cron.parse("0 0 13 * 5")  # the 13th, and every Friday
    assert c.matches(datetime(2026, 5, 13))  # a Wednesday
    assert c.matches(datetime(2026, 5, 15))  # a Friday
    assert not c.matches(datetime(2026, 5, 14))
    # One side unrestricted: both must match.
    c = Cron.parse("0 0 13 * *")
    assert not c.matches(datetime(2026, 5, 15))
    c = Cron.parse("0 0 */2 * 5")  # Vixie: a field starting with '*' is unrestricted, so AND
    assert c.matches(datetime(2026, 5, 15)) and not c.matches(datetime(2026, 5, 22))
    assert not c.matches(datetime(2026, 5, 13))


def test_matches_ignores_seconds_and_checks_each_field():
    c = Cron.parse("30 2 * 5 *")
    assert c.matches(datetime(2026, 5, 9, 2, 30, 59))
    assert not c.matches(datetime(2026, 5, 9, 2, 31))
    assert not c.matches(datetime(2026, 5, 9, 3, 30))
    assert not c.matches(datetime(2026, 6, 9, 2, 30))


def test_next_local_is_strictly_after():
    c = Cron.parse("* * * * *")
    assert c.next_local(datetime(2026, 5, 9, 10, 0)) == datetime(2026, 5, 9, 10, 1)
    assert c.next_local(datetime(2026, 5, 9, 10, 0, 30)) == datetime(2026, 5, 9, 10, 1)


@pytest.mark.parametrize("expr,after,expected", [
    ("0 0 1 * *", datetime(2026, 12, 31, 23, 59), datetime(2027, 1, 1)),
    ("59 23 31 * *", datetime(2026, 4, 1), datetime(2026, 5, 31, 23, 59)),
    ("0 0 29 2 *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
    ("0 0 29 2 *", datetime(2028, 2, 29), datetime(2032, 2, 29)),
    ("0 0 29 2 *", datetime(2096, 3, 1), datetime(2104, 2, 29)),  # 2100 is not a leap year
    ("0 12 * * mon", datetime(2026, 5, 9, 13), datetime(2026, 5, 11, 12)),
    ("*/15 * * * *", datetime(2026, 12, 31, 23, 50), datetime(2027, 1, 1)),
    ("@yearly", datetime(2026, 1, 1), datetime(2027, 1, 1)),
    ("0 9 31 * *", datetime(2026, 1, 31, 9), datetime(2026, 3, 31, 9)),
])
def test_next_local_across_month_and_year_ends(expr, after, expected):
    assert Cron.parse(expr).next_local(after) == expected


def test_next_local_refuses_aware_datetimes():
    from datetime import timezone
    with pytest.raises(ValueError):
        Cron.parse("* * * * *").next_local(datetime(2026, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("expr,text", [
    ("30 2 * * *", "at 02:30 every day"),
    ("@daily", "at 00:00 every day"),
    ("0 9 * * 1-5", "at 09:00 on Mon, Tue, Wed, Thu, Fri"),
    ("0 12 1,15 * *", "at 12:00 on day 1, 15 of the month"),
    ("*/15 * * * *", "every 15 minutes"),
    ("* * * * *", "every minute"),
    ("@hourly", "at minute 0 of every hour"),
    ("0 0 13 * 5", "0 0 13 * 5"),
    ("0 0 1 jan *", "0 0 1 jan *"),
])
def test_describe(expr, text):
    assert Cron.parse(expr).describe() == text


_FIELD = st.sampled_from(["*", "0", "*/7", "1-20/3", "5,10,45"])


@settings(max_examples=150, deadline=None)
@given(minute=_FIELD, hour=st.sampled_from(["*", "3", "*/5", "1-4,22"]),
       dom=st.sampled_from(["*", "1", "13", "28-31", "*/10"]),
       month=st.sampled_from(["*", "2", "jun-aug"]),
       dow=st.sampled_from(["*", "0", "1-5", "sat"]),
       after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)))
def test_next_local_is_the_first_match(minute, hour, dom, month, dow, after):
    c = Cron.parse(f"{minute} {hour} {dom} {month} {dow}")
    nxt = c.next_local(after)
    assert nxt > after and nxt.second == 0 and c.matches(nxt)
    # No matching minute in between: minute by minute on the first and last day; a whole
    # day between them has a match iff its first allowed (hour, minute) matches.
    minute = timedelta(minutes=1)
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    m = after.replace(second=0, microsecond=0) + minute
    while m < min(nxt, midnight):
        assert not c.matches(m)
        m += minute
    while midnight.date() < nxt.date():
        assert not c.matches(midnight.replace(hour=c.hours[0], minute=c.minutes[0]))
        midnight += timedelta(days=1)
    m = max(m, nxt.replace(hour=0, minute=0))
    while m < nxt:
        assert not c.matches(m)
        m += minute
