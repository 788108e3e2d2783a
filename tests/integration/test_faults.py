"""Fault tests with real processes: kill -9 a Dask worker, kill -9 the driver (forked by the run
agent), mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil

from switchyard.app import AppEnv
from switchyard.runs.launcher import CLUSTER_FILE

from .conftest import cli_json
from .lifecycle_helpers import (assert_output_complete, checkpoints, forked, start_long_run, store_of,
                                wait_status, wait_until, warm_agent)


def expected_output(apps: Path, args: dict, out_dir: Path):
    """Start computing, in a process of its own, what an uninterrupted montecarlo run with
    ``args`` outputs (the app's work over its partitions, then its reduce); returns a callable
    that waits for it and gives the output file."""
    code = ("import sys, pathlib; sys.path.insert(0, sys.argv[1]); import json; from montecarlo import MonteCarlo; "
            "out = pathlib.Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True); "
            "app = MonteCarlo(MonteCarlo.Args(**json.loads(sys.argv[2])), out); "
            "print(app.reduce([app.work(p) for p in app.partitions()], out))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(apps / "montecarlo"), json.dumps(args), str(out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait() -> Path:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        return Path(out.strip().splitlines()[-1])

    return wait


def recorded_cluster(store, oid) -> dict:
    path = Path(store.get(oid).run_dir) / CLUSTER_FILE
    wait_until(path.is_file, 60, "the driver recording its cluster")
    return json.loads(path.read_text())["processes"]


def worker_process(nanny: int) -> psutil.Process | None:
    """The nanny's worker (forked, so it shares the nanny's command line; not its
    multiprocessing resource tracker)."""
    for child in psutil.Process(nanny).children():
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:  # a short-lived helper
            continue
    return None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_worker_is_replaced_and_every_batch_output_exists_once(run_home):
    apps, home = run_home
    tasks = 10
    oid = start_long_run(home, apps, tasks)
    store = store_of(home)
    nanny = recorded_cluster(store, oid)["127.0.0.1-0"]["pid"]
    wait_until(lambda: store.get(oid).completed_batches >= 2, 120, "2 batches completed")
    worker = wait_until(lambda: worker_process(nanny), 10, "the nanny's worker process")
    os.kill(worker.pid, signal.SIGKILL)
    assert store.get(oid).completed_batches < tasks  # really mid-run
    wait_status(store, oid, {"completed", "failed"}, timeout=120)
    assert_output_complete(store, oid, tasks)
    log = Path(store.get(oid).run_dir, "run.log").read_text()
    assert "[127.0.0.1-0]" in log and "restarting worker" in log.lower()  # the nanny brought it back
    assert "_executing_keys" not in log


def test_a_killed_driver_is_interrupted_then_resume_continues_from_checkpoints(run_home):
    """The driver is the run agent's forked child: killing it loses nothing, the agent lives on."""
    apps, home = run_home
    app_env = AppEnv("montecarlo", apps_dir=apps, workspace=home)
    agent_pid = warm_agent(app_env)
    tasks = 12
    oid = start_long_run(home, apps, tasks)
    store = store_of(home)
    uninterrupted = expected_output(apps, store.get(oid).args, home / "uninterrupted")  # meanwhile
    cluster = recorded_cluster(store, oid)
    wait_until(lambda: store.get(oid).completed_batches >= 2, 120, "2 batches completed")
    driver = store.get(oid).driver_pid
    assert psutil.Process(driver).ppid() == agent_pid and forked(home, "montecarlo", oid) == [driver]
    os.kill(driver, signal.SIGKILL)
    killed_at = time.time()
    before = {b.idx: b for b in store.batches(oid) if b.status.value == "completed"}
    files = checkpoints(store, oid)
    # Killed in the middle of a checkpoint group: one group file (1,000 indices), part-written;
    # every batch the store recorded as completed has its one record in it.
    assert len({path for path, _, _ in files.values()}) == 1 and 2 <= len(files) < tasks, files
    assert set(before) <= set(files), (sorted(before), sorted(files))

    wait_status(store, oid, {"interrupted"}, timeout=30)
    took = time.time() - killed_at
    assert took < 12, took  # the lease is 5 heartbeat intervals
    o = store.get(oid)
    assert "stopped heartbeating" in o.error and "resume it" in o.error
    # the sweep stopped the dead driver's local cluster: nothing leaks
    wait_until(lambda: not any(alive(p["pid"]) for p in cluster.values()), 15, "the orphan cluster ending")
    assert psutil.pid_exists(agent_pid)  # the agent outlives its child

    warm_agent(app_env)  # (a source edit meanwhile would replace it)

    out = cli_json("orchestrations", "resume", oid, home=home, apps=apps)
    assert out["status"] in ("pending", "running")
    wait_status(store, oid, {"completed"}, timeout=150)
    assert_output_complete(store, oid, tasks)  # one completion line per batch across both drivers
    after = {b.idx: b for b in store.batches(oid)}
    for idx, b in before.items():  # completed before the kill: never executed again
        assert (after[idx].ended_at, after[idx].worker, after[idx].attempts) == (b.ended_at, b.worker, 1)
    now = checkpoints(store, oid)
    assert all(now[i] == files[i] for i in files)  # checkpoints written before the kill: untouched
    leases = [e["message"] for e in store.events(oid) if e["kind"] == "lease"]
    assert len({m.split()[2] for m in leases if m.startswith("claimed by")}) == 2  # two drivers
    assert len(forked(home, "montecarlo", oid)) == 2  # the resumed driver was forked too
    # The output is an uninterrupted run's: the app's own work and reduce over the same args.
    output = Path(store.get(oid).output)
    expected = uninterrupted()
    pd.testing.assert_frame_equal(pd.read_parquet(output), pd.read_parquet(expected), check_exact=True)
    assert json.loads((output.parent / "summary.json").read_text()) == \
        json.loads((expected.parent / "summary.json").read_text())
