"""Circuit breakers per step kind, with injected time (no sleeping)."""

from __future__ import annotations

from switchyard.pipeline.breaker import Breakers
from switchyard.pipeline.model import BreakerConfig


def make(tmp_path, **kw):
    return Breakers(tmp_path / "breakers.json", "app", BreakerConfig(**{"threshold": 3, "window": 60,
                                                                        "cooldown": 30, **kw}))


def test_opens_after_n_consecutive_failures_within_the_window(tmp_path):
    b = make(tmp_path)
    assert b.record("etl", False, now=100) == "closed"
    assert b.record("etl", False, now=110) == "closed"
    assert b.record("etl", False, now=120) == "open"
    ok, why = b.allow("etl", now=125)
    assert not ok and "circuit breaker for step kind 'etl' is open" in why and "25 s more" in why
    assert b.allow("other", now=125) == (True, "")  # per kind


def test_failures_outside_the_window_or_a_success_reset_the_count(tmp_path):
    b = make(tmp_path)
    b.record("etl", False, now=0)
    b.record("etl", False, now=10)
    assert b.record("etl", False, now=100) == "closed"  # the first two fell out of the 60 s window
    b.record("etl", False, now=101)
    b.record("etl", True, now=102)
    assert b.record("etl", False, now=103) == "closed"
    assert b.state("etl", now=103)["failures"] == 1


def test_half_open_after_cooldown_then_closes_on_success_or_reopens_on_failure(tmp_path):
    b = make(tmp_path, threshold=1)
    assert b.record("k", False, now=0) == "open"
    assert b.state("k", now=29)["state"] == "open"
    assert b.state("k", now=31)["state"] == "half-open"
    assert b.allow("k", now=31)[0]
    assert b.record("k", False, now=31) == "open"  # the trial failed
    assert not b.allow("k", now=40)[0]
    assert b.record("k", True, now=62) == "closed"


def test_state_is_persisted_and_shared(tmp_path):
    make(tmp_path, threshold=1).record("k", False, now=0)
    assert make(tmp_path, threshold=1).state("k", now=1)["state"] == "open"
    (tmp_path / "breakers.json").write_text("not json")
    assert make(tmp_path).state("k", now=1)["state"] == "closed"  # a damaged file starts closed


def _try(path, barrier, out):
    barrier.wait()
    b = Breakers(path, "app", BreakerConfig(threshold=1, window=60, cooldown=30))
    out.put(b.allow("k", now=31))


def test_half_open_admits_exactly_one_trial_among_concurrent_ready_steps(tmp_path):
    import multiprocessing as mp

    make(tmp_path, threshold=1).record("k", False, now=0)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_try, args=(tmp_path / "breakers.json", barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    got = [out.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(ok for ok, _ in got) == 1
    assert all("half-open: one trial step runs" in why for ok, why in got if not ok)
    b = make(tmp_path, threshold=1)
    assert not b.allow("k", now=40)[0]  # the trial still runs: nobody else
    assert b.allow("k", now=62)[0]  # its outcome never came within a cool-down: a new trial
    assert b.record("k", True, now=63) == "closed" and b.allow("k", now=64) == (True, "")
