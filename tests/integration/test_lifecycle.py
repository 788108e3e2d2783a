"""Pause, resume, cancel and the queue, with real driver processes and real Dask clusters,
driven through the CLI like an operator would."""

from __future__ import annotations

import time

import psutil

from switchyard.runs import control
from switchyard.runs.launcher import CLUSTER_FILE

from .conftest import cli, cli_json
from .lifecycle_helpers import (assert_output_complete, checkpoints, event_time, start_long_run,
                                status_of, store_of, tail_log, wait_status, wait_until)


def cluster_pids(store, oid) -> list[int]:
    import json
    from pathlib import Path

    path = Path(store.get(oid).run_dir) / CLUSTER_FILE
    wait_until(path.is_file, 60, "the driver recording its cluster")
    return [p["pid"] for p in json.loads(path.read_text())["processes"].values()]


def test_pause_then_resume_completes_without_re_executing(run_home):
    apps, home = run_home
    tasks = 12
    oid = start_long_run(home, apps, tasks)
    store = store_of(home)
    wait_until(lambda: store.get(oid).completed_batches >= 2, 120, "2 batches completed")
    assert control.pause(store, oid).status.value == "pausing"  # (the CLI's pause is this call)
    wait_status(store, oid, {"paused"}, timeout=60)
    paused_at, asked_at = event_time(store, oid, "paused"), event_time(store, oid, "pause")
    batches = store.batches(oid)
    # the batches that were executing when the pause was asked finished first: the pause
    # took at most the longest of them plus 1 s
    finishing = [b.seconds for b in batches if b.ended_at and b.ended_at > asked_at]
    assert paused_at - asked_at <= max(finishing, default=0) + 1.0, (paused_at - asked_at, finishing)
    done = {b.idx for b in batches if b.status.value == "completed"}
    assert 2 <= len(done) < tasks
    assert all(b.status.value == "pending" for b in batches if b.idx not in done)
    files = checkpoints(store, oid)
    assert set(files) == done
    time.sleep(2)  # nothing starts while paused
    assert checkpoints(store, oid) == files and store.get(oid).completed_batches == len(done)

    out = cli_json("orchestrations", "resume", oid, home=home, apps=apps)
    assert out["status"] in ("pending", "running")
    wait_status(store, oid, {"completed"}, timeout=120)
    assert_output_complete(store, oid, tasks)
    resumed_at = event_time(store, oid, "resume")
    later = [b for b in store.batches(oid) if b.idx not in done]
    assert all(b.started_at > resumed_at for b in later)  # none started while paused
    after = checkpoints(store, oid)
    assert all(after[i] == files[i] for i in done)  # completed batches never ran again
    shown = cli_json("orchestrations", "show", oid, home=home, apps=apps)
    assert {"orchestration_id", "status", "batches", "completed", "seconds", "output"} <= set(shown)
    assert shown["progress"] == 1.0 and shown["counts"]["completed"] == tasks


def test_cancel_stops_for_good_and_resume_is_refused(run_home):
    apps, home = run_home
    tasks = 12
    oid = start_long_run(home, apps, tasks)
    store = store_of(home)
    pids = cluster_pids(store, oid)
    wait_until(lambda: store.get(oid).completed_batches >= 1, 120, "a batch completed")
    assert control.cancel(store, oid).status.value == "cancelling"  # (the CLI's cancel is this call)
    wait_status(store, oid, {"cancelled"}, timeout=30)
    counts = store.batch_counts(oid)
    assert counts["pending"] == counts["running"] == 0 and counts["cancelled"] >= 1
    files = checkpoints(store, oid)
    # the driver closes its cluster: the workers that had queued batches are gone
    wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), 30, "the cluster stopping")
    time.sleep(1.5)
    assert checkpoints(store, oid) == files  # no further batch finished
    refused = cli("orchestrations", "resume", oid, home=home, apps=apps)
    assert refused.returncode == 2
    assert f"orchestration {oid} is cancelled: cannot resume it" in refused.stderr
    assert status_of(store, oid) == "cancelled"


def test_at_most_max_running_run_at_once_and_the_queue_starts_the_next(run_home):
    apps, home = run_home
    store = store_of(home)
    assert cli_json("orchestrations", "limit", "1", home=home, apps=apps)["max_running"] == 1
    try:
        first = start_long_run(home, apps, tasks=12, mode=0)
        second = start_long_run(home, apps, tasks=2, mode=0)
        shown = control.summary(store, second)
        assert shown["status"] == "pending" and shown["queued"] is True, tail_log(store, first)
        assert store.status(first).value == "running"
        wait_status(store, first, {"completed"}, timeout=90)
        wait_status(store, second, {"completed"}, timeout=90)
        assert store.get(second).started_at >= store.get(first).ended_at
    finally:
        cli_json("orchestrations", "limit", "--reset", home=home, apps=apps)
