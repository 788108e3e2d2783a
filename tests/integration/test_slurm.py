"""Warm clusters on a real single-node SLURM (tests/integration/slurm.py): worker jobs submitted
through dask-jobqueue, a dask-mode run on them, adaptive scaling, and ``down`` that leaves
no job and no worker process. ``cluster up``, ``run`` and ``cluster down`` are separate CLI
processes, as an operator runs them."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from switchyard.app import AppEnv
from switchyard.cluster.jobqueue import job_of_worker, tag_of
from switchyard.settings import update_cluster

from . import slurm
from .conftest import REPO, copy_apps

pytestmark = pytest.mark.skipif(slurm.missing() is not None, reason=slurm.missing() or "")
SWITCHYARD = Path(sys.executable).parent / "switchyard"
FLIGHT = ["--arg", "files=4", "--arg", "rows_per_file=400"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(SLURM, apps, home): one SLURM and one workspace for the module; flight and the engine app."""
    root = tmp_path_factory.mktemp("slurm")
    apps = copy_apps(root / "apps")
    shutil.copytree(REPO / "benchmarks" / "apps" / "engine", apps / "engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cluster = slurm.SlurmCluster(root / "slurm").start()
    home = root / "home"
    try:
        yield cluster, apps, home
    finally:
        for app in ("flight", "engine"):
            sy(cluster, apps, home, "cluster", "down", app, check=False)  # what a failed test left
        cluster.stop()


def sy(cluster, apps: Path, home: Path, *args: str, check: bool = True, timeout: float = 240):
    """``switchyard ARGS --json`` (text output when ``check`` is false)."""
    env = {**os.environ, **cluster.env, "SWITCHYARD_HOME": str(home), "SWITCHYARD_APPS": str(apps)}
    proc = subprocess.run([str(SWITCHYARD), *args, *(["--json"] if check else [])], capture_output=True,
                          text=True, env=env, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)
    return proc


def workers_of_scheduler(address: str) -> list[psutil.Process]:
    """Every ``dask worker`` process on this machine that joins the scheduler at ``address``."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "distributed.cli.dask_worker" in cmd and address in cmd:
            out.append(p)
    return out


def job_id_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get("SLURM_JOB_ID")
    except psutil.Error:
        return None


def batch_workers(home: Path, oid: str) -> set[str]:
    with sqlite3.connect(home / "switchyard.db") as db:
        return {w for (w,) in db.execute("SELECT worker FROM batches WHERE orchestration_id = ?", (oid,))}


def _cluster_section(apps: str, home: str) -> None:
    from switchyard.app import AppEnv
    from switchyard.ui import cluster_panel

    cluster_panel.render(AppEnv("flight", apps_dir=apps, workspace=home))


def test_slurm_cluster_up_run_down(site, monkeypatch):
    cluster, apps, home = site
    update_cluster(apps / "flight" / "app_settings.toml", kind="slurm",
                   jobqueue={"queue": cluster.partition, "walltime": "00:05:00", "jobs": 2, "cores": 1,
                             "memory": "1GB"})
    tag = tag_of(AppEnv("flight", apps, home))

    # INSTALL: the worker environment, checked from inside a job on the queue.
    inst = sy(cluster, apps, home, "install", "flight", check=False)
    assert inst.returncode == 0, inst.stderr[-2000:]
    assert f"inside a job: ready {slurm.NODE}" in inst.stdout, inst.stdout[-2000:]

    st = sy(cluster, apps, home, "cluster", "up", "flight")
    assert st["state"] == "up" and st["kind"] == "slurm" and st["workers"] == 2, st
    listed = {j["id"]: j for j in cluster.jobs(tag)}
    assert len(listed) == 2 and all(j["state"] == "RUNNING" for j in listed.values()), listed
    assert {j["id"] for j in st["jobs"]} == set(listed)
    assert all(len(j["workers"]) == 1 for j in st["jobs"]), st["jobs"]
    address = st["address"]
    assert address.startswith("tls://")
    # The job script dask-jobqueue wrote: named with the tag, lifetime below the walltime, no caller env.
    script = (home / "clusters" / tag / "worker-job.sh").read_text()
    assert f"#SBATCH -J {tag}" in script and "#SBATCH --export=NONE" in script
    assert "--lifetime 270s" in script and "-t 00:05:00" in script and "--tls-key" in script

    text = sy(cluster, apps, home, "cluster", "status", "flight", check=False).stdout
    assert "SLURM jobs: 2" in text
    # The Orchestrate page's Cluster section lists the jobs with their SLURM ids and states.
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    page = AppTest.from_function(_cluster_section, args=(str(apps), str(home)), default_timeout=30).run()
    assert not page.exception, page.exception
    tables = [t.value for t in page.dataframe]
    jobs = next(t for t in tables if "job" in t.columns)
    assert set(jobs["job"]) == set(listed) and set(jobs["state"]) == {"RUNNING"}, jobs
    assert any("SLURM jobs: 2" in c.value for c in page.caption)

    with ThreadPoolExecutor(1) as pool:  # the mode-0 reference runs meanwhile, in its own driver
        reference = pool.submit(sy, cluster, apps, home, "run", "flight", "--mode", "0", *FLIGHT)
        out = sy(cluster, apps, home, "run", "flight", "--mode", "4", *FLIGHT)
        ref = reference.result()
    assert out["status"] == "completed" and out["completed"] == out["batches"] > 0, out
    # Every batch ran in a worker of a job squeue lists, and no other worker joined the scheduler.
    now = {j["id"] for j in cluster.jobs(tag)}
    used = batch_workers(home, out["orchestration_id"])
    assert used and all(job_of_worker(tag, w) in now for w in used), (used, now)
    procs = workers_of_scheduler(address)
    assert procs and all(job_id_of(p) in now for p in procs), [(p.pid, job_id_of(p)) for p in procs]
    # Nanny + worker per job.
    assert {job_id_of(p) for p in procs} == now

    a, b = pd.read_parquet(out["output"]), pd.read_parquet(ref["output"])
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)

    down = sy(cluster, apps, home, "cluster", "down", "flight")
    assert down["left"] == [] and set(down["jobs_cancelled"]) == now, down
    assert cluster.jobs(tag) == []
    deadline = time.monotonic() + 15
    while workers_of_scheduler(address) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers_of_scheduler(address) == []

    # A job of a caller that crashed before recording anything: `down` finds it by its name.
    stray = cluster.run("sbatch", "--parsable", "-J", tag, "-p", cluster.partition, "-o", "/dev/null",
                        "--wrap", "sleep 60").stdout.strip()
    assert stray in {j["id"] for j in cluster.jobs(tag)}
    gone = sy(cluster, apps, home, "cluster", "status", "flight")
    assert gone["state"] == "down" and [j["id"] for j in gone["jobs"]] == [stray], gone
    again = sy(cluster, apps, home, "cluster", "down", "flight")
    assert again["jobs_cancelled"] == [stray] and cluster.jobs(tag) == [], again


def test_adaptive_slurm_cluster_scales_up_for_the_work(site):
    cluster, apps, home = site
    shared = home.parent / "shared"
    update_cluster(apps / "engine" / "app_settings.toml", kind="slurm",
                   jobqueue={"queue": cluster.partition, "walltime": "00:05:00", "minimum_jobs": 1,
                             "maximum_jobs": 3, "scale_down_after": 2, "cores": 1, "memory": "1GB",
                             "shared": str(shared)})
    tag = tag_of(AppEnv("engine", apps, home))
    st = sy(cluster, apps, home, "cluster", "up", "engine")
    assert st["state"] == "up" and st["workers"] == 1 and len(cluster.jobs(tag)) == 1, st
    # With `shared`: the jobs' worker environment, job script, logs and certificates are there.
    python = shared / "envs" / "engine" / "bin" / "python"
    script = (shared / "clusters" / tag / "worker-job.sh").read_text()
    assert f"{python} -m distributed.cli.dask_worker" in script and f"{shared}/clusters/{tag}/tls/" in script
    assert [p.cmdline()[0] for p in workers_of_scheduler(st["address"])] == [str(python)] * 2  # nanny + worker

    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(len([j for j in cluster.jobs(tag) if j["state"] == "RUNNING"]))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = sy(cluster, apps, home, "run", "engine", "--mode", "4", "--arg", "n=12", "--arg", "work_ms=700")
    finally:
        done.set()
        watcher.join(5)
    assert out["status"] == "completed" and out["completed"] == 12, out
    assert Path(out["output"]).read_text().strip() == "12"
    # The plan was made on the one worker up at the start; the keeper submitted more jobs for the
    # twelve batches waiting, and they joined and took work.
    assert max(seen) >= 2, seen
    used = batch_workers(home, out["orchestration_id"])
    assert len(used) >= 2 and all(job_of_worker(tag, w) for w in used), used

    # A job that ends mid-run (scancel here; a walltime or a node alike): its batches run again on
    # the other workers, and no attempt is used.
    from switchyard.cluster.connect import connect
    from switchyard.cluster.record import read_record

    read_record(AppEnv("engine", apps, home))  # this process's clients present the workspace's certificates
    started = sy(cluster, apps, home, "run", "engine", "--mode", "4", "--arg", "n=6", "--arg", "work_ms=2500",
                 "--detach")
    oid = started["orchestration_id"]
    with connect(st["address"]) as client:
        deadline = time.monotonic() + 30
        busy: dict = {}
        while time.monotonic() < deadline:
            info = client.scheduler_info(n_workers=-1)["workers"]
            busy = {job_of_worker(tag, str(info[a]["name"])): n for a, n in client.processing().items()
                    if a in info and n}
            if len(busy) >= 2:
                break
            time.sleep(0.2)
        assert len(busy) >= 2, busy
        victim = sorted(busy)[-1]
        cluster.run("scancel", victim)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with sqlite3.connect(home / "switchyard.db") as db:
            (status,) = db.execute("SELECT status FROM orchestrations WHERE id = ?", (oid,)).fetchone()
        if status in ("completed", "failed", "cancelled", "interrupted"):
            break
        time.sleep(0.3)
    with sqlite3.connect(home / "switchyard.db") as db:
        rows = db.execute("SELECT status, attempts, worker FROM batches WHERE orchestration_id = ?", (oid,)).fetchall()
    assert status == "completed" and len(rows) == 6, (status, rows)
    assert all(r[0] == "completed" and r[1] == 1 for r in rows), rows
    assert victim not in {job_of_worker(tag, r[2]) for r in rows}, (victim, rows)

    # Idle jobs above the minimum are retired and cancelled after scale_down_after (2 s here).
    deadline = time.monotonic() + 20
    while len(cluster.jobs(tag)) > 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(cluster.jobs(tag)) == 1, cluster.jobs(tag)

    down = sy(cluster, apps, home, "cluster", "down", "engine")
    assert down["left"] == [] and cluster.jobs(tag) == []
