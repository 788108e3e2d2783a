"""The service's board on the scheduler: jobs, claims, results and heartbeats over Dask's own channel.

Everything a loop and the service exchange goes through the cluster's scheduler, so
loops run on workers that cannot see the workspace (SSH hosts without a shared file
system). The board lives in the scheduler process; the functions here run there through
``Client.run_on_scheduler``, called by the service (the caller's client) and by the loops
(their worker's client). The scheduler runs them one at a time on its event loop, so
claiming a job, recording a claim and taking a result are atomic without any lock.
Heartbeats are stamped with the scheduler's clock, so the workers' clocks do not matter.

A board per app: ``jobs`` (a FIFO of ``{"id", "partition"}``), ``claimed`` (slot -> the
job its loop runs), ``results`` (outcomes not yet collected), ``beats`` (slot -> the last
heartbeat), ``slots`` (slot -> the key of the loop that owns it; any other loop of that
slot ends at its next call), ``stopped`` and ``muted`` (test hook: slots whose heartbeats
are ignored, as a hung loop's would be missing). The board is lost with the scheduler,
and so are the loops: a service whose scheduler died is started again.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

_boards: dict[str, dict[str, Any]] = {}


def _board(app: str) -> dict[str, Any]:
    board = _boards.get(app)
    if board is None:
        board = _boards[app] = {"jobs": deque(), "claimed": {}, "results": deque(), "beats": {}, "slots": {},
                                "stopped": False, "muted": set()}
    return board


# ------------------------------------------------------------------------ run on the scheduler

def reset(app: str, slots: dict[str, str]) -> None:
    """A new service: slot -> key of its loop; jobs, claims, results and beats of an earlier one go."""
    _boards.pop(app, None)
    _board(app)["slots"].update(slots)


def own(app: str, slot: str, key: str) -> list[dict]:
    """``key`` now owns ``slot`` (a restart); the job the slot's previous loop had claimed goes back to
    the front of the queue. Returns the requeued jobs."""
    board = _board(app)
    board["slots"][slot] = key
    board["beats"].pop(slot, None)
    job = board["claimed"].pop(slot, None)
    if job is None:
        return []
    board["jobs"].appendleft(job)
    return [job]


def stop(app: str) -> None:
    """Every loop of ``app`` ends at its next call."""
    _board(app)["stopped"] = True


def put(app: str, jobs: list[dict]) -> int:
    """Queue ``jobs``; return the queue's length."""
    board = _board(app)
    board["jobs"].extend(jobs)
    return len(board["jobs"])


def beat(app: str, slot: str, key: str, stats: dict) -> bool:
    """Record a heartbeat of ``key``'s loop; return whether the loop should go on."""
    board = _board(app)
    if board["stopped"] or board["slots"].get(slot) != key:
        return False
    if slot not in board["muted"]:
        board["beats"][slot] = {**stats, "key": key, "at": time.time()}
    return True


def tick(app: str, slot: str, key: str, outcome: dict | None = None) -> dict:
    """A loop's one call per job: hand in ``outcome`` (of the job it claimed) and claim the next job.

    Returns ``{"go": False}`` when the loop must end (the service stopped, or another loop owns
    the slot), else ``{"go": True, "job": the next job or None}``.
    """
    board = _board(app)
    mine = not board["stopped"] and board["slots"].get(slot) == key
    if outcome is not None:
        board["results"].append(outcome)
        claimed = board["claimed"].get(slot)
        if claimed is not None and claimed["id"] == outcome["id"] and mine:
            del board["claimed"][slot]
        else:  # a replaced loop finished the job after all: do not run it again
            board["jobs"] = deque(j for j in board["jobs"] if j["id"] != outcome["id"])
    if not mine:
        return {"go": False}
    job = board["jobs"].popleft() if board["jobs"] else None
    if job is not None:
        board["claimed"][slot] = job
    return {"go": True, "job": job}


def take_results(app: str) -> list[dict]:
    """The outcomes handed in since the last call (each is given out once)."""
    board = _board(app)
    out = list(board["results"])
    board["results"].clear()
    return out


def workers(dask_scheduler=None) -> dict[str, str]:
    """Worker name -> address of every worker the scheduler knows."""
    return {str(ws.name): addr for addr, ws in dask_scheduler.workers.items()}


def observe(app: str, keys: list[str], muted: list[str], dask_scheduler=None) -> dict:
    """What the service needs to judge its loops, in one call.

    Returns ``{"now": scheduler clock, "tasks": key -> [state, worker address], "workers": name ->
    address, "beats": slot -> last heartbeat, "queued": jobs waiting, "claimed": slot -> job id}``.
    ``muted`` replaces the set of slots whose heartbeats are ignored (the test hook).
    """
    board = _board(app)
    board["muted"] = set(muted)
    tasks = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is not None:
            tasks[key] = [ts.state, ts.processing_on.address if ts.processing_on else None]
    return {"now": time.time(), "tasks": tasks, "workers": workers(dask_scheduler), "beats": dict(board["beats"]),
            "queued": len(board["jobs"]), "claimed": {s: j["id"] for s, j in board["claimed"].items()}}
