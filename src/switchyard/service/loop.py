"""The worker side of service mode: one long-running loop per worker slot.

The loop runs as a Dask task pinned to its worker and talks to the service only through
the board on the scheduler (:mod:`switchyard.service.board`), over its worker's own
connection: it needs no file of the workspace, so it runs on hosts that cannot see it.
Each call hands in the outcome of the job it ran and claims the next one (the board does
both at once, so two loops never take the same job). The app's ``work`` runs through the
same code as a run's batches. A thread sends the loop's heartbeat every second. The loop
ends when the board says so: the service stopped, or another loop took its slot over (a
restart: a Dask cancel cannot end a task that is already running).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

from switchyard.app import Partition
from switchyard.runs.task import BatchSpec, run_batch
from switchyard.service import board

HEARTBEAT_EVERY = 1.0
IDLE_POLL = 0.2


def _beat(call: Callable, app: str, slot: str, key: str, address: str, stats: dict,
          done: threading.Event) -> None:
    while not done.is_set():
        try:
            if not call(board.beat, app=app, slot=slot, key=key,
                        stats={"slot": slot, "worker": address, "pid": os.getpid(), **stats}):
                done.set()
                return
        except Exception:  # noqa: BLE001 - a missed beat shows as a stale heartbeat, never kills the loop
            pass
        done.wait(HEARTBEAT_EVERY)


def _outcome(job: dict, slot: str, spec: BatchSpec) -> dict:
    out = run_batch(spec, 0, Partition.from_dict(job["partition"]))
    # JSON-safe: the scheduler keeps it without having to import anything of the app
    return json.loads(json.dumps({
        "id": job["id"], "partition": job["partition"], "slot": slot, "worker": out.worker,
        "result": out.result, "error": out.error, "traceback": out.traceback,
        "seconds": round(out.ended_at - out.started_at, 6), "ended_at": out.ended_at,
    }, default=str))


def serve_loop(slot: str, key: str, spec: BatchSpec) -> str:
    """Take and run jobs until the board says to end; return why it ended."""
    from distributed import get_client, get_worker

    client = get_client()
    address = get_worker().address

    def call(fn, **kw):
        return client.run_on_scheduler(fn, **kw)

    stats = {"jobs_done": 0, "jobs_failed": 0}
    done = threading.Event()
    beater = threading.Thread(target=_beat, args=(call, spec.app, slot, key, address, stats, done),
                              daemon=True, name=f"heartbeat-{slot}")
    beater.start()
    outcome = None
    try:
        while True:
            got = call(board.tick, app=spec.app, slot=slot, key=key, outcome=outcome)
            outcome = None
            if not got["go"]:
                return "ended"
            if got["job"] is None:
                time.sleep(IDLE_POLL)
                continue
            outcome = _outcome(got["job"], slot, spec)
            stats["jobs_done" if outcome["error"] is None else "jobs_failed"] += 1
    finally:
        done.set()
