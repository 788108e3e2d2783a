"""alerts.check over a real store file and a real workspace: slow runs, the service health probe
(read-only, from state.json and heartbeat files), file delivery, retries, and the cost of a quiet pass."""

from __future__ import annotations

import json
import time

import pytest

from switchyard.alerts import check, edits, list_alerts, records, send_test
from switchyard.alerts.probe import service_health
from switchyard.runs.store import RunStore
from switchyard.workspace import atomic_write_json

from ..conftest import make_tiny_app

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def run(store, app="flight", kind="app", start=T0, end=None, status="completed", error=None, ttl=10_000):
    oid = store.create_orchestration(kind=kind, app=app, mode=4, args={}, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=str(store.path.parent / "runs" / "x"),
                                     batches=[{"name": "b0"}], now=start - 1)
    store.acquire_lease(oid, "drv", ttl=ttl, now=start)
    store.command(oid, "start", now=start)
    if end is not None:
        store.command(oid, "complete" if status == "completed" else "fail", error=error, now=end)
    return oid


def log_lines(home):
    path = home / "alerts.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_slow_running_run_alerts_once_into_the_log_file(store, tmp_path):
    for i, seconds in enumerate((10, 12, 11)):
        run(store, start=T0 + i * 100, end=T0 + i * 100 + seconds)
    slow = run(store, start=T0 + 1000)
    assert check(store, home=tmp_path, now=T0 + 1030) == []  # 30 s < 3 x 11 s
    [a] = check(store, home=tmp_path, now=T0 + 1040)
    assert (a["rule"], a["subject"], a["new"], a["delivered"]) == ("slow", slow, True, True)
    assert a["details"]["usual_seconds"] == 11.0 and a["details"]["seconds"] == 40.0
    assert check(store, home=tmp_path, now=T0 + 1100) == []
    store.command(slow, "complete", now=T0 + 1200)
    assert check(store, home=tmp_path, now=T0 + 1201) == []  # ended: still the same condition
    [line] = log_lines(tmp_path)
    assert line["id"] == a["id"] and line["rule"] == "slow" and line["links"]["log"].endswith("runs/x/run.log")


def test_runs_that_ended_before_the_lookback_do_not_flood_a_new_setup(store, tmp_path):
    run(store, start=T0, end=T0 + 5, status="failed", error="old")
    assert check(store, home=tmp_path, now=T0 + records.LOOKBACK + 60) == []
    [a] = check(store, home=tmp_path.parent / "other-home", now=T0 + 60) or [None]
    assert a is not None and a["rule"] == "failure"  # the same run within the lookback does alert


def test_failed_deliveries_are_retried_after_a_delay_up_to_three_attempts(store, tmp_path):
    (tmp_path / "blocked").mkdir()  # a folder where the file channel wants a file: appending fails
    edits.add_channel({"name": "bad", "kind": "file", "path": "blocked"}, tmp_path)
    run(store, start=T0, end=T0 + 1, status="failed", error="boom")
    [a] = check(store, home=tmp_path, now=T0 + 2)
    by = {d["channel"]: d for d in a["deliveries"]}
    assert by["log"]["delivered"] and by["log"]["attempts"] == 1
    bad = by["bad"]
    assert not bad["delivered"] and bad["state"] == "retrying" and bad["attempts"] == 1
    assert "IsADirectoryError" in bad["error"] and bad["next_attempt_at"] == T0 + 2 + records.RETRY_DELAYS[0]
    assert check(store, home=tmp_path, now=T0 + 3) == []  # not due yet
    [again] = check(store, home=tmp_path, now=T0 + 2 + records.RETRY_DELAYS[0])
    assert again["new"] is False
    assert {d["channel"]: d["attempts"] for d in again["deliveries"]} == {"log": 1, "bad": 2}
    [last] = check(store, home=tmp_path, now=T0 + 1000)
    bad = {d["channel"]: d for d in last["deliveries"]}["bad"]
    assert (bad["attempts"], bad["state"], bad["next_attempt_at"]) == (3, "failed", None)
    assert check(store, home=tmp_path, now=T0 + 10_000) == []  # left failed
    assert len(log_lines(tmp_path)) == 1  # the working channel got it exactly once


