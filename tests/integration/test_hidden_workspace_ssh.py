"""SSH workers that cannot see the driver's workspace (the ``hidden_ssh`` fixture): a cancelled
pipeline step stops there within 5 s, a service loop killed -9 there comes back by the watcher with
nobody calling any action, and code running there sees none of the caller's secrets.

The SSH "host" 127.0.0.2 is this machine, but its sshd, and so its workers, live in a mount
namespace where the workspace and the apps folder are empty tmpfs mounts: each test asserts from
the workers that they cannot read the run folder or the service's files, so steps' code, jobs,
results, heartbeats and cancels can only travel over Dask.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from switchyard.pipeline.driver import PipelineDriver
from switchyard.pipeline.model import Pipeline, Step
from switchyard.pipeline.runs import create_run
from switchyard.runs.store import RunStore
from switchyard.service.service import serve_sync, service_dir

from .conftest import CALLER_SECRETS, HIDDEN_HOST
from .lifecycle_helpers import wait_until
from .test_honest_control import cancel_and_watch
from .test_service import TIMEOUT, jobs_reach_the_new_loop, kill_and_see_the_watcher_restart

pytestmark = pytest.mark.ssh
SLEEP = 8.0  # a step's sleep: beyond the 5 s a cancel may take (it takes well under 1 s)

STEP = '''
import json, os, time
from pathlib import Path

marks = Path({marks!r})
(marks / "{sid}.environ.json").write_text(json.dumps(dict(os.environ)))  # at its start
time.sleep({sleep})
(marks / "{sid}.end").write_text("ran to its end")  # only a step nobody stopped gets here
'''


def leaked(environ: dict) -> list[str]:
    """The caller's secrets found in ``environ``, as names or values."""
    return sorted({k for k in CALLER_SECRETS if k in environ}
                  | {k for k, v in environ.items() if any(s in str(v) for s in CALLER_SECRETS.values())})


def cannot_read(client, *paths: Path) -> None:
    """Assert that no worker sees any of ``paths`` (which exist here)."""
    assert all(p.exists() for p in paths)
    there = client.run(lambda *ps: [os.path.exists(p) for p in ps], *map(str, paths))
    assert len(there) == 2 and all(v == [False] * len(paths) for v in there.values()), there


def steps_on_workers(client, oid: str) -> dict[str, list]:
    """Worker -> what of run ``oid`` executes there, as the worker says: the steps its run_step
    tracks and the live processes whose command line lies in the run's folder."""

    def probe(oid: str) -> list:
        import psutil

        from switchyard.pipeline import runner

        with runner._running_lock:
            tracked = [k for k, e in runner._running.items() if e[0] == oid]
        procs = [p.pid for p in psutil.process_iter(["cmdline", "status"])
                 if oid in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]
        return tracked + procs

    return {a: v for a, v in client.run(probe, oid).items() if v}


