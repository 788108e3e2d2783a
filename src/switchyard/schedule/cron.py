"""Cron expressions on naive wall-clock time.

Five fields, ``minute hour day-of-month month day-of-week``, with the Vixie cron
syntax: ``*``, numbers, lists ``1,15``, ranges ``1-5``, steps ``*/15``, ``1-30/5``
and ``5/10`` (= ``5-max/10``), month names ``jan``..``dec`` and weekday names
``sun``..``sat`` (any case; weekday 0 and 7 are both Sunday), and the macros
``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``)
and ``@hourly``.

Day rule (Vixie): when both day-of-month and day-of-week are restricted, a day
matches if EITHER matches; otherwise both must match. As in Vixie cron, a field
counts as unrestricted when its text starts with ``*`` (so ``*/2`` in day-of-month
still combines with day-of-week by AND). The same test on the hour field gives
``hour_star``, which decides how a schedule behaves across daylight-saving changes
(see ``switchyard.schedule.timing``).

Everything here is pure: this module knows nothing of time zones or clocks.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import MAXYEAR, datetime, timedelta

from switchyard.exceptions import ScheduleError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")

# name, lowest, highest, value names -> value, how to fix a bad value
_SYNTAX = "use {lo}-{hi}, '*', lists (1,15), ranges (1-5) or steps (*/15)"
_FIELDS = (
    ("minute", 0, 59, None, _SYNTAX.format(lo=0, hi=59)),
    ("hour", 0, 23, None, _SYNTAX.format(lo=0, hi=23)),
    ("day-of-month", 1, 31, None, _SYNTAX.format(lo=1, hi=31)),
    ("month", 1, 12, {n: i + 1 for i, n in enumerate(_MONTHS)},
     _SYNTAX.format(lo=1, hi=12) + " or jan..dec"),
    ("day-of-week", 0, 7, {n: i for i, n in enumerate(_WEEKDAYS)},
     _SYNTAX.format(lo=0, hi=7) + " or sun..sat (0 and 7 are Sunday)"),
)
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists in leap years
# Weekdays repeat on the same dates every 400 years (the Gregorian cycle), so a
# search that finds nothing within it can never find anything.
_HORIZON_YEARS = 400


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field.

    Attributes:
        expr: The expression as written (macros kept, surrounding blanks removed).
        minutes, hours, days, months, weekdays: Sorted allowed values; weekdays use
            0 = Sunday .. 6 = Saturday.
        dom_star, dow_star, hour_star: Whether that field starts with ``*``.
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    dom_star: bool
    dow_star: bool
    hour_star: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        """Parse ``expr``; raise ScheduleError naming the field and value when it is invalid.

        An expression whose day-of-month never exists in its months (``0 0 30 2 *``)
        is refused here, at parse time.
        """
        if not isinstance(expr, str):
            raise ScheduleError(f"cron {expr!r}: not a string: write five fields such as "
                                f"'0 2 * * *' or a macro ({', '.join(MACROS)})")
        return _parse(expr.strip())

    def matches(self, local: datetime) -> bool:
        """Whether the wall-clock minute of the naive datetime ``local`` fires (seconds ignored)."""
        return (local.minute in self.minutes and local.hour in self.hours
                and local.month in self.months
                and self._day_matches(local.year, local.month, local.day))

    def next_local(self, after: datetime) -> datetime:
        """The first matching wall-clock minute strictly after the naive datetime ``after``.

        Skips whole non-matching months, days and hours, so a yearly expression costs
        about as much as a minutely one.

        Raises:
            ScheduleError: No match before year 9999 (cannot happen for an expression
                that parsed, since parse refuses those that never match).
        """
        if after.tzinfo is not None:
            raise ValueError(f"next_local takes a naive wall-clock datetime, got {after!r}")
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        last_year = min(start.year + _HORIZON_YEARS, MAXYEAR)
        for year in range(start.year, last_year + 1):
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                this_month = (year, month) == (start.year, start.month)
                first_day = start.day if this_month else 1
                for day in range(first_day, calendar.monthrange(year, month)[1] + 1):
                    if not self._day_matches(year, month, day):
                        continue
                    today = this_month and day == start.day
                    for hour in self.hours:
                        if today and hour < start.hour:
                            continue
                        this_hour = today and hour == start.hour
                        for minute in self.minutes:
                            if this_hour and minute < start.minute:
                                continue
                            return datetime(year, month, day, hour, minute)
        raise ScheduleError(f"cron '{self.expr}': no matching minute after "
                            f"{after:%Y-%m-%d %H:%M} up to year {last_year}: "
                            "check the day-of-month, month and day-of-week fields")

    def describe(self) -> str:
        """Short human text such as "at 02:30 every day", or the expression itself."""
        all_minutes, all_hours = self.minutes == tuple(range(60)), self.hours == tuple(range(24))
        every_day = self.dom_star and self.dow_star and len(self.days) == 31
        if not every_day and not (self.dom_star or self.dow_star):
            return self.expr  # the OR rule is too subtle for a short sentence
        if self.months != tuple(range(1, 13)):
            return self.expr
        if len(self.minutes) == 1 and len(self.hours) == 1:
            at = f"at {self.hours[0]:02d}:{self.minutes[0]:02d}"
            if every_day:
                return f"{at} every day"
            if self.dom_star and len(self.days) == 31:
                return f"{at} on {', '.join(_DAY_NAMES[d] for d in self.weekdays)}"
            if self.dow_star and len(self.weekdays) == 7:
                return f"{at} on day {', '.join(map(str, self.days))} of the month"
            return self.expr
        if not (every_day and all_hours):
            return self.expr
        if all_minutes:
            return "every minute"
        if len(self.minutes) == 1:
            return f"at minute {self.minutes[0]} of every hour"
        step = self.minutes[1] - self.minutes[0]
        if self.minutes == tuple(range(0, 60, step)) and 60 % step == 0:
            return f"every {step} minutes"
        return self.expr

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        dom = day in self.days
        dow = (calendar.weekday(year, month, day) + 1) % 7 in self.weekdays  # Python: Monday = 0
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow


@functools.lru_cache(maxsize=512)
def _parse(expr: str) -> Cron:
    text = expr
    if text.startswith("@"):
        text = MACROS.get(text.lower(), "")
        if not text:
            raise ScheduleError(f"cron '{expr}': unknown macro: use one of {', '.join(MACROS)} "
                                "or five fields such as '0 2 * * *'")
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron '{expr}': expected 5 fields (minute hour day-of-month month "
                            f"day-of-week), got {len(fields)}: write e.g. '30 2 * * *' "
                            "or a macro such as @daily")
    values = [_parse_field(expr, text, spec) for text, spec in zip(fields, _FIELDS)]
    weekdays = tuple(sorted({0 if d == 7 else d for d in values[4]}))
    dom_star, dow_star = fields[2].startswith("*"), fields[4].startswith("*")
    cron = Cron(expr=expr, minutes=values[0], hours=values[1], days=values[2], months=values[3],
                weekdays=weekdays, dom_star=dom_star, dow_star=dow_star,
                hour_star=fields[1].startswith("*"))
    # With the OR rule the weekdays alone give matches; otherwise some allowed day
    # must exist in some allowed month (weekdays then come round within the 400-year cycle).
    exists = any(d <= _MAX_DAYS[m - 1] for m in cron.months for d in cron.days)
    if (dom_star or dow_star) and not exists:
        months = ",".join(_MONTHS[m - 1] for m in cron.months)
        raise ScheduleError(f"cron '{expr}': day-of-month {fields[2]} never occurs in month "
                            f"{months}, so it can never fire: pick days that exist in those months")
    return cron


def _parse_field(expr: str, text: str, spec: tuple) -> tuple[int, ...]:
    name, lo, hi, names, fix = spec
    out: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text) or int(step_text) == 0:
                raise ScheduleError(f"cron '{expr}': {name} step '{step_text}' in '{item}' is not "
                                    f"a positive whole number: {fix}")
            step = int(step_text)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first = _value(expr, name, a, lo, hi, names, fix)
            last = _value(expr, name, b, lo, hi, names, fix)
            if first > last:
                raise ScheduleError(f"cron '{expr}': {name} range {base} goes backwards: write the "
                                    f"smaller value first (e.g. {b}-{a}) or use a list")
        else:
            first = _value(expr, name, base, lo, hi, names, fix)
            last = hi if slash else first  # 'a/n' means a-max/n, as in Vixie cron
        out.update(range(first, last + 1, step))
    return tuple(sorted(out))


def _value(expr: str, name: str, text: str, lo: int, hi: int, names: dict | None, fix: str) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not _is_number(text):
        shown = f"'{text}'" if text else "'' (empty)"
        raise ScheduleError(f"cron '{expr}': {name} {shown} is not a number: {fix}")
    value = int(text)
    if not lo <= value <= hi:
        raise ScheduleError(f"cron '{expr}': {name} {value} is out of range {lo}-{hi}: {fix}")
    return value


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