def test_a_retry_through_a_removed_channel_is_recorded_failed(store, tmp_path):
    (tmp_path / "blocked").mkdir()
    edits.add_channel({"name": "bad", "kind": "file", "path": "blocked"}, tmp_path)
    run(store, start=T0, end=T0 + 1, status="failed", error="boom")
    check(store, home=tmp_path, now=T0 + 2)
    edits.remove_channel("bad", tmp_path)
    [a] = check(store, home=tmp_path, now=T0 + 100)
    bad = {d["channel"]: d for d in a["deliveries"]}["bad"]
    assert bad["state"] == "failed" and "no longer in" in bad["error"]


def test_deliver_false_records_and_a_later_check_delivers(store, tmp_path):
    run(store, start=T0, end=T0 + 1, status="failed", error="boom")
    [a] = check(store, home=tmp_path, now=T0 + 2, deliver=False)
    assert [d["state"] for d in a["deliveries"]] == ["pending"] and log_lines(tmp_path) == []
    [b] = check(store, home=tmp_path, now=T0 + 3)
    assert b["id"] == a["id"] and b["new"] is False and b["delivered"]
    assert [x["id"] for x in log_lines(tmp_path)] == [a["id"]]


def test_channel_app_filter_and_list_by_app(store, tmp_path):
    edits.add_channel({"name": "flight-only", "kind": "file", "path": "flight.log", "apps": ["flight"]}, tmp_path)
    run(store, app="flight", start=T0, end=T0 + 1, status="failed", error="a")
    run(store, app="montecarlo", start=T0, end=T0 + 1, status="failed", error="b")
    check(store, home=tmp_path, now=T0 + 2)
    rows = list_alerts(store)
    assert {a["app"]: [d["channel"] for d in a["deliveries"]] for a in rows} == {
        "flight": ["flight-only", "log"], "montecarlo": ["log"]}
    assert [a["app"] for a in list_alerts(store, app="montecarlo")] == ["montecarlo"]
    assert len(list_alerts(store, limit=1)) == 1


def test_send_test_records_a_test_alert_tried_once(store, tmp_path):
    a = send_test("log", store=store, home=tmp_path, now=T0)
    assert a["rule"] == "test" and a["severity"] == "info" and a["delivered"]
    assert log_lines(tmp_path)[0]["rule"] == "test"
    (tmp_path / "blocked").mkdir()
    edits.add_channel({"name": "bad", "kind": "file", "path": "blocked"}, tmp_path)
    b = send_test("bad", store=store, home=tmp_path, now=T0 + 1)
    assert b["deliveries"][0]["state"] == "failed" and b["deliveries"][0]["attempts"] == 1
    assert check(store, home=tmp_path, now=T0 + 1000) == []  # never retried


# -- service health gate -----------------------------------------------------------------------------

def service(tmp_path, beats: dict[str, float | None], restarts: int = 0, allow_idle: bool = False):
    """A started service of 'tinyapp' as the service leaves it in the workspace (no Dask)."""
    app_dir = make_tiny_app(tmp_path / "apps")
    if allow_idle:
        with open(app_dir / "app_settings.toml", "a") as f:
            f.write("\n[cluster.service_health]\nallow_idle = true\n")
    root = tmp_path / "home" / "service" / "tinyapp"
    loops = {slot: {"key": f"k-{slot}", "worker": f"tcp://127.0.0.1:{4000 + i}", "started_at": T0}
             for i, slot in enumerate(beats)}
    atomic_write_json(root / "state.json", {
        "app": "tinyapp", "status": "running", "scheduler": "127.0.0.1:8786", "started_at": T0,
        "heartbeat_timeout_sec": 10.0, "spec": {"app_dir": str(app_dir)}, "loops": loops,
        "restarts": [{"worker": f"tcp://127.0.0.1:{4000 + i}", "reason": "loop-error", "at": T0}
                     for i in range(restarts)]})
    for slot, at in beats.items():
        if at is not None:
            atomic_write_json(root / "heartbeats" / f"{slot}.json", {"slot": slot, "key": f"k-{slot}", "at": at})
    return tmp_path / "home", root


