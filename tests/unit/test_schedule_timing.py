"""Schedule timing: fires in a zone across DST, intervals, catch-up plans, overlap decisions."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.exceptions import ScheduleError
from switchyard.schedule.cron import Cron
from switchyard.schedule.timing import (CATCH_UP_POLICIES, OVERLAP_POLICIES, FirePlan,
                                        OverlapDecision, When, check_policy, check_timezone,
                                        decide_overlap, plan_fires)


def Z(text: str) -> float:
    """Epoch seconds of a UTC wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def fires(cron: str, tz: str, start: str, end: str) -> list[float]:
    return When.of(cron=cron, tz=tz).between(Z(start), Z(end))


# -- validation ---------------------------------------------------------------


def test_check_timezone():
    assert check_timezone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert check_timezone("UTC").utcoffset(datetime(2026, 1, 1)) == timedelta(0)
    with pytest.raises(ScheduleError) as e:
        check_timezone("Mars/Olympus")
    assert str(e.value) == ("time zone 'Mars/Olympus' is unknown: use an IANA name such as "
                            "Europe/Paris or UTC, or 'local' for this machine's zone")
    with pytest.raises(ScheduleError, match="did you mean 'Europe/Paris'"):
        check_timezone("europe/paris")
    for bad in ["", "Europe", "../etc/passwd", "/etc/localtime", None, 5]:
        with pytest.raises(ScheduleError, match="time zone"):
            check_timezone(bad)


