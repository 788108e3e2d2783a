"""Service mode on a real warm cluster: loops, jobs, a killed worker, a stopped heartbeat, the gate, the watcher."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import jsonschema  # installed with streamlit (altair)
import psutil
import pytest

from switchyard.app import AppEnv
from switchyard.cluster.warm import answers
from switchyard.commands.serve import summary
from switchyard.exceptions import SwitchyardError
from switchyard.service import watcher
from switchyard.service.service import serve_sync, service_dir
from switchyard.settings import update_cluster

from ..conftest import make_tiny_app
from .conftest import cli

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "src/switchyard/service/health.v1.schema.json")
                    .read_text())
TIMEOUT = 5.0  # heartbeat timeout of the test service: short so that a stale heartbeat shows quickly


def poll(what: str, fetch, until, timeout: float = 45, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if until(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s; last: {json.dumps(got, default=str)[:2000]}")
        time.sleep(every)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    make_tiny_app(root / "apps")
    env = AppEnv("tinyapp", apps_dir=root / "apps", workspace=root / "home")
    update_cluster(env.settings_path, service_health={"allow_idle": False, "max_unhealthy": 0,
                                                      "max_restart_rate": 10.0})
    # no watcher: these tests drive the restarts by actions (the last test checks the watcher)
    serve_sync(env, "start", scheduler="127.0.0.1:0", heartbeat_timeout=TIMEOUT, join_timeout=120, watch=False)
    yield env
    serve_sync(env, "stop", stop_cluster=True)


def all_healthy(env: AppEnv) -> dict:
    return poll("all loops healthy", lambda: serve_sync(env, "status"),
                lambda p: p["workers_running_count"] == 2 and p["workers_healthy_count"] == 2
                and all(r["heartbeat_state"] == "fresh" for r in p["worker_health"]))


def test_started_service_is_healthy_and_runs_jobs(service):
    p = all_healthy(service)
    assert p["status"] == "running" and p["gate"]["passed"]
    assert {r["heartbeat_state"] for r in p["worker_health"]} == {"fresh"}
    jsonschema.validate(json.loads((service_dir(service) / "health.json").read_text()), SCHEMA)
    out = serve_sync(service, "submit", wait=60)
    assert [r["result"] for r in out["results"]] == [[45], [55], [66], [78]]  # total(n + 10) for n in 0..3
    assert all(r["error"] is None for r in out["results"])
    custom = serve_sync(service, "submit", jobs=[{"name": "x", "weight": 1, "items": [20]}], wait=60)
    assert custom["results"][0]["result"] == [sum(range(30))]


def test_cli_reports_status_and_gate(service):
    all_healthy(service)
    home, apps = Path(service.workspace), Path(service.apps_dir)
    st = cli("serve", "tinyapp", "status", "--json", home=home, apps=apps, timeout=60)
    assert st.returncode == 0, st.stderr[-2000:]
    payload = json.loads(st.stdout)
    jsonschema.validate(payload, SCHEMA)
    assert payload["workers_running_count"] == 2 and payload["action"] == "status"
    text = cli("serve", "tinyapp", "health", home=home, apps=apps, timeout=60)
    assert text.returncode == 0 and "gate: passed" in text.stdout, text.stdout + text.stderr[-2000:]
    bad = cli("serve", "tinyapp", "restart", home=home, apps=apps, timeout=60)
    assert bad.returncode != 0 and "invalid choice: 'restart'" in bad.stderr


def test_killed_worker_is_detected_restarted_and_gated(service, tmp_path):
    before = all_healthy(service)
    restarts_before = before["restarts_total"]
    beat = json.loads((service_dir(service) / "heartbeats" / "127.0.0.1-0.json").read_text())
    victim = beat["worker"]
    killed_at = time.monotonic()
    os.kill(beat["pid"], signal.SIGKILL)
    seen = poll("the killed worker's loop reported unhealthy",
                lambda: serve_sync(service, "health", auto_restart=False),
                lambda p: victim in p["workers_unhealthy"])
    detected = time.monotonic() - killed_at
    row = next(r for r in seen["worker_health"] if r["worker"] == victim)
    assert (row["reason"], row["future_state"]) == ("loop-cancelled", "lost")
    assert not seen["gate"]["passed"] and seen["gate"]["failed"] == ["max_unhealthy"]
    out = tmp_path / "health-copy.json"
    restarted = serve_sync(service, "status", health_output_path=out)
    assert [r["reason"] for r in restarted["restarted_now"]] == ["loop-cancelled"]
    assert restarted["restarts_total"] == restarts_before + 1 and victim in restarted["workers_restarted"]
    assert restarted["restart_reasons"].get("loop-cancelled", 0) >= 1
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    back = all_healthy(service)
    recovered = time.monotonic() - killed_at
    assert victim not in back["workers_running"]  # the nanny brought the worker back at a new address
    assert back["gate"]["passed"]
    print(f"\nworker loss -> detected in {detected:.2f} s, -> healthy again in {recovered:.2f} s")
    assert serve_sync(service, "submit", wait=60)["results"][0]["error"] is None


def test_stopped_heartbeat_goes_stale_then_recovers(service):
    all_healthy(service)
    hook = service_dir(service) / "hooks" / "127.0.0.1-1.no-heartbeat"
    hook.touch()
    try:
        seen = poll("a stale heartbeat", lambda: serve_sync(service, "health", auto_restart=False),
                    lambda p: any(r["reason"].startswith("stale-heartbeat(") for r in p["worker_health"]))
    finally:
        hook.unlink()
    row = next(r for r in seen["worker_health"] if not r["healthy"])
    assert row["heartbeat_state"] == "stale" and row["heartbeat_age_sec"] > TIMEOUT
    assert row["reason"] == f"stale-heartbeat({int(row['heartbeat_age_sec'])}s)"
    assert "max_unhealthy" in seen["gate"]["failed"]
    restarted = serve_sync(service, "status")
    assert [r["reason"].split("(")[0] for r in restarted["restarted_now"]] == ["stale-heartbeat"]
    assert all_healthy(service)["gate"]["passed"]


def test_stop_ends_the_loops(service):
    all_healthy(service)
    stopped = serve_sync(service, "stop")
    assert stopped["status"] == "stopped" and stopped["workers_running_count"] == 0
    assert stopped["gate"]["failed"] == ["allow_idle"]
    assert serve_sync(service, "status")["status"] == "stopped"
    again = serve_sync(service, "start", heartbeat_timeout=TIMEOUT)  # the warm cluster is still up
    assert again["workers_running_count"] == 2
    all_healthy(service)


# ----------------------------------------------------------------------------- the watcher
# (also used by test_hidden_workspace_ssh.py)

SLOW = 1_500_000  # an item whose job takes a few tenths of a second, so both loops take some


def health(env: AppEnv) -> dict:
    try:
        return json.loads((service_dir(env) / "health.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def beat(env: AppEnv, slot: str) -> dict:
    """The mirrored heartbeat of ``slot``'s current loop (the one state.json records), from a live worker.

    The mirror is rewritten only at an observer's next pass, so right after a restart it can still
    hold the replaced loop's beat, whose worker pid is gone (killing that raised ProcessLookupError).
    """
    def current(b: dict) -> bool:
        loop = _read(service_dir(env) / "state.json").get("loops", {}).get(slot, {})
        return bool(b.get("pid")) and b.get("key") == loop.get("key") and psutil.pid_exists(b["pid"])

    return poll(f"a heartbeat of {slot}'s current loop",
                lambda: _read(service_dir(env) / "heartbeats" / f"{slot}.json"), current, timeout=30)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def kill_and_see_the_watcher_restart(env: AppEnv, slot: str) -> tuple[dict, float]:
    """SIGKILL the worker of ``slot``'s loop; return health.json once the watcher restarted it, and the seconds."""
    before = health(env).get("restarts_total", 0)
    old = beat(env, slot)
    killed = time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)
    seen = poll("the watcher's restart in health.json", lambda: health(env),
                lambda h: h.get("restarts_total", 0) > before and h["workers_healthy_count"] == 2,
                timeout=TIMEOUT + 5 + 10, every=0.1)
    seconds = time.monotonic() - killed
    jsonschema.validate(seen, SCHEMA)
    last = seen["restarts"][-1]
    assert (last["slot"], last["reason"], last["by"]) == (slot, "loop-cancelled", "watcher"), last
    assert last["worker"] == old["worker"] and old["worker"] not in seen["workers_running"]
    assert seen["restart_reasons"]["loop-cancelled"] >= 1
    assert seconds <= TIMEOUT + 5, f"restarted {seconds:.1f} s after the kill (heartbeat timeout {TIMEOUT} s)"
    return seen, seconds


