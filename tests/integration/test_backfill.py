"""Backfills with real driver processes: the acceptance test (10 seeds, 3 at once, then a
missing-only rerun that launches none) and SIGTERM to the controller.

The acceptance test uses ``--mode 0`` (each driver runs its batches in its own process): with
the warm cluster up the same backfill took longer on the 2-core test machine (about 6.5 s to
start the cluster + 24 s, against 18-21 s in mode 0). One test runs two cold dask-mode runs at
once: each driver starts its own local cluster on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from switchyard.runs.store import RunStore

from .conftest import SWITCHYARD, cli, cli_json, copy_apps

SMALL = ("--mode", "0", "--arg", "tasks=2", "--arg", "samples_per_task=2000", "--poll", "0.2")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(apps, home): a fresh workspace for this module (its worker env is built by the first run)."""
    root = tmp_path_factory.mktemp("backfill")
    return copy_apps(root / "apps"), root / "home"


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t comes before a start at t)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_max_overlap_counts_touching_intervals_once():
    assert max_overlap([(0, 2), (2, 3), (1, 4)]) == 2
    assert max_overlap([(0, 5), (1, 2), (1, 3), (4, 6)]) == 3


def test_ten_seeds_three_at_once_then_missing_only_launches_none(workspace):
    apps, home = workspace
    t0 = time.monotonic()
    out = cli_json("backfill", "run", "montecarlo", "--key", "seed", "--from", "1", "--to", "10",
                   "--concurrency", "3", *SMALL, home=home, apps=apps, timeout=300)
    took = time.monotonic() - t0
    print(f"backfill of 10 seeds, 3 at once, mode 0 (env built by the first run): {took:.1f} s")
    assert out["status"] == "completed", out
    assert (out["launched"], out["completed"], out["failed"]) == (10, 10, 0)
    assert 2 <= out["peak_concurrency"] <= 3

    with RunStore(home / "switchyard.db") as store:
        runs = store.list(app="montecarlo", kind="app", limit=100)
    assert sorted(o.args["seed"] for o in runs) == list(range(1, 11))
    assert all(o.status.value == "completed" and o.args["tasks"] == 2 for o in runs)
    assert {o.options["origin"]["backfill"] for o in runs} == {out["id"]}
    assert {o.options["origin"]["value"] for o in runs} == set(range(1, 11))
    assert sorted(out["orchestrations"], key=int) == [str(s) for s in range(1, 11)]
    assert max_overlap([(o.started_at, o.ended_at) for o in runs]) <= 3

    dry = cli_json("backfill", "run", "montecarlo", "--key", "seed", "--from", "1", "--to", "10",
                   "--only", "missing", "--dry-run", home=home, apps=apps)
    assert dry["to_launch"] == 0 and {i["action"] for i in dry["items"]} == {"skip"}
    again = cli_json("backfill", "run", "montecarlo", "--key", "seed", "--from", "1", "--to", "10",
                     "--only", "missing", *SMALL, home=home, apps=apps)
    assert (again["status"], again["launched"], again["skipped"]) == ("completed", 0, 10)
    with RunStore(home / "switchyard.db") as store:
        assert len(store.list(app="montecarlo", kind="app", limit=100)) == 10
    listed = cli_json("backfill", "list", home=home, apps=apps)["backfills"]
    assert [b["id"] for b in listed] == [again["id"], out["id"]]
    assert listed[1]["completed"] == 10 and listed[1]["progress"] == 1.0


def test_sigterm_stops_launching_and_leaves_the_runs_alone(workspace):
    apps, home = workspace
    env = dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps))
    proc = subprocess.Popen([str(SWITCHYARD), "backfill", "run", "montecarlo", "--key", "seed", "--from", "101",
                             "--to", "106", "--concurrency", "2", *SMALL], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:  # wait for the first launch
        lines.append(line)
        if "seed=101: launched" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    text = "".join(lines) + rest
    assert proc.returncode == 1, text
    assert "stopped by signal SIGTERM" in text
    shown = json.loads(cli("backfill", "list", "--json", home=home, apps=apps).stdout)["backfills"][0]
    assert shown["status"] == "stopped" and 1 <= len(shown["launched"]) <= 2
    deadline = time.monotonic() + 60
    with RunStore(home / "switchyard.db") as store:
        while time.monotonic() < deadline:
            mine = [store.get(oid) for oid in shown["launched"].values()]
            if all(o.status.is_finished for o in mine):
                break
            time.sleep(0.3)
        # Nothing was cancelled: the launched runs finished by themselves; nothing else was launched.
        assert [o.status.value for o in mine] == ["completed"] * len(mine)
        seeds = {o.args["seed"] for o in store.list(app="montecarlo", kind="app", limit=100)}
    assert seeds & set(range(101, 107)) == {int(v) for v in shown["launched"]}


def test_concurrent_cold_dask_runs_each_get_their_own_cluster(workspace):
    apps, home = workspace
    proc = cli("backfill", "run", "montecarlo", "--key", "seed", "--keys", "101,102", "--concurrency", "2",
               "--mode", "4", "--arg", "tasks=2", "--arg", "samples_per_task=2000", "--poll", "0.2", "--json",
               home=home, apps=apps, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["completed"] == 2 and summary["peak_concurrency"] == 2
    store = RunStore(home / "switchyard.db")
    schedulers = set()
    for oid in summary["orchestrations"].values():
        o = store.get(oid)
        assert o.status.value == "completed", o.error
        log = (Path(o.run_dir) / "run.log").read_text()
        schedulers.add(log.split("connecting to the Dask scheduler at ", 1)[1].split()[0])
    assert len(schedulers) == 2, schedulers  # two private clusters, neither at the configured address
    assert not any(a.endswith(":8786") for a in schedulers)
    store.close()
