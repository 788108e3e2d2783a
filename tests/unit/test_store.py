"""The run store on real SQLite files: lifecycle, recording, leases, sweep, concurrency."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from switchyard.exceptions import InvalidTransition, LeaseHeld, NotFound, StoreError
from switchyard.runs.state import COMMANDS, EVENTS, TRANSITIONS, BatchStatus, Status
import switchyard.runs.schema as schema_module
from switchyard.runs.store import SCHEMA_VERSION, Batch, Orchestration, RunStore

T0 = 1_800_000_000.0  # injected clock: tests never sleep


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def make(store: RunStore, n: int = 4, now: float = T0, app: str = "flight", kind: str = "app",
         attempts_limit: int = 3) -> str:
    return store.create_orchestration(
        kind=kind, app=app, mode=5, args={"files": 3}, workers={"127.0.0.1": 2},
        scheduler="127.0.0.1:8786", plan_fingerprint="fp1", run_dir="/tmp/run",
        batches=[{"name": f"part-{i}", "weight": i + 1.0, "items": [1] * i,
                  "planned_worker": f"w{i % 2}"} for i in range(n)],
        options={"note": "x"}, attempts_limit=attempts_limit, now=now,
    )


def running(store: RunStore, n: int = 4, owner: str = "drv-1", now: float = T0) -> str:
    oid = make(store, n, now=now)
    store.acquire_lease(oid, owner, ttl=30, pid=123, now=now)
    store.command(oid, "start", now=now)
    return oid


def statuses(store: RunStore, oid: str) -> list[str]:
    return [b.status.value for b in store.batches(oid)]


# -- schema and files ------------------------------------------------------------------------


def test_default_path_is_in_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path / "home"))
    with RunStore() as s:
        assert s.path == tmp_path / "home" / "switchyard.db"
        assert s.path.exists()


def test_pragmas_and_schema_version(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    conn.close()
    c = store._connection()
    assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.schema_version() == SCHEMA_VERSION == 3


def test_initialize_schema_is_idempotent_and_keeps_data(store):
    oid = make(store)
    store.initialize_schema()
    with RunStore(store.path) as again:
        again.initialize_schema()
        assert again.get(oid).total_batches == 4
        assert again.schema_version() == 3


def test_a_version_1_store_is_migrated_in_place_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    v1 = (schema_module.SCHEMA_SQL.replace(",\n    request TEXT NOT NULL DEFAULT '{}'", "")
          .replace("    payload BLOB,\n", "").replace("    error_signature TEXT,\n", ""))
    for statement in v1.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO orchestrations (id, kind, app, status, created_at) "
                 "VALUES ('o1', 'app', 'flight', 'completed', 1.0)")
    conn.commit()
    assert "request" not in {r[1] for r in conn.execute("PRAGMA table_info(orchestrations)")}
    conn.close()
    with RunStore(path) as store:
        assert store.schema_version() == 3
        assert store.get("o1").status.value == "completed" and store.get("o1").request == {}
        oid = store.create_orchestration(kind="app", app="a", mode=0, args={}, workers={}, scheduler=None,
                                         plan_fingerprint=None, run_dir=None, request={"app": "a"},
                                         batches=[{"name": "p", "payload": b"\x80items"}])
        assert store.get(oid).request == {"app": "a"}
        assert store.payloads(oid) == [(0, "p", 1.0, b"\x80items", None)]


def test_a_newer_schema_is_refused_with_a_clear_error(store):
    with store.transaction() as c:
        c.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StoreError, match=r"schema version 4 is newer than this Switchyard's \(3\)"):
        RunStore(store.path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    bad = tmp_path / "switchyard.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="switchyard.db"):
        RunStore(bad)


def test_a_write_lock_held_too_long_gives_a_clear_error(tmp_path):
    with RunStore(tmp_path / "s.db", busy_timeout=0.2) as s:
        oid = make(s)
        other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. a sqlite3 shell left in a transaction
        try:
            with pytest.raises(StoreError, match="locked for more than 0.2 s"):
                s.command(oid, "cancel")
            assert s.get(oid).status is Status.PENDING  # reads still work under WAL
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert s.command(oid, "cancel").status is Status.CANCELLED


def test_failed_transaction_rolls_back(store):
    oid = make(store)
    with pytest.raises(RuntimeError):
        with store.transaction() as c:
            c.execute("UPDATE orchestrations SET app = 'other' WHERE id = ?", (oid,))
            raise RuntimeError("boom")
    assert store.get(oid).app == "flight"


# -- creating and reading --------------------------------------------------------------------


def test_create_records_a_pending_orchestration_and_its_batches(store):
    oid = make(store)
    assert len(oid) == len("20261122-180512-ab12cd") and oid[8] == "-" and oid[15] == "-"
    o = store.get(oid)
    assert o.status is Status.PENDING
    assert (o.kind, o.app, o.mode, o.args, o.workers) == ("app", "flight", 5, {"files": 3},
                                                          {"127.0.0.1": 2})
    assert (o.total_batches, o.completed_batches, o.progress, o.created_at) == (4, 0, 0.0, T0)
    assert o.options == {"note": "x"} and o.attempts_limit == 3
    bs = store.batches(oid)
    assert [(b.idx, b.name, b.weight, b.items, b.planned_worker) for b in bs] == [
        (0, "part-0", 1.0, 0, "w0"), (1, "part-1", 2.0, 1, "w1"),
        (2, "part-2", 3.0, 2, "w0"), (3, "part-3", 4.0, 3, "w1")]
    assert store.batch_counts(oid) == {"pending": 4, "running": 0, "completed": 0, "failed": 0,
                                       "dead": 0, "cancelled": 0, "skipped": 0}
    assert [e["kind"] for e in store.events(oid)] == ["created"]


def test_an_id_drawn_beforehand_names_the_orchestration(store):
    oid = store.new_id(now=T0)
    assert oid.startswith("20270115-080000-")  # UTC, sortable
    run_dir = f"/runs/{oid}"
    assert store.create_orchestration(
        kind="app", app="flight", mode=0, args={"path": Path("/data")}, workers={},
        scheduler=None, plan_fingerprint=None, run_dir=run_dir, batches=[], oid=oid) == oid
    o = store.get(oid)
    assert (o.run_dir, o.args, o.total_batches, o.progress) == (run_dir, {"path": "/data"}, 0, 0.0)
    with pytest.raises(ValueError, match=oid):
        store.create_orchestration(
            kind="app", app="flight", mode=0, args={}, workers={}, scheduler=None,
            plan_fingerprint=None, run_dir=None, batches=[], oid=oid)


def test_records_round_trip_through_json(store):
    oid = running(store)
    store.record_results(oid, [{"idx": 0, "status": "completed", "output_path": "/o/0"}],
                         now=T0 + 1)
    o = store.get(oid)
    d = json.loads(json.dumps(o.to_dict()))
    assert (d["status"], d["progress"], d["commands"]) == ("running", 0.25, ["pause", "cancel"])
    assert Orchestration.from_dict(d) == o
    b = store.batches(oid)[0]
    bd = json.loads(json.dumps(b.to_dict()))
    assert bd["status"] == "completed" and bd["output_path"] == "/o/0"
    assert Batch.from_dict(bd) == b


def test_unknown_ids_raise_not_found_naming_the_id(store):
    for call in (lambda: store.get("nope-1"), lambda: store.command("nope-1", "cancel"),
                 lambda: store.batches("nope-1"), lambda: store.events("nope-1"),
                 lambda: store.acquire_lease("nope-1", "d", 5),
                 lambda: store.set_output("nope-1", "o", 1),
                 lambda: store.record_results("nope-1", [{"idx": 0, "status": "completed"}])):
        with pytest.raises(NotFound, match="nope-1"):
            call()


def test_list_is_newest_first_and_filters(store):
    a = make(store, now=T0, app="flight")
    b = make(store, now=T0 + 10, app="mandel")
    c = make(store, now=T0 + 20, app="flight", kind="pipeline")
    store.command(b, "cancel", now=T0 + 30)
    assert [o.id for o in store.list()] == [c, b, a]
    assert [o.id for o in store.list(app="flight")] == [c, a]
    assert [o.id for o in store.list(kind="pipeline")] == [c]
    assert [o.id for o in store.list(status="cancelled")] == [b]
    assert [o.id for o in store.list(status=[Status.PENDING, "cancelled"], limit=2)] == [c, b]
    assert store.list(status=Status.RUNNING) == []


# -- lifecycle -------------------------------------------------------------------------------


def test_full_run_lifecycle(store):
    oid = make(store)
    store.acquire_lease(oid, "drv", ttl=30, pid=4242, now=T0 + 1)
    o = store.command(oid, "start", now=T0 + 2)
    assert (o.status, o.started_at, o.driver_pid, o.lease_owner) == (
        Status.RUNNING, T0 + 2, 4242, "drv")
    store.batches_started(oid, [0, 1], {0: "wX"}, now=T0 + 3)
    assert statuses(store, oid) == ["running", "running", "pending", "pending"]
    assert [b.worker for b in store.batches(oid)][:2] == ["wX", "w1"]  # default: planned worker
    n = store.record_results(oid, [
        {"idx": 0, "status": "completed", "worker": "wX", "ended_at": T0 + 4,
         "output_path": "/o/0"},
        {"idx": 1, "status": "completed", "ended_at": T0 + 5, "output_path": "/o/1"}])
    assert n == 2
    store.batches_started(oid, [2, 3], now=T0 + 6)
    store.record_results(oid, [{"idx": 2, "status": "completed", "ended_at": None},
                               {"idx": 3, "status": "completed"}], now=T0 + 7)
    assert [b.ended_at for b in store.batches(oid)] == [T0 + 4, T0 + 5, T0 + 7, T0 + 7]
    assert store.get(oid).progress == 1.0
    store.set_output(oid, "/out/result.parquet", 6.5)
    o = store.command(oid, "complete", now=T0 + 8)
    assert (o.status, o.ended_at, o.output, o.seconds) == (Status.COMPLETED, T0 + 8,
                                                            "/out/result.parquet", 6.5)
    assert store.batches(oid)[0].seconds == pytest.approx(1.0)
    assert store.release_lease(oid, "drv", now=T0 + 9)
    assert store.get(oid).lease_owner is None
    kinds = [e["kind"] for e in store.events(oid)]
    assert kinds == ["created", "lease", "start", "complete", "lease"]
    assert store.events(oid)[3]["message"] == "running -> completed"
    for command in (*COMMANDS, *EVENTS):  # completed accepts nothing
        with pytest.raises(InvalidTransition, match="is completed"):
            store.command(oid, command)


def test_refused_command_changes_nothing(store):
    oid = make(store)
    with pytest.raises(InvalidTransition, match=f"orchestration {oid} is pending: cannot pause it"):
        store.command(oid, "pause")
    assert store.get(oid).status is Status.PENDING
    assert [e["kind"] for e in store.events(oid)] == ["created"]


def test_pause_returns_running_batches_to_pending_and_resume_continues(store):
    oid = running(store)
    store.batches_started(oid, [0, 1, 2], now=T0 + 1)
    store.record_results(oid, [{"idx": 0, "status": "completed"}], now=T0 + 2)
    assert store.command(oid, "pause", now=T0 + 3).status is Status.PAUSING
    assert store.heartbeat(oid, "drv-1", 30, now=T0 + 4) is Status.PAUSING  # the driver sees it
    store.record_results(oid, [{"idx": 1, "status": "completed"}], now=T0 + 5)
    o = store.command(oid, "paused", now=T0 + 6)
    assert o.status is Status.PAUSED and o.ended_at is None
    assert statuses(store, oid) == ["completed", "completed", "pending", "pending"]
    assert store.command(oid, "resume", now=T0 + 7).status is Status.PENDING
    assert [b.idx for b in store.pending_batches(oid)] == [2, 3]


def test_cancel_without_a_driver_cancels_directly(store):
    oid = make(store)
    o = store.command(oid, "cancel", error="not needed", now=T0 + 1)
    assert (o.status, o.ended_at, o.error) == (Status.CANCELLED, T0 + 1, "not needed")
    assert set(statuses(store, oid)) == {"cancelled"}
    with pytest.raises(InvalidTransition, match="is cancelled: cannot resume"):
        store.command(oid, "resume")


def test_cancel_a_running_one_goes_through_cancelling(store):
    oid = running(store)
    store.batches_started(oid, [0, 1, 2], now=T0 + 1)
    store.record_results(oid, [{"idx": 0, "status": "completed"},
                               {"idx": 2, "status": "failed", "next_attempt_at": T0 + 60},
                               {"idx": 3, "status": "dead"}], now=T0 + 2)
    assert store.command(oid, "cancel", now=T0 + 3).status is Status.CANCELLING
    assert store.heartbeat(oid, "drv-1", 30, now=T0 + 4) is Status.CANCELLING
    assert store.command(oid, "cancelled", now=T0 + 5).status is Status.CANCELLED
    # dead letters stay on their list; a failed batch waiting for a retry is cancelled
    assert statuses(store, oid) == ["completed", "cancelled", "cancelled", "dead"]
    assert store.pending_batches(oid, now=T0 + 100) == []


def test_retry_requeues_only_batches_that_are_not_completed(store):
    oid = running(store, n=7)
    store.batches_started(oid, range(7), now=T0 + 1)
    store.record_results(oid, [
        {"idx": 0, "status": "completed", "output_path": "/o/0"},
        {"idx": 1, "status": "failed", "error": "e1", "next_attempt_at": T0 + 100},
        {"idx": 2, "status": "dead", "error": "e2"},
        {"idx": 3, "status": "cancelled"},
        {"idx": 4, "status": "skipped"},
        {"idx": 6, "status": "completed", "output_path": "/o/6"}], now=T0 + 2)
    store.record_results(oid, [{"idx": 2, "status": "dead", "error": "e2"}], now=T0 + 3)
    # idx 5 stays running: its worker died with the driver
    failed = store.command(oid, "fail", error="2 batches failed", now=T0 + 4)
    assert failed.error == "2 batches failed"
    o = store.command(oid, "retry", now=T0 + 5)
    assert (o.status, o.error, o.ended_at) == (Status.PENDING, None, None)
    bs = store.batches(oid)
    assert [b.status.value for b in bs] == ["completed", "pending", "pending", "pending", "skipped",
                                            "pending", "completed"]
    assert [b.attempts for b in bs] == [1, 1, 0, 0, 0, 0, 1]  # dead: fresh budget; failed: kept
    assert (bs[0].output_path, bs[6].output_path) == ("/o/0", "/o/6")
    assert bs[1].next_attempt_at is None  # due now
    assert o.completed_batches == 2
    assert [b.idx for b in store.pending_batches(oid)] == [1, 2, 3, 5]


# -- recording results -----------------------------------------------------------------------


def test_recording_a_completion_twice_keeps_one(store):
    oid = running(store)
    store.batches_started(oid, [0], now=T0 + 1)
    first = [{"idx": 0, "status": "completed", "worker": "w0", "ended_at": T0 + 2,
              "output_path": "/a"}]
    assert store.record_results(oid, first) == 1
    again = [{"idx": 0, "status": "completed", "worker": "w9", "ended_at": T0 + 9,
              "output_path": "/b"}]
    assert store.record_results(oid, again) == 0
    store.record_results(oid, [{"idx": 0, "status": "failed", "error": "late"}])
    store.batches_started(oid, [0], now=T0 + 10)
    b = store.batches(oid)[0]
    assert (b.status, b.attempts, b.worker, b.ended_at, b.output_path, b.error) == (
        BatchStatus.COMPLETED, 1, "w0", T0 + 2, "/a", None)
    assert store.get(oid).completed_batches == 1


def test_results_are_recorded_all_or_nothing(store):
    oid = running(store)
    with pytest.raises(NotFound, match=f"orchestration '{oid}' has no batch 99"):
        store.record_results(oid, [{"idx": 0, "status": "completed"},
                                   {"idx": 99, "status": "completed"}])
    assert store.batches(oid)[0].status is BatchStatus.PENDING
    assert store.get(oid).completed_batches == 0
    with pytest.raises(NotFound, match="no batch 7"):
        store.batches_started(oid, [1, 7])
    assert store.batches(oid)[1].status is BatchStatus.PENDING


def test_failed_batches_wait_for_their_next_attempt(store):
    oid = running(store)
    store.batches_started(oid, [0, 1], now=T0)
    store.record_results(oid, [
        {"idx": 0, "status": "failed", "error": "boom", "next_attempt_at": T0 + 10},
        {"idx": 1, "status": "failed", "error": "boom"}], now=T0 + 1)
    assert [b.idx for b in store.pending_batches(oid, now=T0 + 5)] == [1, 2, 3]
    assert [b.idx for b in store.pending_batches(oid, now=T0 + 10)] == [0, 1, 2, 3]
    assert store.batches(oid)[0].attempts == 1
    store.record_results(oid, [{"idx": 0, "status": "failed", "error": "boom again"}])
    b = store.batches(oid)[0]
    assert (b.attempts, b.error) == (2, "boom again")


def test_dead_letters_and_requeue(store):
    oid = running(store)
    store.record_results(oid, [{"idx": i, "status": "dead", "error": f"e{i}"} for i in (1, 2, 3)],
                         now=T0 + 1)
    assert [b.idx for b in store.dead_letters(oid)] == [1, 2, 3]
    assert store.dead_letters(oid)[0].error == "e1"
    assert "batch 1 is dead after 1 attempts: e1" in [e["message"] for e in store.events(oid)]
    assert store.requeue_dead(oid, [3, 0], now=T0 + 2) == [3]
    assert [b.idx for b in store.dead_letters(oid)] == [1, 2]
    b3 = store.batches(oid)[3]
    assert (b3.status, b3.attempts) == (BatchStatus.PENDING, 0)
    assert store.requeue_dead(oid, now=T0 + 3) == [1, 2]
    assert store.dead_letters(oid) == []
    assert store.events(oid)[-1]["message"] == "2 dead batches back to pending: 1, 2"


def test_owner_checked_writes_refuse_a_driver_that_lost_its_lease(store):
    oid = running(store, owner="old")
    store.acquire_lease(oid, "new", ttl=30, now=T0 + 31)
    with pytest.raises(LeaseHeld, match="driven by new"):
        store.record_results(oid, [{"idx": 0, "status": "completed"}], owner="old")
    with pytest.raises(LeaseHeld):
        store.batches_started(oid, [0], owner="old")
    assert store.record_results(oid, [{"idx": 0, "status": "completed"}], owner="new") == 1


# -- leases, sweep, queue --------------------------------------------------------------------


def test_lease_is_exclusive_across_two_store_objects(tmp_path):
    with RunStore(tmp_path / "s.db") as a, RunStore(tmp_path / "s.db") as b:
        oid = make(a)
        a.acquire_lease(oid, "driver-a", ttl=10, now=T0)
        with pytest.raises(LeaseHeld, match=f"{oid} is already driven by driver-a"):
            b.acquire_lease(oid, "driver-b", ttl=10, now=T0 + 9.9)
        a.acquire_lease(oid, "driver-a", ttl=10, now=T0 + 5)  # re-entrant for its owner
        b.acquire_lease(oid, "driver-b", ttl=10, now=T0 + 15.0)  # expired: taken over
        with pytest.raises(LeaseHeld, match="driven by driver-b"):
            a.heartbeat(oid, "driver-a", 10, now=T0 + 16)
        assert not a.release_lease(oid, "driver-a")
        assert b.heartbeat(oid, "driver-b", 10, now=T0 + 16) is Status.PENDING
        assert b.get(oid).lease_expires == T0 + 26
        assert b.release_lease(oid, "driver-b")
        with pytest.raises(LeaseHeld, match="nobody"):
            b.heartbeat(oid, "driver-b", 10)
        a.acquire_lease(oid, "driver-c", ttl=10, now=T0 + 17)  # released: free at once
        assert "taken by driver-b from driver-a (expired)" in [e["message"] for e in a.events(oid)]


def test_sweep_marks_runs_whose_driver_vanished(store):
    run = running(store, owner="d1", now=T0)  # lease until T0 + 30
    canc = running(store, owner="d2", now=T0)
    store.command(canc, "cancel", now=T0 + 1)
    paused = running(store, owner="d3", now=T0)
    store.command(paused, "pause", now=T0 + 1)
    store.command(paused, "paused", now=T0 + 2)
    store.batches_started(run, [0, 1], now=T0 + 1)
    store.heartbeat(run, "d1", 30, now=T0 + 20)  # now until T0 + 50
    assert store.sweep(now=T0 + 29) == []
    assert store.sweep(now=T0 + 30) == [canc]
    assert store.get(canc).status is Status.CANCELLED
    assert store.sweep(now=T0 + 49.9) == []
    assert store.sweep(now=T0 + 50) == [run]
    o = store.get(run)
    assert (o.status, o.ended_at) == (Status.INTERRUPTED, T0 + 50)
    assert "driver d1 pid 123 stopped heartbeating" in o.error
    assert statuses(store, run) == ["pending"] * 4  # abandoned attempts are not counted
    assert store.get(paused).status is Status.PAUSED
    assert store.sweep(now=T0 + 1000) == []
    # a late driver's heartbeat tells it to stop
    assert store.heartbeat(run, "d1", 30, now=T0 + 51) is Status.INTERRUPTED
    assert store.command(run, "resume", now=T0 + 52).status is Status.PENDING


def test_sweep_catches_an_active_run_that_never_took_a_lease(store):
    oid = make(store, now=T0)
    store.command(oid, "start", now=T0)
    assert store.sweep(now=T0 + 59) == []
    assert store.sweep(now=T0 + 60) == [oid]
    assert "never took a lease" in store.get(oid).error


def test_claim_pending_respects_the_running_limit(store):
    busy = running(store, now=T0)
    old, mid, new = (make(store, now=T0 + i) for i in (1, 2, 3))
    assert store.claim_pending(3, owner="q", ttl=60, now=T0 + 10) == [old, mid]
    assert store.claim_pending(3, owner="q", ttl=60, now=T0 + 11) == []  # claimed ones count
    store.acquire_lease(old, "q", ttl=30, pid=1, now=T0 + 12)  # the driver takes over the claim
    with pytest.raises(LeaseHeld):
        store.acquire_lease(mid, "someone-else", ttl=30, now=T0 + 12)
    store.command(busy, "complete", now=T0 + 13)
    assert store.claim_pending(3, owner="q", now=T0 + 14) == [new]
    # a claim whose driver never came expires and the orchestration can be claimed again
    assert store.claim_pending(2, owner="q", now=T0 + 100) == [old, mid]
    assert store.claim_pending(0, now=T0) == []


# -- concurrency -----------------------------------------------------------------------------


def test_threads_record_results_while_heartbeating(tmp_path):
    """Two store objects on one file (two 'processes'), four threads writing at once."""
    path = tmp_path / "s.db"
    driver, ui = RunStore(path), RunStore(path)
    oid = running(driver, n=600, owner="drv")
    other = running(ui, n=300, owner="drv2")
    errors: list[BaseException] = []
    stop = threading.Event()
    seen_progress: list[float] = []
    beats = [0]

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
        return run

    def record(store, oid, n, owner):
        for start in range(0, n, 10):
            idxs = list(range(start, start + 10))
            store.batches_started(oid, idxs, owner=owner)
            results = [{"idx": i, "status": "completed", "worker": "w"} for i in idxs]
            results.append({"idx": idxs[0], "status": "completed"})  # a duplicate in the group
            store.record_results(oid, results, owner=owner)

    def beat():
        while not stop.is_set():
            assert driver.heartbeat(oid, "drv", 30) is Status.RUNNING
            assert ui.heartbeat(other, "drv2", 30) is Status.RUNNING
            beats[0] += 1

    def read():
        while not stop.is_set():
            seen_progress.append(ui.get(oid).progress)
            ui.batch_counts(oid)
            ui.list()

    writers = [threading.Thread(target=guard(lambda: record(driver, oid, 600, "drv"))),
               threading.Thread(target=guard(lambda: record(ui, other, 300, "drv2")))]
    helpers = [threading.Thread(target=guard(beat)), threading.Thread(target=guard(read))]
    for t in writers + helpers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in helpers:
        t.join(60)
    assert errors == []
    assert beats[0] > 0 and len(seen_progress) > 0  # they really ran alongside the writers
    assert seen_progress == sorted(seen_progress)
    for oid_, n in ((oid, 600), (other, 300)):
        o = driver.get(oid_)
        assert o.completed_batches == n == driver.batch_counts(oid_)["completed"]
        assert {b.attempts for b in driver.batches(oid_)} == {1}
    driver.close()
    ui.close()


_RACER = textwrap.dedent("""
    import sys
    from switchyard.exceptions import LeaseHeld
    from switchyard.runs.store import RunStore
    path, oid, owner, extra = sys.argv[1:]
    s = RunStore(path)
    try:
        s.acquire_lease(oid, owner, ttl=600)
        won = 1
    except LeaseHeld:
        won = 0
    n = 0
    for start in range(0, 200, 5):  # everyone also writes to its own orchestration
        idxs = list(range(start, start + 5))
        s.batches_started(extra, idxs)
        n += s.record_results(extra, [{"idx": i, "status": "completed"} for i in idxs])
    print(won, n)