def up(address: str) -> bool:
    return True


def test_probe_judges_heartbeats_and_restarts_without_touching_the_service(tmp_path):
    home, root = service(tmp_path, {"127.0.0.1-0": T0 + 95, "127.0.0.1-1": T0 + 80})
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    v = service_health(home, now=T0 + 100, answers=up)["tinyapp"]
    assert v["passed"] is False and v["failed"] == ["max_unhealthy"]
    assert v["workers_unhealthy"] == ["tcp://127.0.0.1:4001 (stale-heartbeat(20s))"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before  # read-only: nothing written
    assert service_health(home, now=T0 + 85, answers=up)["tinyapp"]["passed"] is True
    down = service_health(home, now=T0 + 85, answers=lambda a: False)["tinyapp"]
    assert not down["passed"] and down["reasons"][0] == "the scheduler at 127.0.0.1:8786 does not answer"


def test_probe_counts_restarts_and_skips_stopped_services(tmp_path):
    home, root = service(tmp_path, {"127.0.0.1-0": T0 + 95, "127.0.0.1-1": T0 + 95}, restarts=1)
    v = service_health(home, now=T0 + 100, answers=up)["tinyapp"]
    assert v["failed"] == ["max_restart_rate"] and "restart rate 0.5 > max_restart_rate 0.25" in v["reasons"]
    state = json.loads((root / "state.json").read_text())
    atomic_write_json(root / "state.json", {**state, "status": "stopped"})
    assert service_health(home, now=T0 + 100, answers=up) == {}
    (root / "state.json").write_text("{not json")
    broken = service_health(home, now=T0 + 100, answers=up)["tinyapp"]
    assert not broken["passed"] and "cannot read" in broken["reasons"][0]


def test_health_gate_alerts_once_per_episode_through_check(tmp_path):
    home, root = service(tmp_path, {"127.0.0.1-0": T0 + 95, "127.0.0.1-1": T0 + 80})
    with RunStore(home / "switchyard.db") as store:
        [a] = check(store, home=home, now=T0 + 100, answers=up)
        assert (a["rule"], a["app"], a["subject"]) == ("health_gate", "tinyapp", "tinyapp@2027-01-15T08:01:40Z")
        assert "stale-heartbeat(20s)" in json.dumps(a["details"])
        assert check(store, home=home, now=T0 + 101, answers=up) == []  # same episode
        for slot in ("127.0.0.1-0", "127.0.0.1-1"):
            atomic_write_json(root / "heartbeats" / f"{slot}.json", {"key": f"k-{slot}", "at": T0 + 110})
        assert check(store, home=home, now=T0 + 111, answers=up) == []  # passes: the episode closes
        assert list_alerts(store)[0]["resolved_at"] == T0 + 111
        [b] = check(store, home=home, now=T0 + 130, answers=up)  # both stale now: a new episode
        assert b["subject"] == "tinyapp@2027-01-15T08:02:10Z" and b["id"] != a["id"]


def test_a_quiet_check_is_cheap(store, tmp_path):
    """With 2000 completed runs (864 ended in the last day) and nothing new, a pass takes milliseconds."""
    for i in range(2000):
        end = T0 - 200_000 + i * 100 if i < 1800 else T0 - 20_000 + i
        with store.transaction() as c:
            c.execute("INSERT INTO orchestrations (id, kind, app, status, created_at, started_at, ended_at) "
                      "VALUES (?, 'app', 'flight', 'completed', ?, ?, ?)", (f"r{i:05d}", end - 11, end - 10, end))
    check(store, home=tmp_path, now=T0)  # creates the tables, reads the settings
    t = time.perf_counter()
    for k in range(20):
        assert check(store, home=tmp_path, now=T0 + k) == []
    per_pass = (time.perf_counter() - t) / 20
    print(f"quiet alert check: {per_pass * 1000:.2f} ms per pass")
    assert per_pass < 0.25
