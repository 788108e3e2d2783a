"""Faults of pipeline runs, executed by the same driver as app runs: kill -9 of the process
executing the run, then resume; nothing recorded is redone and nothing leaks."""

from __future__ import annotations

import os
import signal
import time

from switchyard.app import AppEnv
from switchyard.pipeline.model import Pipeline, Step
from switchyard.pipeline.runs import create_run
from switchyard.runs import control, launcher
from switchyard.runs.leases import LEASE_TTL
from switchyard.runs.submit import ensure_env

from .lifecycle_helpers import store_of, wait_status, wait_until
from .test_faults import alive, recorded_cluster

COUNT = ("import os, time\n"
         "path = os.path.join(os.environ['SWITCHYARD_RUN_DIR'], '{sid}.runs')\n"
         "open(path, 'a').write('x')\n"
         "time.sleep({sleep})\n")


def test_a_killed_pipeline_driver_is_interrupted_and_resume_runs_only_the_rest(run_home):
    apps, home = run_home
    env = AppEnv("montecarlo", apps_dir=apps, workspace=home)
    ensure_env(env, False, lambda line: None)  # the driver runs in the app's environment
    p = Pipeline(steps=[Step(id="first", code=COUNT.format(sid="first", sleep=0)),
                        Step(id="slow", code=COUNT.format(sid="slow", sleep=4), depends_on=["first"]),
                        Step(id="last", code=COUNT.format(sid="last", sleep=0), depends_on=["slow"])])
    store = store_of(home)
    oid = create_run(env, p, store=store)
    launcher.pump(store)
    run_dir = store.get(oid).run_dir
    wait_until(lambda: {b.name: b.status.value for b in store.batches(oid)}["slow"] == "running", 120,
               "the slow step running")
    first = {b.name: b for b in store.batches(oid)}["first"]
    assert first.status.value == "completed"
    cluster = recorded_cluster(store, oid)  # the pipeline's local cluster is recorded like an app run's
    os.kill(store.get(oid).driver_pid, signal.SIGKILL)
    killed_at = time.time()
    wait_status(store, oid, {"interrupted"}, timeout=30)
    assert time.time() - killed_at < LEASE_TTL + 7
    assert "stopped heartbeating" in store.get(oid).error
    wait_until(lambda: not any(alive(q["pid"]) for q in cluster.values()), 20, "the orphan cluster ending")

    control.resume(store, oid)
    wait_status(store, oid, {"completed"}, timeout=150)
    steps = {b.name: b for b in store.batches(oid)}
    assert {s: b.status.value for s, b in steps.items()} == {"first": "completed", "slow": "completed",
                                                              "last": "completed"}
    assert (steps["first"].ended_at, steps["first"].attempts) == (first.ended_at, 1)  # not redone
    assert open(os.path.join(run_dir, "first.runs")).read() == "x"
    assert open(os.path.join(run_dir, "last.runs")).read() == "x"
    leases = [e["message"] for e in store.events(oid) if e["kind"] == "lease"]
    assert len({m.split()[2] for m in leases if m.startswith("claimed by")}) == 2  # two drivers
