"""Lifecycle control, the queue of pending orchestrations and the clean-up after a dead driver,
on a real store (no driver processes: a queued orchestration stays queued here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from switchyard.exceptions import InvalidTransition, LeaseHeld, SwitchyardError
from switchyard.runs import control, launcher
from switchyard.runs.state import TRANSITIONS, Status
from switchyard.runs.store import RunStore

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "home" / "switchyard.db")
    yield s
    s.close()


def make(store: RunStore, n: int = 3, now: float = T0, app: str = "montecarlo") -> str:
    return store.create_orchestration(
        kind="app", app=app, mode=4, args={}, workers={"127.0.0.1": 2}, scheduler=None,
        plan_fingerprint=None, run_dir=str(store.path.parent / "runs" / f"r{now}"),
        batches=[{"name": f"b{i}"} for i in range(n)], options={"apps_dir": "/nonexistent/apps"},
        now=now)


def running(store: RunStore, now: float = T0, owner: str = "d") -> str:
    oid = make(store, now=now)
    store.acquire_lease(oid, owner, ttl=30, now=now)
    store.command(oid, "start", now=now)
    return oid


# -- store: queue, owner-checked events, settings ----------------------------------------------

def test_claim_next_takes_the_oldest_unclaimed_one_while_a_slot_is_free(store):
    busy = running(store, now=T0)
    old, new = make(store, now=T0 + 1), make(store, now=T0 + 2)
    assert store.queue_state(now=T0 + 3) == (1, 2)
    assert store.claim_next(2, "drv-a", ttl=60, now=T0 + 3) == old
    assert store.claim_next(2, "drv-b", ttl=60, now=T0 + 3) is None  # the claim holds a slot
    assert store.queue_state(now=T0 + 3) == (2, 1)
    store.command(busy, "complete", now=T0 + 4)
    assert store.claim_next(2, "drv-b", ttl=60, now=T0 + 5) == new
    assert store.get(new).lease_owner == "drv-b"
    assert store.claim_next(5, "drv-c", now=T0 + 6) is None  # nothing left unclaimed


def test_a_claim_whose_driver_never_came_is_reported_by_the_sweep(store):
    oid = make(store, now=T0)
    assert store.claim_next(1, "drv-a", ttl=60, now=T0) == oid
    assert store.sweep(now=T0 + 59) == []
    assert store.sweep(now=T0 + 60) == [oid]
    o = store.get(oid)
    assert o.status is Status.INTERRUPTED
    assert "driver drv-a never started it" in o.error and "driver.out" in o.error
    # resume frees the old claim, so the queue can hand it to a new driver
    assert store.command(oid, "resume", now=T0 + 61).lease_owner is None
    assert store.claim_next(1, "drv-b", now=T0 + 62) == oid


def test_driver_events_are_refused_to_a_driver_that_lost_the_lease(store):
    oid = running(store, owner="old")
    store.acquire_lease(oid, "new", ttl=30, now=T0 + 31)
    with pytest.raises(LeaseHeld, match="driven by new"):
        store.command(oid, "complete", owner="old")
    assert store.command(oid, "complete", owner="new").status is Status.COMPLETED


def test_settings_are_shared_through_the_store(store, tmp_path, monkeypatch):
    monkeypatch.delenv(launcher.MAX_RUNNING_ENV, raising=False)
    assert launcher.max_running(store) == launcher.DEFAULT_MAX_RUNNING
    monkeypatch.setenv(launcher.MAX_RUNNING_ENV, "3")
    assert launcher.max_running(store) == 3
    other = RunStore(store.path)  # another process's view
    control.set_max_running(other, 2)
    assert launcher.max_running(store) == 2  # the store's setting wins over the environment
    control.set_max_running(store, None)
    assert launcher.max_running(other) == 3
    monkeypatch.setenv(launcher.MAX_RUNNING_ENV, "many")
    with pytest.raises(SwitchyardError, match="'many', not a whole number"):
        launcher.max_running(store)
    with pytest.raises(ValueError):
        control.set_max_running(store, 0)


# -- control -----------------------------------------------------------------------------------

def test_summary_has_the_keys_of_run_json_plus_progress_and_counts(store):
    oid = running(store)
    store.record_results(oid, [{"idx": 0, "status": "completed"}])
    d = control.summary(store, oid)
    assert {"orchestration_id", "status", "batches", "completed", "seconds", "output"} <= set(d)
    assert (d["status"], d["batches"], d["completed"], d["progress"]) == ("running", 3, 1, 0.3333)
    assert d["counts"]["completed"] == 1 and d["counts"]["pending"] == 2
    assert d["commands"] == ["pause", "cancel"]
    rows = control.listing(store, status=["running"])
    assert [r["orchestration_id"] for r in rows] == [oid]
    assert control.listing(store, status=["paused"]) == []


def test_pause_and_cancel_of_a_running_one_go_through_its_driver(store):
    oid = running(store, now=time.time())
    store.heartbeat(oid, "d", 30)
    assert control.pause(store, oid).status is Status.PAUSING
    assert control.cancel(store, oid).status is Status.CANCELLING
    with pytest.raises(InvalidTransition, match="is cancelling: cannot resume"):
        control.resume(store, oid)


def test_resume_queues_when_every_slot_is_taken(store):
    control.set_max_running(store, 1)
    other = running(store, now=time.time())
    oid = running(store, now=time.time(), owner="d2")
    store.heartbeat(oid, "d2", 30)
    store.heartbeat(other, "d", 30)
    control.pause(store, oid)
    store.command(oid, "paused", owner="d2")
    o = control.resume(store, oid)  # the slot is taken by `other`: no driver started
    assert (o.status, o.lease_owner) == (Status.PENDING, None)
    assert control.summary(store, oid)["queued"] is True


def test_a_driver_that_cannot_start_leaves_a_clear_error(store):
    oid = make(store, now=time.time())  # its apps folder and environment do not exist
    started = launcher.pump(store)
    assert started == {}
    o = store.get(oid)
    assert o.status is Status.INTERRUPTED
    assert "could not start its driver" in o.error and "install the app's environment" in o.error


def test_reprocess_refuses_an_orchestration_that_cannot_restart(store):
    oid = running(store)
    store.command(oid, "complete")
    with pytest.raises(InvalidTransition, match="is completed: cannot reprocess"):
        control.reprocess(store, oid)
    with pytest.raises(InvalidTransition, match="cannot bogus"):
        control.apply(store, oid, "bogus")


def test_a_vanished_driver_is_swept_on_read(store):
    oid = running(store, now=time.time() - 100)  # lease long expired
    assert control.sweep(store) == [oid]
    assert store.get(oid).status is Status.INTERRUPTED
    assert control.sweep(store, min_interval=60) == []  # throttled


# -- the clean-up of a dead driver's local cluster ----------------------------------------------

def sleeper_with_child() -> subprocess.Popen:
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def children_of(pid: int) -> list[int]:
    import psutil

    deadline = time.time() + 10
    while time.time() < deadline:
        kids = psutil.Process(pid).children()
        if kids:
            return [k.pid for k in kids]
        time.sleep(0.05)
    raise AssertionError("child did not start")


def test_reap_kills_the_recorded_processes_and_their_children(tmp_path):
    import psutil

    proc = sleeper_with_child()
    try:
        kids = children_of(proc.pid)
        launcher.record_cluster(tmp_path, {"scheduler": proc.pid}, "tcp://127.0.0.1:1")
        assert (tmp_path / launcher.CLUSTER_FILE).is_file()
        killed = launcher.reap_cluster(tmp_path)  # recorded by this process: not a live other driver
        assert sorted(killed) == sorted([proc.pid, *kids])
        proc.wait(5)  # (already reaped by the reaper's wait: the exit code is lost)
        assert not psutil.pid_exists(proc.pid)
        assert not any(psutil.pid_exists(k) and psutil.Process(k).status() != psutil.STATUS_ZOMBIE
                       for k in kids)
        assert not (tmp_path / launcher.CLUSTER_FILE).exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


def test_reap_spares_a_live_driver_a_recycled_pid_and_another_host(tmp_path):
    import json

    proc = sleeper_with_child()
    try:
        children_of(proc.pid)
        launcher.record_cluster(tmp_path, {"scheduler": proc.pid}, None)
        path = tmp_path / launcher.CLUSTER_FILE
        doc = json.loads(path.read_text())
        for change in ({"driver_pid": proc.pid},  # the recording driver still runs
                       {"host": "elsewhere"},
                       {"processes": {"scheduler": {"pid": proc.pid, "started": 1.0}}}):
            path.write_text(json.dumps({**doc, **change}))
            launcher.reap_cluster(tmp_path)
            assert proc.poll() is None, change
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(5)


# -- property: random commands, claims, driver events and sweeps on several orchestrations -----

LIMIT = 2


class Queue(RuleBasedStateMachine):
    """The queue never runs more than LIMIT at once and every status change follows the table."""

    def __init__(self):
        super().__init__()
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        self.store = RunStore(os.path.join(self.dir.name, "s.db"))
        self.clock = T0
        self.ids: list[str] = []
        self.model: dict[str, Status] = {}
        self.owner: dict[str, str] = {}

    @initialize()
    def create(self):
        for _ in range(4):
            self.clock += 1
            oid = make(self.store, now=self.clock)
            self.ids.append(oid)
            self.model[oid] = Status.PENDING

    @rule()
    def claim_and_start(self):
        self.clock += 1
        owner = f"drv-{self.clock}"
        oid = self.store.claim_next(LIMIT, owner, ttl=30, now=self.clock)
        if oid is None:
            return
        self.store.acquire_lease(oid, owner, ttl=30, now=self.clock)
        self.store.command(oid, "start", owner=owner, now=self.clock)
        self.model[oid] = Status.RUNNING
        self.owner[oid] = owner

    @rule(i=st.integers(0, 3), command=st.sampled_from(["pause", "resume", "cancel", "retry"]))
    def operator(self, i, command):
        oid = self.ids[i]
        self.clock += 1
        expected = TRANSITIONS[self.model[oid]].get(command)
        try:
            o = self.store.command(oid, command, now=self.clock)
        except InvalidTransition as e:
            assert expected is None and e.current == self.model[oid].value
            return
        assert o.status is expected
        self.model[oid] = expected

    @precondition(lambda self: any(s.is_active for s in self.model.values()))
    @rule(i=st.integers(0, 3), event=st.sampled_from(["paused", "complete", "fail", "cancelled"]))
    def driver(self, i, event):
        oid = self.ids[i]
        self.clock += 1
        expected = TRANSITIONS[self.model[oid]].get(event)
        if expected is None or oid not in self.owner:
            return
        try:
            self.store.command(oid, event, owner=self.owner[oid], now=self.clock)
        except LeaseHeld:
            return  # this driver was replaced: its events are refused
        self.model[oid] = expected

    @rule()
    def heartbeats_stop(self):
        self.clock += 100
        swept = set(self.store.sweep(now=self.clock))
        for oid, status in self.model.items():
            o = self.store.get(oid)
            if oid in swept:
                self.model[oid] = TRANSITIONS[status]["interrupt"]
            assert o.status is self.model[oid]

    @invariant()
    def within_the_limit_and_the_table(self):
        busy, _ = self.store.queue_state(now=self.clock)
        active = sum(1 for s in self.model.values() if s.is_active)
        assert active <= busy <= LIMIT
        for oid in self.ids:
            assert self.store.status(oid) is self.model[oid]

    def teardown(self):
        self.store.close()
        self.dir.cleanup()


Queue.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
test_the_queue_keeps_its_limit_under_random_commands = Queue.TestCase
