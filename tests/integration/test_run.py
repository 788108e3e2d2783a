"""Runs of the shipped apps through the CLI and AGI, on real local Dask clusters."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from switchyard import AGI, AppEnv
from switchyard.cluster.env import is_current

from .conftest import cli, cli_json

SMALL = {"flight": ["--arg", "files=4", "--arg", "rows_per_file=400"],
         "montecarlo": ["--arg", "tasks=4", "--arg", "samples_per_task=20000", "--arg", "chunks=2"]}
PRIMARY = {"flight": "segments.parquet", "montecarlo": "result.parquet"}


def run_json(app, mode, home, apps, workers="127.0.0.1:2"):
    out = cli_json("run", app, "--mode", str(mode), "--workers", workers, *SMALL[app], home=home, apps=apps)
    assert out["status"] == "completed", out
    assert out["completed"] == out["batches"] > 0
    assert Path(out["output"]).name == PRIMARY[app]
    return out


def test_flight_dask_mode_equals_mode_0(run_home):
    apps, home = run_home
    with ThreadPoolExecutor(1) as pool:  # the mode-0 reference runs meanwhile
        reference = pool.submit(cli_json, "run", "flight", "--mode", "0", home=home, apps=apps)
        proc = cli("run", "flight", "--mode", "4", "--workers", "127.0.0.1:2", "--engine-log", "--json",
                   home=home, apps=apps)
        ref = reference.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert set(out) >= {"orchestration_id", "status", "batches", "completed", "seconds", "output"}
    assert out["status"] == "completed" and out["completed"] == out["batches"]
    a, b = pd.read_parquet(out["output"]), pd.read_parquet(ref["output"])
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)
    # the dask run really used two workers
    db = sqlite3.connect(home / "switchyard.db")
    workers = {w for (w,) in db.execute("SELECT worker FROM batches WHERE orchestration_id = ?",
                                        (out["orchestration_id"],))}
    assert workers == {"127.0.0.1-0", "127.0.0.1-1"}
    log = (Path(out["output"]).parents[1] / "run.log").read_text()
    assert "[127.0.0.1-0]" in log or "127.0.0.1-0" in log
    # run.log is for people: no engine INFO record; engine.log has them all, and --engine-log
    # followed both (each line once: run.log's own lines are not repeated from engine.log)
    engine = (Path(out["output"]).parents[1] / "engine.log").read_text()
    assert "driver: connecting to the Dask scheduler" in log
    assert not re.search(r"distributed\.[\w.]+ - INFO - ", log), log[:3000]
    assert re.search(r"\[127\.0\.0\.1-0\] .* - distributed\.worker - INFO - ", engine)
    assert re.search(r"distributed\.[\w.]+ - INFO - ", proc.stderr)
    assert proc.stderr.count("driver: connecting to the Dask scheduler") == 1


@pytest.mark.parametrize("app", ["flight", "montecarlo"])
def test_modes_0_1_4_5_and_cython_modes_2_6_compile_and_give_equal_outputs(run_home, app):
    """One mode-0 reference for every other mode, the cython ones (2, 6) included. Modes 0, 1, 4
    and 5 run at once (four drivers; the dask ones each start their own local cluster), then 2
    (which builds the cython environment) and 6 (which uses that build)."""
    apps, home = run_home
    with ThreadPoolExecutor(4) as pool:
        at_once = (0, 1, 4, 5)
        outputs = dict(zip(at_once, pool.map(lambda m: run_json(app, m, home, apps)["output"], at_once)))
    outputs.update({m: run_json(app, m, home, apps)["output"] for m in (2, 6)})
    frames = {m: pd.read_parquet(p) for m, p in outputs.items()}
    for m in (1, 4, 5, 2, 6):
        pd.testing.assert_frame_equal(frames[m], frames[0])
    assert is_current(AppEnv(app, apps_dir=apps, workspace=home), True)
    so = list((home / "envs" / app / "cython").rglob("worker*.so"))
    assert so, "the cython build should hold a compiled worker module"


def test_detach_returns_at_once_and_the_driver_finishes(run_home):
    apps, home = run_home
    t0 = time.time()
    out = cli_json("run", "montecarlo", "--mode", "0", "--detach", *SMALL["montecarlo"], home=home, apps=apps)
    oid = out["orchestration_id"]
    assert out["status"] in ("pending", "running")
    deadline = time.time() + 120
    db = sqlite3.connect(home / "switchyard.db")
    while time.time() < deadline:
        (status,) = db.execute("SELECT status FROM orchestrations WHERE id = ?", (oid,)).fetchone()
        if status in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert status == "completed"
    assert time.time() - t0 < 120


def test_snippet_does_what_the_cli_does(run_home, tmp_path):
    apps, home = run_home
    app_env = AppEnv("montecarlo", apps_dir=apps, workspace=home)
    lines = []
    with ThreadPoolExecutor(1) as pool:  # the CLI's run meanwhile
        by_cli = pool.submit(cli_json, "run", "montecarlo", "--mode", "0", "--workers", "127.0.0.1:1",
                             "--arg", "tasks=3", "--arg", "samples_per_task=1000", "--arg", "chunks=1",
                             home=home, apps=apps)
        res = asyncio.run(AGI.run(app_env, mode=0, workers={"127.0.0.1": 1}, on_line=lines.append,
                                  tasks=3, samples_per_task=1000, chunks=1))
        cli_out = by_cli.result()
    assert res.status == "completed" and res.batches == 3
    assert any("completed" in line for line in lines)
    pd.testing.assert_frame_equal(pd.read_parquet(res.output), pd.read_parquet(cli_out["output"]))


def test_distrib_json_and_saved_plan_is_used_by_run(run_home):
    apps, home = run_home
    plan = cli_json("distrib", "flight", "--workers", "127.0.0.1:2", *SMALL["flight"], home=home, apps=apps)
    assert {"makespan", "lower_bound", "workers"} <= set(plan)
    assert plan["makespan"] >= plan["lower_bound"] > 0
    # move every partition to worker 1 by editing the saved plan through the library
    from switchyard.runs.submit import plan_path, save_plan, saved_plan
    from switchyard.plan import reassign

    app_env = AppEnv("flight", apps_dir=apps, workspace=home)
    p = saved_plan(app_env)
    for name in list(p.assignment()):
        p = reassign(p, name, "127.0.0.1-1")
    save_plan(app_env, p)
    out = run_json("flight", 4, home, apps)
    log = (Path(out["output"]).parents[1] / "run.log").read_text()
    assert "using the saved work plan with the operator's edits" in log
    db = sqlite3.connect(home / "switchyard.db")
    planned = {w for (w,) in db.execute("SELECT planned_worker FROM batches WHERE orchestration_id = ?",
                                        (out["orchestration_id"],))}
    assert planned == {"127.0.0.1-1"}
    # other args -> re-planned, and the log says so
    out2 = cli_json("run", "flight", "--mode", "0", "--arg", "files=3", "--arg", "rows_per_file=300",
                    home=home, apps=apps)
    log2 = (Path(out2["output"]).parents[1] / "run.log").read_text()
    assert "re-planned" in log2
    assert plan_path(app_env).is_file()
