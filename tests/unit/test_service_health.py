"""Service health rows, the gate, the health.v1 payload and artifact cleanup (no cluster)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema  # installed with streamlit (altair)
import pytest

from switchyard.exceptions import SettingsError
from switchyard.service import artifacts
from switchyard.service.health import (
    COLUMNS, SCHEMA, LoopSeen, build_payload, check_gate_settings, evaluate_gate, judge, restart_allowed,
    worker_health)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "src/switchyard/service/health.v1.schema.json"
NOW = 1_800_000_000.0


def seen(state="running", beat_age=1.0, started_ago=100.0, worker="tcp://127.0.0.1:1"):
    return LoopSeen(worker, state, None if beat_age is None else NOW - beat_age, NOW - started_ago)


@pytest.mark.parametrize("state,beat_age,started_ago,healthy,reason,beat_state", [
    ("running", 1.0, 100, True, "", "fresh"),
    ("pending", 0.0, 100, True, "", "fresh"),
    ("running", 10.0, 100, True, "", "fresh"),  # exactly the timeout is still fresh
    ("running", 12.7, 100, False, "stale-heartbeat(12s)", "stale"),
    ("running", None, 100, False, "missing-heartbeat", "missing"),
    ("running", None, 3, True, "", "starting"),  # a new loop gets one timeout for its first beat
    ("finished", 1.0, 100, False, "loop-finished", "fresh"),
    ("error", 1.0, 100, False, "loop-error", "fresh"),
    ("cancelled", 1.0, 100, False, "loop-cancelled", "fresh"),
    ("lost", 30.0, 100, False, "loop-cancelled", "stale"),  # the loop's state wins over its heartbeat
])
def test_judge_gives_each_reason(state, beat_age, started_ago, healthy, reason, beat_state):
    row = judge(seen(state, beat_age, started_ago), NOW, timeout=10)
    assert tuple(row) == COLUMNS
    assert (row["healthy"], row["reason"], row["heartbeat_state"], row["future_state"]) == (
        healthy, reason, beat_state, state)
    assert row["heartbeat_age_sec"] == (None if beat_age is None else beat_age)


def test_judge_refuses_an_unknown_state():
    with pytest.raises(ValueError, match="unknown future state 'zombie'"):
        judge(seen("zombie"), NOW)


def test_worker_health_sorts_by_worker_and_uses_the_timeout():
    rows = worker_health([seen(worker="tcp://b:2", beat_age=4), seen(worker="tcp://a:1", beat_age=4)],
                         now=NOW, timeout=3)
    assert [r["worker"] for r in rows] == ["tcp://a:1", "tcp://b:2"]
    assert [r["reason"] for r in rows] == ["stale-heartbeat(4s)"] * 2


def rows_of(healthy: int, unhealthy: int) -> list[dict]:
    good = [judge(seen(worker=f"tcp://h:{i}"), NOW) for i in range(healthy)]
    bad = [judge(seen("error", worker=f"tcp://u:{i}"), NOW) for i in range(unhealthy)]
    return good + bad


def test_gate_passes_with_defaults_when_all_healthy():
    gate = evaluate_gate(rows_of(4, 0), restarted_count=1)
    assert gate["passed"] and gate["failed"] == [] and gate["restart_rate"] == 0.25


def test_gate_fails_on_each_threshold_and_names_it():
    assert evaluate_gate(rows_of(2, 1), 0)["failed"] == ["max_unhealthy"]
    assert evaluate_gate(rows_of(2, 1), 0, {"max_unhealthy": 1})["passed"]
    assert evaluate_gate(rows_of(3, 0), 1)["failed"] == ["max_restart_rate"]  # 0.333 > 0.25
    assert evaluate_gate(rows_of(3, 0), 1, {"max_restart_rate": 0.5})["passed"]
    idle = evaluate_gate([], 0)
    assert idle["failed"] == ["allow_idle"] and "allow_idle" in idle["reasons"][0]
    assert evaluate_gate([], 0, {"allow_idle": True})["passed"]
    both = evaluate_gate(rows_of(1, 1), 2)
    assert both["failed"] == ["max_unhealthy", "max_restart_rate"] and len(both["reasons"]) == 2


@pytest.mark.parametrize("raw,key", [
    ({"allow_idle": "yes"}, "allow_idle"), ({"max_unhealthy": -1}, "max_unhealthy"),
    ({"max_unhealthy": 1.5}, "max_unhealthy"), ({"max_restart_rate": "a"}, "max_restart_rate"),
    ({"max_restart_rate": -0.1}, "max_restart_rate"), ({"colour": 1}, "colour"),
])
def test_bad_gate_settings_name_the_key(raw, key):
    with pytest.raises(SettingsError, match=f"cluster.service_health.{key}"):
        check_gate_settings(raw, "app_settings.toml")


def test_gate_defaults():
    assert check_gate_settings(None) == {"allow_idle": False, "max_unhealthy": 0, "max_restart_rate": 0.25}


def test_payload_counts_and_validates_against_the_schema():
    rows = rows_of(2, 1)
    restarts = [{"worker": "tcp://u:0", "reason": "stale-heartbeat(11s)", "at": NOW - 5},
                {"worker": "tcp://u:0", "reason": "loop-error", "at": NOW - 2},
                {"worker": "tcp://h:0", "reason": "loop-error", "at": NOW - 1}]
    p = build_payload("flight", "degraded", rows, restarts, {"max_restart_rate": 1.0}, timeout=10, now=NOW,
                      cleanup={"done": ["a.json"], "failed": [], "heartbeat": []})
    jsonschema.validate(p, json.loads(SCHEMA_FILE.read_text()))
    assert p["schema"] == SCHEMA and p["timestamp"].startswith("2027-01-15T08:00:00")
    assert (p["workers_running_count"], p["workers_healthy_count"], p["workers_unhealthy_count"]) == (3, 2, 1)
    assert p["workers_unhealthy"] == ["tcp://u:0"]
    assert p["workers_restarted"] == ["tcp://h:0", "tcp://u:0"] and p["workers_restarted_count"] == 2
    assert p["restarts_total"] == 3
    assert p["restart_reasons"] == {"loop-error": 2, "stale-heartbeat": 1}
    assert p["gate"]["failed"] == ["max_unhealthy"] and p["cleanup"] == {"done": 1, "failed": 0, "heartbeat": 0}
    json.dumps(p)  # plain JSON


def test_restart_rate_limit_of_the_watcher():
    def at(*ages):
        return [{"worker": "w", "reason": "loop-error", "at": NOW - a} for a in ages]

    assert restart_allowed([], loops=2, max_rate=0.0, now=NOW)  # one restart per window always heals
    assert not restart_allowed(at(5), loops=2, max_rate=0.25, now=NOW)  # 2 restarts / 2 loops > 0.25
    assert restart_allowed(at(5), loops=8, max_rate=0.25, now=NOW)  # 2 / 8 = 0.25
    assert not restart_allowed(at(5, 6), loops=8, max_rate=0.25, now=NOW)  # 3 / 8 > 0.25
    assert restart_allowed(at(601, 900), loops=2, max_rate=0.25, now=NOW)  # older than the 600 s window
    assert restart_allowed(at(5), loops=2, max_rate=10.0, now=NOW)


def test_payload_shows_the_watcher_and_held_restarts():
    held = [{"worker": "tcp://u:0", "slot": "127.0.0.1-0", "reason": "loop-cancelled", "at": NOW,
             "why": "max_restart_rate 0.25 reached"}]
    watcher = {"running": True, "pid": 42, "host": "h", "started_at": NOW - 9, "heartbeat_at": NOW}
    p = build_payload("flight", "degraded", rows_of(1, 1), [], now=NOW, held=held, watcher=watcher)
    jsonschema.validate(p, json.loads(SCHEMA_FILE.read_text()))
    assert p["restarts_held"] == held and p["watcher"] == watcher
    assert build_payload("flight", "stopped", [], [], now=NOW)["watcher"] == {"running": False}


def test_schema_rejects_a_payload_missing_a_field():
    p = build_payload("flight", "stopped", [], [], now=NOW)
    jsonschema.validate(p, json.loads(SCHEMA_FILE.read_text()))
    del p["gate"]
    with pytest.raises(jsonschema.ValidationError, match="'gate' is a required property"):
        jsonschema.validate(p, json.loads(SCHEMA_FILE.read_text()))


# ----------------------------------------------------------------------------- artifacts

def make_files(folder: Path, ages_hours: list[float], now: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, age in enumerate(ages_hours):
        p = folder / f"f{i:04d}.json"
        p.write_text("{}")
        t = now - age * 3600
        os.utime(p, (t, t))
        out.append(p)
    return out


def test_cleanup_removes_by_age_per_kind(tmp_path):
    make_files(tmp_path / "done", [1, 167, 169, 400], NOW)
    make_files(tmp_path / "failed", [1, 169, 335, 337], NOW)
    make_files(tmp_path / "heartbeats", [0.01, 23, 25], NOW)
    removed = artifacts.cleanup(tmp_path, now=NOW)
    assert removed == {"done": ["f0003.json", "f0002.json"], "failed": ["f0003.json"],
                       "heartbeat": ["f0002.json"]}
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["f0000.json", "f0001.json"]
    assert len(list((tmp_path / "failed").iterdir())) == 3
    assert artifacts.cleanup(tmp_path, now=NOW) == {"done": [], "failed": [], "heartbeat": []}


def test_cleanup_keeps_the_newest_files_up_to_the_limit(tmp_path):
    make_files(tmp_path / "done", [5, 1, 4, 2, 3], NOW)  # f0001 newest, f0000 oldest
    retention = artifacts.Retention(done_max_files=2)
    removed = artifacts.cleanup(tmp_path, retention, now=NOW)
    assert removed["done"] == ["f0000.json", "f0002.json", "f0004.json"]
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["f0001.json", "f0003.json"]


def test_cleanup_defaults_and_missing_folders(tmp_path):
    r = artifacts.Retention()
    assert (r.done_ttl_hours, r.failed_ttl_hours, r.heartbeat_ttl_hours) == (168, 336, 24)
    assert (r.done_max_files, r.failed_max_files, r.heartbeat_max_files) == (2000, 2000, 1000)
    assert artifacts.cleanup(tmp_path / "nothing-here", now=NOW) == {"done": [], "failed": [], "heartbeat": []}


def test_cleanup_caps_heartbeats_at_1000(tmp_path):
    make_files(tmp_path / "heartbeats", [i / 3600 for i in range(1003)], NOW)
    removed = artifacts.cleanup(tmp_path, now=NOW)["heartbeat"]
    assert removed == ["f1002.json", "f1001.json", "f1000.json"]


# ----------------------------------------------------------------------------- actions without a service

def test_status_without_a_service_writes_a_stopped_snapshot(make_app, tmp_path):
    from switchyard.exceptions import SwitchyardError
    from switchyard.service.service import serve_sync, service_dir

    env = make_app()
    p = serve_sync(env, "status")
    assert (p["status"], p["workers_running_count"], p["gate"]["failed"]) == ("stopped", 0, ["allow_idle"])
    written = json.loads((service_dir(env) / "health.json").read_text())
    jsonschema.validate(written, json.loads(SCHEMA_FILE.read_text()))
    other = tmp_path / "elsewhere" / "h.json"
    assert serve_sync(env, "health", health_output_path=other)["health_path"] == str(other)
    assert json.loads(other.read_text())["schema"] == SCHEMA
    with pytest.raises(SwitchyardError, match="is not running: start it first"):
        serve_sync(env, "submit")
    with pytest.raises(SwitchyardError, match="unknown service action 'restart'"):
        serve_sync(env, "restart")


def test_a_bad_gate_setting_stops_the_action_before_anything_runs(make_app):
    from switchyard.service.service import serve_sync, service_dir
    from switchyard.settings import update_cluster

    env = make_app()
    update_cluster(env.settings_path, service_health={"max_unhealthy": -2})
    with pytest.raises(SettingsError, match="max_unhealthy"):
        serve_sync(env, "start")
    assert not (service_dir(env) / "state.json").exists()


def test_status_when_the_cluster_is_gone_reports_every_loop_lost(make_app):
    import socket

    from switchyard.exceptions import ClusterError
    from switchyard.service.service import serve_sync, service_dir
    from switchyard.workspace import atomic_write_json

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = make_app()
    atomic_write_json(service_dir(env) / "state.json", {
        "app": env.app, "status": "running", "scheduler": f"tcp://127.0.0.1:{port}", "started_at": 1.0,
        "heartbeat_timeout_sec": 10.0, "spec": {}, "restarts": [],
        "loops": {"127.0.0.1-0": {"key": "k0", "worker": "tcp://127.0.0.1:9", "started_at": 1.0}}})
    p = serve_sync(env, "status")
    assert p["status"] == "degraded" and "does not answer" in p["error"]
    assert [(r["reason"], r["future_state"], r["heartbeat_state"]) for r in p["worker_health"]] == [
        ("loop-cancelled", "lost", "missing")]
    jsonschema.validate(json.loads((service_dir(env) / "health.json").read_text()),
                        json.loads(SCHEMA_FILE.read_text()))
    with pytest.raises(ClusterError, match="does not answer"):
        serve_sync(env, "submit")
    assert serve_sync(env, "stop")["status"] == "stopped"
