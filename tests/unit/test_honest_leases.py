"""Leases that do not lie: a driver behind another process's write lock, a scheduler whose
launch is slow. Real SQLite files, real processes for the lock holder and the sweeper."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from switchyard.runs.state import Status

from .test_driver import Bench, in_thread

LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    c.execute("COMMIT")
""")

SWEEPER = textwrap.dedent("""
    import sys, time
    from switchyard.runs.store import RunStore
    store = RunStore(sys.argv[1])  # (opening it writes: before the lock is taken)
    print("ready", flush=True)
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        for oid in store.sweep():
            print("swept", oid, flush=True)
        time.sleep(0.2)
""")


def test_a_driver_behind_an_8_s_write_lock_is_not_declared_gone_by_a_sweeping_process(tmp_path):
    bench = Bench(tmp_path)
    oid = bench.create(batches=5, delay=0.5)
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.get(oid).completed_batches >= 1)
    db = str(bench.store.path)
    sweeper = subprocess.Popen([sys.executable, "-c", SWEEPER, db, "9.5"], stdout=subprocess.PIPE, text=True)
    assert sweeper.stdout.readline().strip() == "ready"
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, db, "8"], stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline().strip() == "locked"
    locked_at = time.time()
    assert locker.wait(20) == 0
    held = time.time() - locked_at
    swept = sweeper.communicate(timeout=30)[0]  # it swept every 0.2 s during the lock and after it
    t.join(60)
    assert held >= 7.9  # the lock really lasted (the driver's batch records waited behind it)
    assert "swept" not in swept, swept
    assert box["result"] is Status.COMPLETED
    assert not [e for e in bench.store.events(oid) if "interrupt" in e["kind"] + e["message"]]
    assert bench.store.get(oid).completed_batches == 5
    bench.store.close()


def test_a_slow_launch_keeps_the_scheduler_lease_and_no_fire_launches_twice(tmp_path):
    """The lease (1 s here, 15 s in production) outlives a launch 5 times as long (20 s in
    the issue): a second scheduler is refused meanwhile and afterwards, the fire ran once."""
    import pytest

    from switchyard.exceptions import ScheduleError
    from switchyard.runs.store import RunStore
    from switchyard.schedule.book import Book
    from switchyard.schedule.model import new_schedule
    from switchyard.schedule.scheduler import Scheduler, serve

    store = RunStore(tmp_path / "switchyard.db")
    Book(store).add(new_schedule("flight", now=time.time() - 61, every=60))
    launches, launching = [], threading.Event()

    def slow_launch(schedule, args, origin):
        launching.set()
        time.sleep(5.0)
        launches.append(origin["due_at"])
        return store.create_orchestration(kind="app", app="flight", mode=0, args={}, workers={}, scheduler=None,
                                          plan_fingerprint=None, run_dir=None, batches=[{"name": "p0"}])

    stop = threading.Event()
    first = threading.Thread(target=serve, args=(store,), kwargs=dict(
        tick=0.1, stop=stop, scheduler=Scheduler(store, launch=slow_launch), alerts=False, lease_ttl=1.0))
    first.start()
    try:
        assert launching.wait(10)
        other = RunStore(tmp_path / "switchyard.db")
        for _ in range(3):  # across the launch: 1.5 s, 3 s and 4.5 s into it
            time.sleep(1.5)
            ends = threading.Event()  # (were it to start, it stops after 0.3 s: the test fails)
            threading.Timer(0.3, ends.set).start()
            with pytest.raises(ScheduleError, match="a scheduler already runs"):
                serve(other, tick=0.1, stop=ends,
                      scheduler=Scheduler(other, launch=slow_launch), alerts=False, lease_ttl=1.0)
        deadline = time.time() + 10
        while not launches and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a further tick of the first scheduler: nothing due again
    finally:
        stop.set()
        first.join(15)
    assert len(launches) == 1
    assert not first.is_alive()
    other.close()
    store.close()
