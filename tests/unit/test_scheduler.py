"""The scheduler's tick with an injected clock: cron across DST, overlap policies, catch-up
after downtime, file triggers with debounce, conditions, pause/resume.

Runs are recorded in a real SQLite run store by a launcher that creates the orchestration
row the real launch would (pending, with the schedule as its origin), so overlap sees
exactly what a real scheduler sees; tests drive those rows' statuses as drivers would.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from switchyard.exceptions import NotFound, ScheduleError
from switchyard.runs.store import RunStore
from switchyard.schedule.book import Book
from switchyard.schedule.model import Watch, new_schedule
from switchyard.schedule.scheduler import Scheduler
from switchyard.schedule.watch import initial_state, scan


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


class Launches:
    """Records each launch and creates the pending orchestration a real launch creates."""

    def __init__(self, store: RunStore):
        self.store = store
        self.calls: list[dict] = []

    def __call__(self, schedule, args, origin) -> str:
        oid = self.store.create_orchestration(
            kind="app", app=schedule.app, mode=0, args=args, workers={}, scheduler=None,
            plan_fingerprint=None, run_dir=None, batches=[{"name": "p0"}], options={"origin": origin})
        self.calls.append({"oid": oid, "args": args, "origin": origin})
        return oid

    @property
    def due(self) -> list[float]:
        return [c["origin"]["due_at"] for c in self.calls]


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def make(store, now, **kw):
    s = new_schedule("flight", now=now, **kw)
    Book(store).add(s)
    return s


def finish(store, oid, how="complete"):
    store.command(oid, "start")
    store.command(oid, how)


# -- cron across DST ---------------------------------------------------------------------------

def test_daily_cron_fires_at_the_right_instants_across_spring_forward(store):
    # Europe/Paris moves from 02:00 CET to 03:00 CEST on 2026-03-29: 02:30 does not exist that day.
    t0 = utc(2026, 3, 27, 12)
    make(store, t0, cron="30 2 * * *", tz="Europe/Paris")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    t = t0
    while t < utc(2026, 3, 31, 12):
        t += 300  # a tick every five minutes
        sched.tick(t)
        for c in launches.calls:
            if store.status(c["oid"]).value == "pending":
                finish(store, c["oid"])
    assert launches.due == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),   # the gap: once, at 03:00 CEST, the first instant after it
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_cron_fires_once_in_the_repeated_hour_of_fall_back(store):
    # 2026-10-25 in Europe/Paris: 02:00-03:00 happens twice (CEST, then CET).
    t0 = utc(2026, 10, 23, 12)
    make(store, t0, cron="30 2 * * *", tz="Europe/Paris", overlap="queue")
    hourly = make(store, t0, cron="0 * * * *", tz="Europe/Paris", overlap="queue")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    t = t0
    while t < utc(2026, 10, 26, 12):
        t += 60
        sched.tick(t)
        for c in launches.calls:
            if store.status(c["oid"]).value == "pending":
                finish(store, c["oid"])
    daily = [c["origin"]["due_at"] for c in launches.calls if c["origin"]["schedule"] != hourly.id]
    assert daily == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    by_hour = [c["origin"]["due_at"] for c in launches.calls if c["origin"]["schedule"] == hourly.id]
    # elapsed-time schedule: every real hour, 25 of them on the local day of the change
    change_day = [d for d in by_hour if utc(2026, 10, 24, 22) <= d < utc(2026, 10, 25, 23)]
    assert len(change_day) == 25
    assert all(b - a == 3600 for a, b in zip(by_hour, by_hour[1:]))


# -- overlap policies ----------------------------------------------------------------------------

T0 = utc(2026, 11, 22, 9)


def test_overlap_skip_records_a_skipped_trigger_while_the_last_run_runs(store):
    s = make(store, T0, every=60, overlap="skip")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    first = sched.tick(T0 + 60)
    assert [t["outcome"] for t in first] == ["launched"]
    store.command(launches.calls[0]["oid"], "start")
    second = sched.tick(T0 + 120)
    assert [t["outcome"] for t in second] == ["skipped"]
    assert launches.calls[0]["oid"] in second[0]["message"]
    store.command(launches.calls[0]["oid"], "complete")
    third = sched.tick(T0 + 180)
    assert [t["outcome"] for t in third] == ["launched"]
    assert len(launches.calls) == 2
    assert [t["outcome"] for t in Book(store).triggers(s.id)] == ["launched", "skipped", "launched"]


def test_overlap_queue_launches_the_queued_fire_when_the_run_ends(store):
    s = make(store, T0, every=60, overlap="queue")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    sched.tick(T0 + 60)
    store.command(launches.calls[0]["oid"], "start")
    assert [t["outcome"] for t in sched.tick(T0 + 120)] == ["queued"]
    assert sched.tick(T0 + 150) == []  # still running: stays queued
    assert len(launches.calls) == 1
    store.command(launches.calls[0]["oid"], "complete")
    out = sched.tick(T0 + 151)
    assert [t["outcome"] for t in out] == ["launched"]
    assert launches.calls[1]["origin"]["due_at"] == T0 + 120  # the queued fire, not a new one
    assert Book(store).queued(s.id) == []


def test_overlap_cancel_cancels_the_running_run_then_launches(store):
    make(store, T0, every=60, overlap="cancel")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    sched.tick(T0 + 60)
    first = launches.calls[0]["oid"]
    store.command(first, "start")
    out = sched.tick(T0 + 120)
    assert [t["outcome"] for t in out] == ["launched"]
    assert first in out[0]["message"]
    assert store.status(first).value == "cancelling"  # its driver is asked to stop
    assert len(launches.calls) == 2


# -- catch-up after downtime -------------------------------------------------------------------

@pytest.mark.parametrize("policy,window,expected", [
    ("none", None, []),
    ("last", None, [T0 + 600]),
    ("all", None, [T0 + 60 * k for k in range(1, 11)]),
    ("all", 200, [T0 + 480, T0 + 540, T0 + 600]),
])
def test_catch_up_after_downtime_follows_the_policy(store, policy, window, expected):
    s = make(store, T0, every=60, overlap="queue" if policy == "all" else "skip", catch_up=policy,
             catch_up_window=window)
    launches = Launches(store)
    sched = Scheduler(store, launch=launches, grace=30)
    now = T0 + 600 + 45  # the scheduler was down for ten fires; the last one is 45 s late
    out = sched.tick(now)
    fired = sorted(t["due_at"] for t in out if t["outcome"] in ("launched", "queued"))
    assert fired == expected
    missed = sorted(t["due_at"] for t in out if t["outcome"] == "missed")
    assert missed == sorted(set(T0 + 60 * k for k in range(1, 11)) - set(expected))
    assert Book(store).get(s.id).next_fire_at == T0 + 660


def test_an_on_time_fire_is_launched_whatever_the_policy(store):
    make(store, T0, every=60, catch_up="none")
    launches = Launches(store)
    assert [t["outcome"] for t in Scheduler(store, launch=launches).tick(T0 + 61)] == ["launched"]


# -- pause, resume, delete -------------------------------------------------------------------------

def test_a_paused_schedule_does_not_fire_and_resume_does_not_replay(store):
    s = make(store, T0, every=60)
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    book = Book(store)
    book.set_paused(s.id, True, now=T0 + 10)
    assert sched.tick(T0 + 300) == []
    book.set_paused(s.id, False, now=T0 + 310)
    assert book.get(s.id).next_fire_at == T0 + 360
    assert sched.tick(T0 + 320) == []
    assert [t["due_at"] for t in sched.tick(T0 + 361)] == [T0 + 360]
    book.delete(s.id)
    with pytest.raises(NotFound, match=s.id):
        book.get(s.id)


# -- file triggers ---------------------------------------------------------------------------------

def write(folder: Path, name: str, size: int = 100) -> None:
    (folder / name).write_bytes(b"x" * size)


def test_file_trigger_launches_one_run_per_debounce_window_with_exactly_the_new_files(store, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write(inbox, "old.csv")  # there before the schedule: never fires
    s = new_schedule("flight", now=T0, watch=Watch(folder=str(inbox), debounce=5.0))
    book = Book(store)
    book.add(s, state=initial_state(scan(inbox)))
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    assert sched.tick(T0 + 1) == []
    write(inbox, "a.csv")
    write(inbox, ".b.csv.tmp")  # a writer's temp file: ignored until renamed
    assert sched.tick(T0 + 2) == []
    os.rename(inbox / ".b.csv.tmp", inbox / "b.csv")
    assert sched.tick(T0 + 4) == []   # the set changed: the quiet clock restarts
    assert sched.tick(T0 + 8.9) == []  # 4.9 s quiet
    out = sched.tick(T0 + 9)
    assert [t["outcome"] for t in out] == ["launched"]
    assert out[0]["files"] == ["a.csv", "b.csv"]
    assert launches.calls[0]["args"]["inputs"] == [str((inbox / n).resolve()) for n in ("a.csv", "b.csv")]
    finish(store, launches.calls[0]["oid"])
    assert sched.tick(T0 + 20) == []  # nothing new
    write(inbox, "c.csv")
    sched.tick(T0 + 21)
    out = sched.tick(T0 + 26)
    assert [t["files"] for t in out] == [["c.csv"]]
    assert len(launches.calls) == 2


def test_file_trigger_condition_on_the_new_data(store, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    s = new_schedule("flight", now=T0, watch=Watch(folder=str(inbox), debounce=1.0),
                     condition="n_files >= 2 and total_bytes > 150")
    Book(store).add(s, state=initial_state(scan(inbox)))
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    write(inbox, "one.csv", 100)
    sched.tick(T0 + 1)
    out = sched.tick(T0 + 3)
    assert [t["outcome"] for t in out] == ["condition false"]
    assert launches.calls == []
    write(inbox, "two.csv", 100)
    write(inbox, "three.csv", 100)
    sched.tick(T0 + 4)
    out = sched.tick(T0 + 6)
    assert [(t["outcome"], t["files"]) for t in out] == [("launched", ["three.csv", "two.csv"])]


def test_condition_on_the_last_runs_status(store):
    s = make(store, T0, every=60, condition="last_status != 'failed'")
    launches = Launches(store)
    sched = Scheduler(store, launch=launches)
    sched.tick(T0 + 60)
    finish(store, launches.calls[0]["oid"], "fail")
    out = sched.tick(T0 + 120)
    assert [t["outcome"] for t in out] == ["condition false"]
    assert Book(store).last_run(s.id)["status"] == "failed"


def test_a_launch_that_raises_is_recorded_as_failed_and_the_next_fire_still_runs(store):
    make(store, T0, every=60)
    calls = []

    def broken(schedule, args, origin):
        calls.append(origin["due_at"])
        raise ScheduleError("app 'flight': arg 'files': must be >= 1")

    sched = Scheduler(store, launch=broken)
    out = sched.tick(T0 + 60)
    assert [(t["outcome"], t["message"]) for t in out] == [("failed", "app 'flight': arg 'files': must be >= 1")]
    assert [t["outcome"] for t in sched.tick(T0 + 120)] == ["failed"]
    assert calls == [T0 + 60, T0 + 120]


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    ({}, "exactly one of --every SECONDS, --cron EXPR or --watch"),
    ({"every": 60, "cron": "* * * * *"}, "got --every, --cron"),
    ({"every": 60, "overlap": "later"}, "later"),
    ({"every": 60, "catch_up": "some"}, "some"),
    ({"cron": "0 25 * * *"}, "25"),
    ({"cron": "0 2 * * *", "tz": "Mars/Olympus"}, "Mars/Olympus"),
    ({"every": 60, "condition": "__import__('os')"}, "condition"),
    ({"every": 60, "condition": "n_files > 1"}, "only exist for file triggers"),
    ({"every": 60, "condition": "bogus == 1"}, "unknown name 'bogus'"),
    ({"every": 60, "catch_up_window": -5}, "--catch-up-window"),
])
def test_bad_schedules_are_refused_with_the_value_named(kw, match):
    with pytest.raises(ScheduleError, match=match.replace("(", r"\(").replace("*", r"\*")):
        new_schedule("flight", now=T0, **kw)


def test_one_scheduler_per_store(store):
    book = Book(store)
    assert book.take_lease("a", ttl=10, now=T0) is None
    holder = book.take_lease("b", ttl=10, now=T0 + 5)
    assert holder["owner"] == "a"
    assert book.take_lease("b", ttl=10, now=T0 + 11) is None  # a's lease expired
    assert book.lease(now=T0 + 12)["owner"] == "b"
