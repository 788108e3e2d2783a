"""Completions.wait: the driver's wait for finished batches, with and without lingering."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

from switchyard.runs.executors import Completions


def _later(fut: cf.Future, seconds: float) -> None:
    threading.Timer(seconds, fut.set_result, args=(seconds,)).start()


def test_linger_gathers_what_finishes_within_it_and_not_what_comes_after():
    c = Completions()
    futs = [c.watch(cf.Future()) for _ in range(4)]
    for f, at in zip(futs, (0.02, 0.05, 0.09, 0.6)):
        _later(f, at)
    t0 = time.monotonic()
    got = c.wait(set(futs), timeout=1.0, linger=0.15)
    # the first at 0.02 s, the next two within 0.15 s of it; the fourth is far later
    assert got == futs[:3]
    assert 0.15 <= time.monotonic() - t0 < 0.5
    assert c.wait(set(futs[3:]), timeout=1.0) == futs[3:]


def test_no_linger_returns_at_the_first_and_all_done_ends_a_linger_at_once():
    c = Completions()
    futs = [c.watch(cf.Future()) for _ in range(2)]
    _later(futs[0], 0.02)
    _later(futs[1], 0.3)
    t0 = time.monotonic()
    assert c.wait(set(futs), timeout=1.0) == futs[:1]  # no linger: the first one alone
    assert time.monotonic() - t0 < 0.25
    # both futures of the next wait finish early: the 5 s linger does not wait for more
    more = [c.watch(cf.Future()) for _ in range(2)]
    for f in more:
        _later(f, 0.02)
    t0 = time.monotonic()
    assert sorted(map(id, c.wait(set(more), timeout=1.0, linger=5.0))) == sorted(map(id, more))
    assert time.monotonic() - t0 < 1.0
    # a finished future the caller no longer waits for (cancelled, forgotten) is dropped
    assert c.wait(set(more), timeout=0.5) == []
    assert futs[1].done()


def test_nothing_finishes_within_the_timeout():
    c = Completions()
    fut = c.watch(cf.Future())
    t0 = time.monotonic()
    assert c.wait({fut}, timeout=0.1, linger=1.0) == []
    assert time.monotonic() - t0 < 0.5