def test_a_cancelled_step_stops_on_workers_that_cannot_see_the_workspace(hidden_ssh, tmp_path, monkeypatch):
    from switchyard.cluster.connect import connect

    env, address = hidden_ssh
    for name, value in CALLER_SECRETS.items():
        monkeypatch.setenv(name, value)
    marks = tmp_path / "marks"
    marks.mkdir()
    p = Pipeline(python="app", steps=[Step(id=sid, code=STEP.format(marks=str(marks), sid=sid, sleep=SLEEP))
                                      for sid in ("a", "b")])
    store = RunStore(env.home / "switchyard.db")
    oid = create_run(env, p, scheduler=address, store=store)
    orch = store.get(oid)
    run_dir, python = Path(orch.run_dir), Path(orch.options["python"])
    assert python.is_relative_to(env.home)  # the app's env here: not on the host, which has its own
    box: dict = {}
    driver = threading.Thread(target=lambda: box.update(status=PipelineDriver(oid, store, owner="hidden").run()))
    with connect(address, timeout=15, home=env.home) as client:
        cannot_read(client, run_dir / "pipeline.json", env.settings_path, python)
        driver.start()
        try:
            wait_until(lambda: len(list(marks.glob("*.environ.json"))) == 2, 60, "both steps started")
            started = time.time()
            busy = wait_until(lambda: steps_on_workers(client, oid), 10, "the workers running the steps")
            assert len(busy) == 2, busy  # a step on each worker
            idle = cancel_and_watch(store, oid, lambda: steps_on_workers(client, oid))
            assert idle is not None and idle < 5.0, idle
            driver.join(30)
        finally:
            if driver.is_alive():
                store.command(oid, "cancel")
                driver.join(30)
        assert box["status"].value == "cancelled"
        assert {b.status.value for b in store.batches(oid)} == {"cancelled"}
        # the steps' logs are on the host only (both workers share its file system), in its own run folder
        logs = client.run(lambda d: {s: Path(d, "steps", s, "step.log").read_text() for s in ("a", "b")
                                     if Path(d, "steps", s, "step.log").exists()}, str(run_dir))
        texts = {sid: text for got in logs.values() for sid, text in got.items()}
        assert sorted(texts) == ["a", "b"], logs
        texts = list(texts.values())
        assert all("cancelled: the step's process was killed" in t for t in texts), texts
        assert all(f"{python} is not on this worker" in t for t in texts)
        assert not (run_dir / "steps" / "a" / "step.log").exists()
    print(f"\nssh pipeline: cancel -> no step executes in {idle:.2f} s")
    time.sleep(max(0.0, started + SLEEP + 1.5 - time.time()))
    assert not list(marks.glob("*.end"))  # neither step ever reached its end
    for sid in ("a", "b"):
        seen = json.loads((marks / f"{sid}.environ.json").read_text())
        assert seen["SWITCHYARD_STEP_DIR"] == str(run_dir / "steps" / sid)
        assert not leaked(seen), leaked(seen)


def test_watcher_restarts_a_killed_loop_on_workers_that_cannot_see_the_workspace(hidden_ssh, monkeypatch):
    from switchyard.cluster.connect import connect

    env, address = hidden_ssh
    for name, value in CALLER_SECRETS.items():
        monkeypatch.setenv(name, value)
    started = serve_sync(env, "start", heartbeat_timeout=TIMEOUT, join_timeout=180)
    try:
        state = service_dir(env) / "state.json"
        assert started["watcher"]["running"] and json.loads(state.read_text())["scheduler"] == address
        with connect(address, timeout=15, home=env.home) as client:
            cannot_read(client, state, env.home / "switchyard.db", env.settings_path)
            assert set(client.run(lambda apps: tuple(os.listdir(apps)), str(env.apps_path)).values()) == {()}
        _, seconds = kill_and_see_the_watcher_restart(env, f"{HIDDEN_HOST}-1")
        print(f"\nssh: killed -9 -> restarted by the watcher in {seconds:.2f} s")
        jobs_reach_the_new_loop(env, f"{HIDDEN_HOST}-1")
        # a job (a batch of the app, in a loop on a worker there) that returns its environment
        out = serve_sync(env, "submit", jobs=[{"name": "environ", "weight": 1, "items": ["environ"]}], wait=60)
        seen = out["results"][0]["result"][0]
        assert out["results"][0]["error"] is None and seen.get("PATH"), out["results"][0]
        assert not leaked(seen), leaked(seen)
    finally:
        serve_sync(env, "stop")


def test_a_mode_4_batch_on_those_workers_sees_none_of_the_callers_secrets(hidden_ssh, monkeypatch):
    import ast

    from switchyard.runs.submit import run_sync

    env, address = hidden_ssh
    for name, value in CALLER_SECRETS.items():
        monkeypatch.setenv(name, value)
    lines: list[str] = []
    result = run_sync(env, mode=4, on_line=lines.append, n=2, show_env=True)
    assert result.status == "completed", lines[-20:]
    store = RunStore(env.home / "switchyard.db")
    assert store.get(result.orchestration_id).scheduler == address  # on the warm cluster there
    batches = store.batches(result.orchestration_id)
    assert {b.worker for b in batches} <= {f"{HIDDEN_HOST}-0", f"{HIDDEN_HOST}-1"}, [b.worker for b in batches]
    seen = [e for batch in ast.literal_eval(Path(result.output).read_text()) for e in batch]  # one per batch
    assert len(seen) == 2 and all(e.get("PATH") and not leaked(e) for e in seen), [leaked(e) for e in seen]
