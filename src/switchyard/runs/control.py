"""Lifecycle commands on orchestrations: the one implementation behind the CLI, the HTTP API
and the Orchestrations page.

Every function sweeps first (so a run whose driver died reads as ``interrupted``
and can be resumed), applies the command through the store's transition table,
and for resume/retry/reprocess hands the orchestration to the queue, which starts
a new driver process as soon as a slot is free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

from switchyard.exceptions import InvalidTransition, NotFound
from switchyard.runs import launcher
from switchyard.runs.state import Orchestration, Status, allowed_commands
from switchyard.runs.store import RunStore

_last_sweep: dict[str, float] = {}


def open_store(home: Path | str | None = None) -> RunStore:
    """The run store of the workspace ``home`` (default: ``$SWITCHYARD_HOME``)."""
    return RunStore(Path(home) / "switchyard.db" if home is not None else None)


def sweep(store: RunStore, min_interval: float = 0.0) -> list[str]:
    """Declare orchestrations whose driver vanished (``interrupted``), stop the local cluster
    such a driver left behind, and start queued orchestrations that now have a slot.

    Cheap when nothing changed; readers call it before they read. ``min_interval`` skips
    the call when this process swept the same store less than that many seconds ago.
    """
    key = str(store.path)
    if min_interval and time.monotonic() - _last_sweep.get(key, -1e9) < min_interval:
        return []
    _last_sweep[key] = time.monotonic()
    swept = store.sweep()
    for oid in swept:
        try:
            launcher.reap_cluster(store.get(oid).run_dir)
        except Exception:
            pass  # best effort: the workers' death timeout still ends them
    launcher.pump(store)
    return swept


def pause(store: RunStore, oid: str) -> Orchestration:
    """Ask the driver to stop submitting; it reports ``paused`` once in-flight batches
    checkpointed."""
    sweep(store)
    return store.command(oid, "pause")


def cancel(store: RunStore, oid: str) -> Orchestration:
    """Stop for good: a running one goes through ``cancelling`` (its driver cancels what is in
    flight); a queued, paused or interrupted one is cancelled at once."""
    sweep(store)
    return store.command(oid, "cancel")


def resume(store: RunStore, oid: str) -> Orchestration:
    """Continue a paused or interrupted orchestration with a new driver (completed batches
    are not re-executed); it waits as ``pending`` while every slot is taken."""
    return _requeue(store, oid, "resume")


def retry(store: RunStore, oid: str) -> Orchestration:
    """Run a failed (or interrupted) orchestration again: only batches that are not
    completed run, dead letters with a fresh attempt budget."""
    return _requeue(store, oid, "retry")


def _requeue(store: RunStore, oid: str, command: str) -> Orchestration:
    sweep(store)
    store.command(oid, command)
    launcher.pump(store)
    return store.get(oid)


def reprocess(store: RunStore, oid: str, idxs: Iterable[int] | None = None) -> list[int]:
    """Put dead letters (all, or the batches ``idxs``) back to work; return their indices.

    A running orchestration's driver picks them up before it finishes; a failed,
    interrupted or paused one is retried/resumed (which runs every batch not completed).

    Raises:
        InvalidTransition: the orchestration has no driver to give them to and cannot be
            restarted (cancelled, completed, or pending).
    """
    sweep(store)
    o = store.get(oid)
    followup = {Status.FAILED: "retry", Status.INTERRUPTED: "retry", Status.PAUSED: "resume"}
    if o.status not in followup and o.status not in (Status.RUNNING, Status.PENDING):
        raise InvalidTransition(oid, o.status.value, "pending", "reprocess")
    idxs = store.requeue_dead(oid, idxs)
    if o.status in followup:
        _requeue(store, oid, followup[o.status])
    return idxs


COMMAND_FUNCTIONS = {"pause": pause, "resume": resume, "cancel": cancel, "retry": retry}


def apply(store: RunStore, oid: str, command: str) -> Orchestration:
    """Run the lifecycle command named ``command`` (pause, resume, cancel, retry)."""
    if command not in COMMAND_FUNCTIONS:
        raise InvalidTransition(oid, store.status(oid).value, "?", command)
    return COMMAND_FUNCTIONS[command](store, oid)


def set_max_running(store: RunStore, n: int | None) -> int:
    """Set how many orchestrations may run at once (None: back to the default); start queued
    ones if the limit grew. Returns the limit in force."""
    if n is not None and int(n) < 1:
        raise ValueError(f"max_running must be at least 1, got {n}")
    store.set_setting("max_running", None if n is None else str(int(n)))
    launcher.pump(store)
    return launcher.max_running(store)


# -- what readers show --------------------------------------------------------------------------

def summary(store: RunStore, oid: str) -> dict[str, Any]:
    """One orchestration as the CLI's ``show --json`` and the API's ``GET`` print it: the keys
    of ``run --json`` plus progress, batch counts per status, timestamps and legal commands."""
    return _summary(store.get(oid), store.batch_counts(oid))


def _summary(o: Orchestration, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "orchestration_id": o.id, "status": o.status.value, "batches": o.total_batches,
        "completed": o.completed_batches, "seconds": o.seconds, "output": o.output,
        "run_dir": o.run_dir, "mode": o.mode, "error": o.error,
        "progress": round(o.progress, 4), "counts": counts, "app": o.app, "kind": o.kind,
        "created_at": o.created_at, "started_at": o.started_at, "ended_at": o.ended_at,
        "heartbeat_at": o.heartbeat_at, "driver_pid": o.driver_pid,
        "queued": o.status is Status.PENDING and o.lease_owner is None,
        "commands": allowed_commands(o.status), "dead_letters": counts.get("dead", 0),
    }


def listing(store: RunStore, status: Any = None, app: str | None = None, kind: str | None = None,
            limit: int = 200) -> list[dict[str, Any]]:
    """Orchestrations newest first as summaries (without per-status counts, which cost a
    query each)."""
    rows = []
    for o in store.list(status=status or None, app=app, kind=kind, limit=limit):
        d = _summary(o, {})
        del d["counts"], d["dead_letters"]
        rows.append(d)
    return rows


def batch_rows(store: RunStore, oid: str) -> list[dict[str, Any]]:
    """The batches of ``oid`` as plain dicts (status, worker, attempts, start, duration, error)."""
    return [b.to_dict() for b in store.batches(oid)]


def dead_letters(store: RunStore, oid: str) -> list[dict[str, Any]]:
    """The dead-letter list: batch, items, last error, attempts."""
    return [{"idx": b.idx, "name": b.name, "items": b.items, "error": b.error, "attempts": b.attempts,
             "worker": b.worker} for b in store.dead_letters(oid)]


def log_path(store: RunStore, oid: str) -> Path:
    o = store.get(oid)
    if not o.run_dir:
        raise NotFound(f"orchestration '{oid}' has no run folder: it has no log")
    return Path(o.run_dir) / "run.log"