""")


def test_separate_processes_never_share_a_lease(tmp_path):
    path = tmp_path / "s.db"
    with RunStore(path) as s:
        oid = make(s)
        extras = [make(s, n=200) for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), oid, f"p{k}", extras[k]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    results = [tuple(map(int, out.split())) for out, _ in outs]
    assert sorted(won for won, _ in results) == [0, 0, 1]
    assert [n for _, n in results] == [200, 200, 200]
    with RunStore(path) as s:
        assert s.get(oid).lease_owner == f"p{[w for w, _ in results].index(1)}"
        assert all(s.get(e).completed_batches == 200 for e in extras)


# -- random command sequences against the store -----------------------------------------------


class StoreLifecycle(RuleBasedStateMachine):
    """Random commands, events and batch results: the store follows the table exactly."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = RunStore(Path(self.dir.name) / "s.db")
        self.clock = T0

    @initialize()
    def create(self):
        self.oid = make(self.store, n=5)
        self.model = Status.PENDING
        self.was_terminal = False

    @rule(command=st.sampled_from([*COMMANDS, *EVENTS]))
    def send(self, command):
        self.clock += 1
        expected = TRANSITIONS[self.model].get(command)
        try:
            o = self.store.command(self.oid, command, now=self.clock)
        except InvalidTransition as e:
            assert expected is None and e.current == self.model.value
            return
        assert expected is not None and o.status is expected
        assert not self.was_terminal
        self.model = expected
        self.was_terminal = expected.is_terminal
        counts = self.store.batch_counts(self.oid)
        if expected is Status.PENDING:  # resume/retry requeued everything not completed
            assert counts["running"] == counts["failed"] == 0
            assert counts["dead"] == counts["cancelled"] == 0
        if expected in (Status.PAUSED, Status.INTERRUPTED):
            assert counts["running"] == 0
        if expected is Status.CANCELLED:
            assert counts["pending"] == counts["running"] == counts["failed"] == 0

    @rule(idxs=st.lists(st.integers(0, 4), min_size=1, max_size=3),
          status=st.sampled_from(["completed", "failed", "dead", "cancelled"]))
    def results(self, idxs, status):
        self.clock += 1
        self.store.batches_started(self.oid, idxs, now=self.clock)
        self.store.record_results(self.oid, [{"idx": i, "status": status} for i in idxs],
                                  now=self.clock)

    @rule()
    def sweep(self):
        self.clock += 100
        swept = self.store.sweep(now=self.clock, orphan_grace=50)
        if self.model.is_active:
            assert swept == [self.oid]
            self.model = TRANSITIONS[self.model]["interrupt"]
            self.was_terminal = self.model.is_terminal
        else:
            assert swept == []

    @invariant()
    def consistent(self):
        o = self.store.get(self.oid)
        assert o.status is self.model
        counts = self.store.batch_counts(self.oid)
        assert o.completed_batches == counts["completed"]
        assert sum(counts.values()) == 5

    def teardown(self):
        self.store.close()
        self.dir.cleanup()


StoreLifecycle.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_store_follows_the_table = StoreLifecycle.TestCase