def test_local_zone_follows_tz(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    zone = check_timezone("local")
    assert zone.utcoffset(datetime(2026, 1, 15)) == timedelta(hours=-5)
    assert zone.utcoffset(datetime(2026, 7, 15)) == timedelta(hours=-4)
    w = When.of(cron="0 9 * * *", tz="local")
    assert w.next_after(Z("2026-07-01T00:00")) == Z("2026-07-01T13:00")


@pytest.mark.parametrize("kwargs,match", [
    ({}, "neither of cron and every"),
    ({"cron": "* * * * *", "every": 60}, "both of cron and every"),
    ({"cron": "61 * * * *"}, "minute 61"),
    ({"cron": "0 2 * * *", "tz": "Paris"}, "time zone 'Paris'"),
    ({"every": 0.5}, "every 0.5 is too small"),
    ({"every": True}, "every True is not a number"),
    ({"every": "60"}, "every '60' is not a number"),
    ({"every": math.nan}, "every nan"),
    ({"every": 60, "anchor": math.inf}, "anchor inf"),
])
def test_when_of_refuses_bad_input(kwargs, match):
    with pytest.raises(ScheduleError, match=match):
        When.of(**kwargs)


def test_when_round_trips_and_describes():
    a = When.of(cron=" 0 2 * * * ", tz="Europe/Paris")
    b = When.of(every=60, anchor=1_700_000_000)
    assert a.cron == "0 2 * * *" and b.every == 60.0
    for w in (a, b):
        assert When.from_dict(w.to_dict()) == w
    assert a.describe() == "cron '0 2 * * *' (Europe/Paris)"
    assert b.describe() == "every 60 s"
    assert When.of(every=90.5).describe() == "every 90.5 s"
    with pytest.raises(ScheduleError, match="unknown key 'cronn'"):
        When.from_dict({"cronn": "* * * * *"})
    with pytest.raises(ScheduleError, match="not a table"):
        When.from_dict(["* * * * *"])


# -- intervals ----------------------------------------------------------------


def test_interval_fires_relative_to_anchor():
    w = When.of(every=60, anchor=30)
    assert w.next_after(0) == 30
    assert w.next_after(30) == 90  # strictly after
    assert w.next_after(29.999) == 30
    assert w.next_after(-100) == -90  # the anchor sets the phase, fires exist on both sides
    assert w.between(0, 300) == [30, 90, 150, 210, 270]
    assert w.between(30, 90) == [90]  # (start, end]
    assert w.between(100, 100) == [] and w.between(100, 50) == []


def test_interval_with_fractional_period_stays_on_its_grid():
    w = When.of(every=1.1, anchor=0.3)
    got = w.between(1000, 1100)
    assert all(b > a for a, b in zip(got, got[1:]))
    assert all(abs((f - 0.3) / 1.1 - round((f - 0.3) / 1.1)) < 1e-9 for f in got)
    assert [w.next_after(f) for f in got[:-1]] == got[1:]


def test_interval_between_limit_keeps_the_newest():
    w = When.of(every=60)
    got = w.between(0, 10 * 365 * 86400, limit=3)
    end = 10 * 365 * 86400
    assert got == [end - 120, end - 60, end]


# -- cron in zones ---------------------------------------------------------


def test_utc_cron():
    assert fires("0 2 * * *", "UTC", "2026-05-01T00:00", "2026-05-03T00:00") == \
        [Z("2026-05-01T02:00"), Z("2026-05-02T02:00")]


def test_paris_spring_forward_fixed_hour_fires_once_after_the_gap():
    # 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 02:30 does not exist.
    assert fires("30 2 * * *", "Europe/Paris", "2026-03-27T12:00", "2026-03-31T00:00") == \
        [Z("2026-03-28T01:30"), Z("2026-03-29T01:00"), Z("2026-03-30T00:30")]
    # Every 2:xx wall time falls in the gap: still one fire.
    assert fires("*/15 2 * * *", "Europe/Paris", "2026-03-29T00:00", "2026-03-29T23:00") == \
        [Z("2026-03-29T01:00")]
    # The gap fire and the 03:00 fire are the same instant: one fire.
    assert fires("0 2,3 * * *", "Europe/Paris", "2026-03-29T00:00", "2026-03-29T23:00") == \
        [Z("2026-03-29T01:00")]


def test_paris_spring_forward_hourly_and_quarter_hourly_skip_the_missing_hour():
    assert fires("*/15 * * * *", "Europe/Paris", "2026-03-29T00:30", "2026-03-29T01:15") == \
        [Z("2026-03-29T00:45"), Z("2026-03-29T01:00"), Z("2026-03-29T01:15")]
    assert fires("30 * * * *", "Europe/Paris", "2026-03-29T00:00", "2026-03-29T02:00") == \
        [Z("2026-03-29T00:30"), Z("2026-03-29T01:30")]  # 01:30 CET, then 03:30 CEST
    # The local day 2026-03-29 has 23 hours.
    day = fires("0 * * * *", "Europe/Paris", "2026-03-28T22:59", "2026-03-29T21:59")
    assert len(day) == 23


def test_paris_fall_back_fixed_hour_fires_once_at_the_first_pass():
    # 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z); 02:30 happens at 00:30Z and 01:30Z.
    assert fires("30 2 * * *", "Europe/Paris", "2026-10-24T00:00", "2026-10-27T00:00") == \
        [Z("2026-10-24T00:30"), Z("2026-10-25T00:30"), Z("2026-10-26T01:30")]
    # Asked during the second pass, the repeated 02:30 does not fire again.
    w = When.of(cron="30 2 * * *", tz="Europe/Paris")
    assert w.next_after(Z("2026-10-25T01:10")) == Z("2026-10-26T01:30")


def test_paris_fall_back_hourly_fires_in_both_passes():
    # The local day 2026-10-25 has 25 hours.
    day = fires("0 * * * *", "Europe/Paris", "2026-10-24T21:59", "2026-10-25T22:59")
    assert len(day) == 25
    assert all(b - a == 3600 for a, b in zip(day, day[1:]))
    assert fires("*/15 * * * *", "Europe/Paris", "2026-10-25T00:40", "2026-10-25T01:20") == \
        [Z("2026-10-25T00:45"), Z("2026-10-25T01:00"), Z("2026-10-25T01:15")]
    w = When.of(cron="30 * * * *", tz="Europe/Paris")
    # The next fire is the second 02:30, a wall time before t's own (02:50 CEST).
    assert w.next_after(Z("2026-10-25T00:50")) == Z("2026-10-25T01:30")


def test_new_york_spring_forward():
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
    assert fires("30 2 * * *", "America/New_York", "2026-03-07T00:00", "2026-03-10T00:00") == \
        [Z("2026-03-07T07:30"), Z("2026-03-08T07:00"), Z("2026-03-09T06:30")]
    assert fires("*/30 * * * *", "America/New_York", "2026-03-08T06:00", "2026-03-08T07:30") == \
        [Z("2026-03-08T06:30"), Z("2026-03-08T07:00"), Z("2026-03-08T07:30")]


def test_new_york_fall_back():
    # 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z); 01:30 happens at 05:30Z and 06:30Z.
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T12:00", "2026-11-03T00:00") == \
        [Z("2026-11-01T05:30"), Z("2026-11-02T06:30")]
    assert fires("0 * * * *", "America/New_York", "2026-11-01T04:30", "2026-11-01T07:00") == \
        [Z("2026-11-01T05:00"), Z("2026-11-01T06:00"), Z("2026-11-01T07:00")]
    assert fires("*/15 * * * *", "America/New_York", "2026-11-01T05:50", "2026-11-01T06:20") == \
        [Z("2026-11-01T06:00"), Z("2026-11-01T06:15")]


def test_half_hour_dst_zone():
    # Lord Howe goes from +11 to +10:30 on 2026-04-05 at 15:00Z (02:00 -> 01:30).
    assert fires("0 * * * *", "Australia/Lord_Howe", "2026-04-04T13:59", "2026-04-04T17:00") == \
        [Z("2026-04-04T14:00"), Z("2026-04-04T15:30"), Z("2026-04-04T16:30")]


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
def test_daily_and_hourly_counts_over_a_year(tz):
    zone = ZoneInfo(tz)
    start = datetime(2026, 1, 1, tzinfo=zone).timestamp() - 1
    end = datetime(2027, 1, 1, tzinfo=zone).timestamp() - 1
    daily = When.of(cron="30 2 * * *", tz=tz).between(start, end, limit=10_000)
    assert len(daily) == 365
    assert len({datetime.fromtimestamp(f, zone).date() for f in daily}) == 365
    hourly = When.of(cron="0 * * * *", tz=tz).between(start, end, limit=10_000)
    if tz != "Australia/Lord_Howe":  # half-hour shifts make two 1.5 h / 0.5 h hours
        assert len(hourly) == 365 * 24  # by elapsed time: every real hour once


def test_fires_are_strictly_increasing_and_chain_with_next_after():
    for tz in ("Europe/Paris", "America/New_York"):
        for expr in ("*/15 * * * *", "30 2 * * *", "0 1-3 * * *", "*/20 */2 * * *"):
            got = fires(expr, tz, "2026-10-23T00:00", "2026-11-03T00:00")
            assert all(b > a for a, b in zip(got, got[1:]))
            w = When.of(cron=expr, tz=tz)
            assert [w.next_after(f) for f in got[:-1]] == got[1:]


def test_between_limit_returns_the_newest_fast_after_a_long_downtime():
    w = When.of(cron="* * * * *", tz="Europe/Paris")
    t0 = time.perf_counter()
    got = w.between(Z("2021-01-01T00:00"), Z("2026-01-01T00:00"))
    elapsed = time.perf_counter() - t0
    assert len(got) == 1000 and got[-1] == Z("2026-01-01T00:00") and got[0] == Z("2025-12-31T07:21")
    assert elapsed < 0.5
    yearly = When.of(cron="@yearly", tz="Europe/Paris").between(
        Z("2000-01-01T00:00"), Z("2026-06-01T00:00"), limit=3)
    assert yearly == [Z("2023-12-31T23:00"), Z("2024-12-31T23:00"), Z("2025-12-31T23:00")]


# -- properties ------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
# Instants near 2026's transitions, where the interesting cases are.
TRANSITIONS = [Z(t) for t in ("2026-03-29T01:00", "2026-10-25T01:00", "2026-03-08T07:00",
                                "2026-11-01T06:00", "2026-04-04T15:00", "2026-10-03T15:30",
                                "2026-04-05T03:00", "2026-09-06T04:00")]
crons = st.builds(lambda *f: " ".join(f),
                  st.sampled_from(["*", "0", "30", "*/15", "0,45", "1-4"]),
                  st.sampled_from(["*", "0", "1", "2", "3", "*/2", "1-3", "0,2,23"]),
                  st.sampled_from(["*", "*", "1-31", "4,5,25"]),
                  st.just("*"),
                  st.sampled_from(["*", "*", "0", "1-5"]))
# Fire at least every few days: the oracle walks minute by minute.
dense_crons = st.builds(lambda *f: " ".join(f),
                        st.sampled_from(["*", "0", "30", "*/15", "0,45", "1-4"]),
                        st.sampled_from(["*", "0", "1", "2", "3", "*/2", "1-3", "0,2,23"]),
                        st.just("*"), st.just("*"), st.sampled_from(["*", "1-5"]))
instants = st.builds(lambda base, d: base + d, st.sampled_from(TRANSITIONS),
                     st.floats(min_value=-2 * 86400, max_value=2 * 86400))


def _gap_shifted(zone, fire: float) -> bool:
    return (datetime.fromtimestamp(fire, zone).utcoffset()
            > datetime.fromtimestamp(fire - 1, zone).utcoffset())


@settings(max_examples=200, deadline=None)
@given(expr=crons, tz=st.sampled_from(ZONES), t=instants)
def test_next_after_property(expr, tz, t):
    w, zone = When.of(cron=expr, tz=tz), ZoneInfo(tz)
    nxt = w.next_after(t)
    assert nxt > t
    local = datetime.fromtimestamp(nxt, zone).replace(tzinfo=None)
    assert Cron.parse(expr).matches(local) or _gap_shifted(zone, nxt)
    assert w.between(t, nxt - 1) == []


def _oracle_fires(cron: Cron, zone, x: float) -> bool:
    """Whether the minute instant x fires, straight from the rules in timing's docstring."""
    aware = datetime.fromtimestamp(x, zone)
    wall = aware.replace(tzinfo=None)
    other = wall.replace(tzinfo=zone, fold=1 - aware.fold).timestamp()
    if cron.matches(wall) and (cron.hour_star or other == x or aware.fold == 0):
        return True
    before = datetime.fromtimestamp(x - 1, zone).utcoffset()
    if cron.hour_star or aware.utcoffset() <= before:
        return False
    gap_start = (datetime.fromtimestamp(x - 1, zone) + timedelta(seconds=1)).replace(tzinfo=None)
    return any(cron.matches(gap_start + timedelta(minutes=m))
               for m in range(int((aware.utcoffset() - before).total_seconds() // 60)))


@settings(max_examples=60, deadline=None)
@given(expr=dense_crons, tz=st.sampled_from(ZONES), t=instants)
def test_next_after_agrees_with_a_minute_by_minute_oracle(expr, tz, t):
    cron, zone = Cron.parse(expr), ZoneInfo(tz)
    nxt = When.of(cron=expr, tz=tz).next_after(t)
    assert nxt - t <= 4 * 86400
    x = math.floor(t / 60) * 60 + 60
    while x < nxt:
        assert not _oracle_fires(cron, zone, x), \
            f"missed fire at {datetime.fromtimestamp(x, timezone.utc)}"
        x += 60
    assert x == nxt and _oracle_fires(cron, zone, nxt)


# -- catch-up -----------------------------------------------------------------

NOW = 10_000.0


def test_plan_fires_on_time_is_always_launched():
    for policy in CATCH_UP_POLICIES:
        assert plan_fires([NOW - 5], NOW, policy, None, grace=60) == \
            FirePlan(launch=[NOW - 5], missed=[])
    # Exactly `grace` late is still on time.
    assert plan_fires([NOW - 60], NOW, "none", None, grace=60).launch == [NOW - 60]
    assert plan_fires([NOW + 5], NOW, "all", None, grace=60) == FirePlan([], [])  # not due yet


def test_plan_fires_none_launches_no_missed_time():
    plan = plan_fires([NOW - 3000, NOW - 2000, NOW - 1000], NOW, "none", None, grace=60)
    assert plan == FirePlan(launch=[], missed=[NOW - 3000, NOW - 2000, NOW - 1000])


def test_plan_fires_last_launches_the_newest_missed_time():
    plan = plan_fires([NOW - 1000, NOW - 3000, NOW - 2000], NOW, "last", None, grace=60)
    assert plan == FirePlan(launch=[NOW - 1000], missed=[NOW - 3000, NOW - 2000])


def test_plan_fires_last_adds_nothing_when_a_fire_is_on_time():
    plan = plan_fires([NOW - 2000, NOW - 1000, NOW - 10], NOW, "last", None, grace=60)
    assert plan == FirePlan(launch=[NOW - 10], missed=[NOW - 2000, NOW - 1000])


def test_plan_fires_all_launches_every_missed_time_plus_on_time():
    plan = plan_fires([NOW - 2000, NOW - 10, NOW - 1000, NOW - 2000], NOW, "all", None, grace=60)
    assert plan == FirePlan(launch=[NOW - 2000, NOW - 1000, NOW - 10], missed=[])


def test_plan_fires_window_bounds_catch_up():
    due = [NOW - 5000, NOW - 1500, NOW - 1000, NOW - 500]
    assert plan_fires(due, NOW, "all", 1500, grace=60) == \
        FirePlan(launch=[NOW - 1500, NOW - 1000, NOW - 500], missed=[NOW - 5000])
    assert plan_fires(due, NOW, "last", 1500, grace=60) == \
        FirePlan(launch=[NOW - 500], missed=[NOW - 5000, NOW - 1500, NOW - 1000])
    assert plan_fires(due, NOW, "last", 400, grace=60) == FirePlan(launch=[], missed=due)
    # Grace wins over the window: an on-time fire launches even with a tiny window.
    assert plan_fires([NOW - 30], NOW, "none", 10, grace=60).launch == [NOW - 30]


def test_plan_fires_zero_grace():
    assert plan_fires([NOW, NOW - 0.5], NOW, "none", None, grace=0) == \
        FirePlan(launch=[NOW], missed=[NOW - 0.5])


@pytest.mark.parametrize("kwargs,match", [
    ({"catch_up": "some"}, "catch_up policy 'some' is not allowed: use one of none, last, all"),
    ({"grace": -1}, "grace -1"),
    ({"window": 0}, "window 0"),
    ({"window": "1h"}, "window '1h'"),
])
def test_plan_fires_refuses_bad_settings(kwargs, match):
    args = {"due": [NOW], "now": NOW, "catch_up": "all", "window": None, "grace": 60} | kwargs
    with pytest.raises(ScheduleError, match=match):
        plan_fires(**args)


# -- overlap ------------------------------------------------------------------


def test_check_policy():
    assert check_policy("overlap", " Skip ") == "skip"
    assert check_policy("catch-up", "ALL") == "all"
    assert set(OVERLAP_POLICIES) == {"skip", "queue", "cancel"}
    allowed = "overlap policy 'wait' is not allowed: use one of skip, queue, cancel"
    with pytest.raises(ScheduleError, match=allowed):
        check_policy("overlap", "wait")
    with pytest.raises(ValueError):
        check_policy("colour", "red")


@pytest.mark.parametrize("policy", OVERLAP_POLICIES)
def test_decide_overlap_with_nothing_active_launches(policy):
    assert decide_overlap(policy, []) == OverlapDecision("launch")


def test_decide_overlap_policies():
    active = ["20261122-0001", "20261122-0002"]
    skip = decide_overlap("skip", active[:1])
    assert skip == OverlapDecision("skip", (), "skipped: 20261122-0001 is still running")
    queue = decide_overlap("queue", active)
    assert queue.action == "queue" and queue.cancel == () and "20261122-0002" in queue.reason
    cancel = decide_overlap("cancel", active)
    assert cancel.action == "launch" and cancel.cancel == tuple(active)
    assert "cancelling 20261122-0001, 20261122-0002" in cancel.reason
    with pytest.raises(ScheduleError, match="overlap policy"):
        decide_overlap("kill", active)
