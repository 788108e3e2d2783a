"""The worker side of service mode: one long-running loop per worker slot.

The loop runs as a Dask task pinned to its worker. It claims job files from
``jobs/`` (a rename into ``running/`` is the claim, so two loops never take the
same job), runs the app's ``work`` on each through the same code as a run's
batches, and writes the outcome to ``done/`` or ``failed/``. A thread writes the
loop's heartbeat file every second. The loop ends when the ``stop`` file appears, or ``cancel/<its key>`` when the
service replaces it (a Dask cancel cannot end a task that is already running).

Test hook: while ``hooks/<slot>.no-heartbeat`` exists the loop keeps working but
sends no heartbeat, as a hung loop would.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from switchyard.app import Partition
from switchyard.runs.task import BatchSpec, run_batch
from switchyard.workspace import atomic_write_json, atomic_write_text

HEARTBEAT_EVERY = 1.0
IDLE_POLL = 0.2


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def _beat(root: Path, slot: str, key: str, address: str, stats: dict, done: threading.Event) -> None:
    hook = root / "hooks" / f"{slot}.no-heartbeat"
    while not done.is_set():
        if not hook.exists():
            atomic_write_json(root / "heartbeats" / f"{slot}.json", {
                "slot": slot, "key": key, "worker": address, "pid": os.getpid(), "at": time.time(), **stats})
        done.wait(HEARTBEAT_EVERY)


def _claim(root: Path, slot: str) -> Path | None:
    for job in sorted((root / "jobs").glob("*.json")):
        mine = root / "running" / f"{slot}--{job.name}"
        try:
            os.rename(job, mine)
            return mine
        except FileNotFoundError:  # another loop took it first
            continue
    return None


def serve_loop(service_dir: str, slot: str, key: str, spec: BatchSpec) -> str:
    """Take and run jobs until the service's stop file appears; return why it ended."""
    root = Path(service_dir)
    for sub in ("jobs", "running", "done", "failed", "heartbeats"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stats = {"jobs_done": 0, "jobs_failed": 0}
    done = threading.Event()
    beat = threading.Thread(target=_beat, args=(root, slot, key, _worker_address(), stats, done), daemon=True,
                            name=f"heartbeat-{slot}")
    beat.start()
    try:
        cancel = root / "cancel" / key
        while not (root / "stop").exists() and not cancel.exists():
            claimed = _claim(root, slot)
            if claimed is None:
                time.sleep(IDLE_POLL)
                continue
            job = json.loads(claimed.read_text())
            outcome = run_batch(spec, 0, Partition.from_dict(job["partition"]))
            ok = outcome.error is None
            stats["jobs_done" if ok else "jobs_failed"] += 1
            atomic_write_text(root / ("done" if ok else "failed") / f"{job['id']}.json", json.dumps({
                "id": job["id"], "partition": job["partition"], "slot": slot, "worker": outcome.worker,
                "result": outcome.result, "error": outcome.error, "traceback": outcome.traceback,
                "seconds": round(outcome.ended_at - outcome.started_at, 6), "ended_at": outcome.ended_at,
            }, default=str))
            claimed.unlink(missing_ok=True)
        return "cancelled" if cancel.exists() else "stopped"
    finally:
        done.set()