def jobs_reach_the_new_loop(env: AppEnv, slot: str) -> None:
    out = serve_sync(env, "submit", jobs=[{"name": f"j{i}", "weight": 1, "items": [SLOW + i]} for i in range(8)],
                     wait=90)
    assert all(r["error"] is None for r in out["results"]), out["results"]
    assert [r["result"] for r in out["results"]] == [[sum(range(SLOW + i + 10))] for i in range(8)]
    assert slot in {r["slot"] for r in out["results"]}, [r["slot"] for r in out["results"]]


def test_watcher_restarts_a_killed_loop_by_itself_and_holds_a_crash_loop(service, monkeypatch):
    watcher.stop_running(service)  # (test_stop_ends_the_loops started one) a fresh one, with a secret around
    monkeypatch.setenv("SWITCHYARD_SMTP_PASSWORD", "s3cret-of-the-caller")
    started = serve_sync(service, "start", heartbeat_timeout=TIMEOUT)  # runs already: starts its watcher
    update_cluster(service.settings_path, service_health={"allow_idle": False, "max_unhealthy": 0,
                                                          "max_restart_rate": 0.25})
    lease = started["watcher"]
    assert lease["running"] and psutil.Process(lease["pid"]).is_running()
    assert "SWITCHYARD_SMTP_PASSWORD" not in psutil.Process(lease["pid"]).environ()
    assert "watcher: running (pid" in summary(started)
    with pytest.raises(SwitchyardError, match="a watcher of 'tinyapp' already runs"):
        watcher.watch(service)  # one watcher per service: the lease
    all_healthy(service)
    seen, seconds = kill_and_see_the_watcher_restart(service, "127.0.0.1-0")
    print(f"\nlocal: killed -9 -> restarted by the watcher in {seconds:.2f} s")
    jobs_reach_the_new_loop(service, "127.0.0.1-0")

    # lost again within the window: 2 restarts over 2 loops > max_restart_rate 0.25: held, the gate fails
    os.kill(beat(service, "127.0.0.1-0")["pid"], signal.SIGKILL)
    held = poll("a held restart", lambda: health(service), lambda h: bool(h.get("restarts_held")), timeout=30)
    assert held["restarts_held"][0]["slot"] == "127.0.0.1-0" and "max_restart_rate" in held["restarts_held"][0]["why"]
    assert not held["gate"]["passed"] and held["restarts_total"] == seen["restarts_total"]
    # an operator's STATUS still restarts it
    assert [r["slot"] for r in serve_sync(service, "status")["restarted_now"]] == ["127.0.0.1-0"]

    stopped = serve_sync(service, "stop")
    assert not stopped["watcher"]["running"] and not psutil.pid_exists(lease["pid"])
    # stop --stop-cluster of a service already stopped still stops its warm cluster
    scheduler = json.loads((service_dir(service) / "state.json").read_text())["scheduler"]
    assert answers(scheduler)
    serve_sync(service, "stop", stop_cluster=True)
    assert not answers(scheduler)
