"""The pipeline runner on a real Dask LocalCluster (worker processes) with a real run store.

One cluster serves the module; each test records a pipeline run in its own workspace and
drives it in-process with :class:`PipelineDriver` (the same code the driver process runs).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from switchyard.app import AppEnv
from switchyard.pipeline import model
from switchyard.pipeline.breaker import Breakers, breakers_path
from switchyard.pipeline.driver import PipelineDriver
from switchyard.pipeline.model import BreakerConfig, Pipeline, PipelineError, Step
from switchyard.pipeline.runner import step_log
from switchyard.pipeline.runs import create_run, history, run_detail
from switchyard.runs.store import RunStore


@pytest.fixture(scope="module")
def scheduler():
    from switchyard.cluster.local import LocalCluster
    from switchyard.pipeline.driver import cluster_env

    cluster = LocalCluster(python=Path(sys.executable), workers={"127.0.0.1": 2}, env=cluster_env())
    address = cluster.start()
    yield address
    cluster.close()


@pytest.fixture
def env(tmp_path):
    (tmp_path / "apps" / "demo").mkdir(parents=True)
    return AppEnv("demo", apps_dir=tmp_path / "apps", workspace=tmp_path / "home")


def drive(env, p, scheduler, **kw):
    store = RunStore(env.home / "switchyard.db")
    oid = create_run(env, p, store=store, **kw)
    status = PipelineDriver(oid, store, owner="test-driver", scheduler=scheduler).run()
    return store, oid, status


def steps_of(store, oid):
    return {b.name: b for b in store.batches(oid)}


STAMP = ("import os, time, json\n"
         "t0 = time.time(); time.sleep(1.5)\n"
         "open(os.path.join(os.environ['SWITCHYARD_STEP_DIR'], 'span.json'), 'w')"
         ".write(json.dumps([t0, time.time()]))\n")


def test_diamond_runs_the_middle_steps_in_parallel_and_passes_files(env, scheduler):
    p = Pipeline(steps=[
        Step(id="top", code="import os; open(os.environ['SWITCHYARD_STEP_DIR'] + '/x.txt', 'w').write('7')"),
        Step(id="left", code=STAMP, depends_on=["top"]),
        Step(id="right", code=STAMP, depends_on=["top"]),
        Step(id="bottom", depends_on=["left", "right"], code=(
            "import os\n"
            "dirs = os.environ['SWITCHYARD_DEP_DIRS'].split(os.pathsep)\n"
            "print('deps', sorted(os.path.basename(d) for d in dirs))\n"
            "print('left span file', os.path.exists(os.environ['SWITCHYARD_DEP_DIR_LEFT'] + '/span.json'))\n")),
    ])
    store, oid, status = drive(env, p, scheduler)
    assert status.value == "completed", store.get(oid).error
    run_dir = Path(store.get(oid).run_dir)
    left = json.loads((run_dir / "steps" / "left" / "span.json").read_text())
    right = json.loads((run_dir / "steps" / "right" / "span.json").read_text())
    assert left[0] < right[1] and right[0] < left[1], (left, right)  # the intervals overlap
    log = step_log(run_dir, "bottom").read_text()
    assert "deps ['left', 'right']" in log and "left span file True" in log
    assert {b.status.value for b in store.batches(oid)} == {"completed"}
    assert store.get(oid).kind == "pipeline"


def test_a_step_that_fails_twice_then_succeeds_with_two_retries(env, scheduler):
    code = ("import os, sys\n"
            "f = os.path.join(os.environ['SWITCHYARD_STEP_DIR'], 'n')\n"
            "n = int(open(f).read()) if os.path.exists(f) else 0\n"
            "open(f, 'w').write(str(n + 1))\n"
            "print('attempt', n + 1)\n"
            "sys.exit(0 if n >= 2 else 3)\n")
    p = Pipeline(steps=[Step(id="flaky", code=code, retries=2, retry_delay=0.05)],
                 breaker=BreakerConfig(threshold=10))
    store, oid, status = drive(env, p, scheduler)
    assert status.value == "completed"
    b = steps_of(store, oid)["flaky"]
    assert b.attempts == 3
    log = step_log(store.get(oid).run_dir, "flaky").read_text()
    assert "attempt 3" in log and "exit code 3" in log


def test_a_timeout_kills_a_sleeping_step_and_skips_downstream(env, scheduler):
    p = Pipeline(steps=[
        Step(id="sleepy", code="import time; print('zz', flush=True); time.sleep(30)", timeout=1.0),
        Step(id="after", code="print('never')", depends_on=["sleepy"]),
    ])
    t0 = time.monotonic()
    store, oid, status = drive(env, p, scheduler)
    assert time.monotonic() - t0 < 15
    assert status.value == "failed"
    b = steps_of(store, oid)
    assert b["sleepy"].status.value == "dead" and "timed out after 1 s" in b["sleepy"].error
    assert b["after"].status.value == "skipped"  # skipped, not failed
    assert "sleepy" in store.get(oid).error


def test_a_fallback_runs_after_final_failure(env, scheduler):
    p = Pipeline(steps=[
        Step(id="main", code="raise SystemExit('boom')", fallback="plan_b"),
        Step(id="plan_b", code="import os; open(os.environ['SWITCHYARD_STEP_DIR'] + '/b', 'w').write('b')"),
        Step(id="next", code="print('next ran')", depends_on=["main"]),
        Step(id="spare", code="print('spare')", fallback="unused"),
        Step(id="unused", code="print('unused ran')"),
    ])
    store, oid, status = drive(env, p, scheduler)
    assert status.value == "completed", store.get(oid).error
    b = steps_of(store, oid)
    assert b["main"].status.value == "dead" and "boom" in b["main"].error
    assert b["plan_b"].status.value == "completed"
    assert b["next"].status.value == "completed"
    assert b["unused"].status.value == "skipped"
    assert "next ran" in step_log(store.get(oid).run_dir, "next").read_text()


def test_circuit_breaker_opens_after_n_failures_and_closes_after_cooldown(env, scheduler, tmp_path):
    cfg = BreakerConfig(threshold=2, window=60, cooldown=1.5)
    bad = Pipeline(steps=[Step(id="bad", code="raise SystemExit(1)", retries=1, retry_delay=0.01, kind="etl")],
                   breaker=cfg)
    store, oid, status = drive(env, bad, scheduler)
    assert status.value == "failed"
    breakers = Breakers(breakers_path(env.home), env.app, cfg)
    assert breakers.state("etl")["state"] == "open"
    # Same kind, good code: fails fast while the breaker is open, without starting a process.
    good = Pipeline(steps=[Step(id="good", code="print('ran')", kind="etl")], breaker=cfg)
    store, oid2, status = drive(env, good, scheduler)
    assert status.value == "failed"
    assert "circuit breaker for step kind 'etl' is open" in steps_of(store, oid2)["good"].error
    assert not step_log(store.get(oid2).run_dir, "good").exists()
    time.sleep(1.6)  # the cool-down passes: one trial runs, and its success closes the breaker
    store, oid3, status = drive(env, good, scheduler)
    assert status.value == "completed"
    assert breakers.state("etl")["state"] == "closed"


def test_retry_from_failure_does_not_rerun_completed_steps(env, scheduler, tmp_path):
    flag = tmp_path / "fixed"
    p = Pipeline(steps=[
        Step(id="first", code="import os; open(os.environ['SWITCHYARD_STEP_DIR'] + '/runs', 'a').write('x')"),
        Step(id="second", depends_on=["first"],
             code=f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"),
        Step(id="third", depends_on=["second"], code="print('third')"),
    ])
    store, oid, status = drive(env, p, scheduler)
    assert status.value == "failed"
    b = steps_of(store, oid)
    assert [b[s].status.value for s in ("first", "second", "third")] == ["completed", "dead", "skipped"]
    first_ended = b["first"].ended_at
    flag.write_text("ok")
    store.command(oid, "retry")
    status = PipelineDriver(oid, store, owner="test-driver-2", scheduler=scheduler).run()
    assert status.value == "completed", store.get(oid).error
    b = steps_of(store, oid)
    assert b["first"].attempts == 1 and b["first"].ended_at == first_ended  # not re-run
    assert (Path(store.get(oid).run_dir) / "steps" / "first" / "runs").read_text() == "x"
    assert b["second"].status.value == "completed" and b["third"].status.value == "completed"
    assert history(env, store=store)[0]["steps"] == {"first": "completed", "second": "completed",
                                                     "third": "completed"}
    assert run_detail(store, oid)["workflow_id"].startswith("pipeline:demo:")


def test_a_cycle_is_rejected_with_its_ids(env):
    p = Pipeline(steps=[Step(id="a", code="pass", depends_on=["c"]), Step(id="b", code="pass", depends_on=["a"]),
                        Step(id="c", code="pass", depends_on=["b"])])
    with pytest.raises(PipelineError, match=r"cycle: .*a.*b.*c"):
        create_run(env, p, store=RunStore(env.home / "switchyard.db"))
    assert RunStore(env.home / "switchyard.db").list() == []


def test_a_stale_step_is_refused_unless_confirmed(env, scheduler):
    (env.app_dir / "app_settings.toml").write_text("[args]\nn = 2\n")
    p = Pipeline(steps=[Step(id="gen", code="print('gen')", source="gen:run", generated_args={"n": 1})])
    with pytest.raises(PipelineError, match=r"step 'gen' is stale: .*: n"):
        create_run(env, p, store=RunStore(env.home / "switchyard.db"))
    store, oid, status = drive(env, p, scheduler, allow_stale=True)
    assert status.value == "completed"
    assert store.get(oid).options["stale"] == {"gen": ["n"]}


def _drive_in_thread(store, oid, scheduler, owner):
    import threading

    result = {}
    t = threading.Thread(target=lambda: result.update(
        status=PipelineDriver(oid, store, owner=owner, scheduler=scheduler).run()))
    t.start()
    return t, result


def _wait_running(store, oid, sid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if steps_of(store, oid)[sid].status.value == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"step {sid} never ran")


def test_pause_lets_the_running_step_finish_and_resume_runs_the_rest(env, scheduler):
    p = Pipeline(steps=[Step(id="slow", code="import time; time.sleep(1.0)"),
                        Step(id="after", code="print('after')", depends_on=["slow"])])
    store = RunStore(env.home / "switchyard.db")
    oid = create_run(env, p, store=store)
    t, result = _drive_in_thread(store, oid, scheduler, "d1")
    _wait_running(store, oid, "slow")
    store.command(oid, "pause")
    t.join(30)
    assert result["status"].value == "paused"
    b = steps_of(store, oid)
    assert b["slow"].status.value == "completed" and b["after"].status.value == "pending"
    store.command(oid, "resume")
    assert PipelineDriver(oid, store, owner="d2", scheduler=scheduler).run().value == "completed"
    assert steps_of(store, oid)["slow"].attempts == 1


def test_cancel_kills_the_running_step(env, scheduler):
    p = Pipeline(steps=[Step(id="long", code="import time; print('start', flush=True); time.sleep(60)"),
                        Step(id="after", code="print('after')", depends_on=["long"])])
    store = RunStore(env.home / "switchyard.db")
    oid = create_run(env, p, store=store)
    t0 = time.monotonic()
    t, result = _drive_in_thread(store, oid, scheduler, "d1")
    _wait_running(store, oid, "long")
    store.command(oid, "cancel")
    t.join(30)
    assert result["status"].value == "cancelled" and time.monotonic() - t0 < 30
    assert "cancelled: the step's process was killed" in step_log(store.get(oid).run_dir, "long").read_text()
    assert {b.status.value for b in store.batches(oid)} == {"cancelled"}
