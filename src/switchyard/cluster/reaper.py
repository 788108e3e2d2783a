"""Recorded cluster processes of a run's driver, and the clean-up after a driver that died.

A driver that starts a local cluster records its processes (pid + create time) in a
file of its run folder; when that driver is gone, :func:`reap` kills them with the
one reaper (:func:`switchyard.cluster.hostops.stop`, also what stops warm clusters),
so nothing leaks. Only this machine's processes whose create time matches are
touched: a recycled pid belongs to someone else.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from switchyard.cluster import hostops
from switchyard.workspace import atomic_write_json


def record(path: Path, pids: dict[str, int], address: str | None) -> None:
    """Write name -> pid (with each create time) of a driver's cluster to ``path``."""
    procs = {}
    for name, pid in pids.items():
        started = hostops.create_time(pid)
        if started is not None:  # else already gone
            procs[name] = {"pid": pid, "started": started}
    atomic_write_json(Path(path), {
        "host": socket.gethostname(), "driver_pid": os.getpid(), "address": address,
        "processes": procs, "written_at": time.time(),
    })


def forget(path: Path) -> None:
    Path(path).unlink(missing_ok=True)


def reap(path: Path) -> list[int]:
    """Kill the processes recorded at ``path`` when their driver is gone; the pids killed.

    Nothing happens when the file is missing or unreadable, was written on another
    machine (its own sweep or driver reaps them), or its driver still runs.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if doc.get("host") != socket.gethostname():
        return []
    if driver_alive(doc.get("driver_pid"), doc.get("written_at", 0)):
        return []  # the recording driver still runs (a slow heartbeat): leave its cluster alone
    procs = []
    for rec in (doc.get("processes") or {}).values():
        try:
            procs.append({"pid": int(rec["pid"]), "started": float(rec["started"])})
        except (KeyError, TypeError, ValueError):
            continue
    killed = hostops.stop(procs, timeout=0)["killed"] if procs else []
    path.unlink(missing_ok=True)
    return killed


def driver_alive(pid: int | None, before: float) -> bool:
    """Whether ``pid`` is a live process (not a zombie) started no later than ``before``
    (and not this process)."""
    import psutil

    if not pid or pid == os.getpid():
        return False
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= before
    except psutil.Error:
        return False
