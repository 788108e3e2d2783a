"""Starting drivers: the queue of pending orchestrations, the driver process, and the
clean-up after a driver that died.

At most :func:`max_running` orchestrations run at once; the others wait as
``pending``. :func:`pump` hands free slots to the oldest pending ones: it claims
each in the store under the name of the driver it is about to start, then starts
that driver, which takes the claim over as its lease. Whoever may free or fill a
slot pumps: :func:`switchyard.agi.start_run`, resume and retry, every driver on
exit, and the readers' sweep (a dead driver frees its slot).

A driver that starts a local Dask cluster records the cluster's processes in
``runs/<id>/cluster.json``; when that driver is killed, :func:`reap_cluster`
(called by the sweep and by the next driver) stops them, so nothing leaks.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Protocol

from switchyard.exceptions import InvalidTransition, SwitchyardError
from switchyard.runs.store import RunStore

OWNER_ENV = "SWITCHYARD_DRIVER_OWNER"
MAX_RUNNING_ENV = "SWITCHYARD_MAX_RUNNING"
DEFAULT_MAX_RUNNING = 4
CLAIM_TTL = 60.0  # seconds a started driver has to take its claim over
CLUSTER_FILE = "cluster.json"
DRIVER_MODULE = "switchyard.runs.driver"


class DriverProcess(Protocol):
    """A started driver: a ``subprocess.Popen`` or a run agent's
    :class:`~switchyard.runs.agent.DriverHandle`."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...


def new_owner() -> str:
    """A fresh driver name, known before its process exists (so the queue can claim for it)."""
    return f"driver@{socket.gethostname()}-{secrets.token_hex(4)}"


def max_running(store: RunStore) -> int:
    """How many orchestrations may run at once: the store's ``max_running`` setting, else
    ``$SWITCHYARD_MAX_RUNNING``, else 4."""
    for value, where in ((store.setting("max_running"), f"the max_running setting of {store.path}"),
                         (os.environ.get(MAX_RUNNING_ENV), f"${MAX_RUNNING_ENV}")):
        if value:
            try:
                n = int(value)
            except ValueError:
                raise SwitchyardError(f"{where} is {value!r}, not a whole number: set it to e.g. 4 "
                                      "(switchyard orchestrations limit 4)") from None
            return max(1, n)
    return DEFAULT_MAX_RUNNING


def driver_environ(app_env, cython: bool, owner: str | None = None) -> dict[str, str]:
    """The environment of a driver: the app's worker environment, the workspace, the apps
    folder and the lease owner the queue claimed for."""
    from switchyard.cluster.env import worker_environ

    env = worker_environ(app_env, cython)
    env["SWITCHYARD_HOME"] = str(app_env.home)
    env["SWITCHYARD_APPS"] = str(app_env.apps_path)
    env.pop(OWNER_ENV, None)
    if owner:
        env[OWNER_ENV] = owner
    return env


def popen_driver(app_env, oid: str, cython: bool, owner: str | None = None,
                 module: str = DRIVER_MODULE) -> subprocess.Popen:
    """Start the driver process of ``oid`` in the app's worker environment; it outlives the caller."""
    from switchyard.cluster.env import env_python

    run_dir = app_env.home / "runs" / oid
    run_dir.mkdir(parents=True, exist_ok=True)
    env = driver_environ(app_env, cython, owner)
    with open(run_dir / "driver.out", "ab") as out:
        return subprocess.Popen(
            [str(env_python(app_env)), "-m", module, oid],
            env=env, cwd=run_dir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _ensure_certs(home) -> None:
    """Make the workspace's cluster certificates here when missing: a driver (in the app's
    worker environment, without ``cryptography``) only reads them for the cluster it starts."""
    from switchyard.cluster import tls
    from switchyard.exceptions import ClusterError

    try:
        tls.ensure(home)
    except ClusterError:
        pass  # the driver's LocalCluster says what to do, if it needs them


def spawn(store: RunStore, oid: str, owner: str | None = None) -> DriverProcess:
    """Start a driver for the recorded orchestration ``oid`` (its app, apps folder and mode
    come from the store): forked by the app environment's run agent
    (:mod:`switchyard.runs.agent`), else as a new process."""
    from switchyard.app import AppEnv
    from switchyard.modes import Mode
    from switchyard.runs import agent

    o = store.get(oid)
    app_env = AppEnv(o.app, apps_dir=o.options.get("apps_dir"), workspace=store.path.parent)
    _ensure_certs(app_env.home)
    module = o.options.get("driver") or DRIVER_MODULE
    cython = bool(o.mode & Mode.CYTHON)
    handle = agent.start_driver(app_env, oid, cython, owner=owner, module=module)
    if handle is not None:
        return handle
    return popen_driver(app_env, oid, cython, owner=owner, module=module)


def pump(store: RunStore, limit: int | None = None) -> dict[str, DriverProcess]:
    """Start drivers for the oldest pending orchestrations while slots are free; return
    the started ones (id -> driver: ``.pid``, ``.poll()``, ``.returncode``). Cheap (one read)
    when nothing can start."""
    limit = max_running(store) if limit is None else int(limit)
    busy, waiting = store.queue_state()
    if not waiting or busy >= limit:
        return {}
    started: dict[str, DriverProcess] = {}
    while True:
        owner = new_owner()
        oid = store.claim_next(limit, owner, ttl=CLAIM_TTL)
        if oid is None:
            return started
        try:
            started[oid] = spawn(store, oid, owner)
        except (OSError, SwitchyardError) as e:
            try:
                store.command(oid, "interrupt", error=f"could not start its driver: {e}: "
                                                      "install the app's environment, then resume it")
            except InvalidTransition:
                pass  # cancelled meanwhile


# -- the local cluster of a driver ------------------------------------------------------------

def record_cluster(run_dir: Path, pids: dict[str, int], address: str | None) -> None:
    """Remember the processes of a driver's local cluster (for :func:`reap_cluster`)."""
    from switchyard.cluster import reaper

    reaper.record(Path(run_dir) / CLUSTER_FILE, pids, address)


def forget_cluster(run_dir: Path) -> None:
    from switchyard.cluster import reaper

    reaper.forget(Path(run_dir) / CLUSTER_FILE)


def reap_cluster(run_dir: Path | str | None) -> list[int]:
    """Kill the recorded local cluster of a driver that is gone; return the pids killed.

    Only processes on this host whose start time matches the record are touched (a
    recycled pid belongs to someone else), with their children (a nanny's worker):
    :func:`switchyard.cluster.reaper.reap`.
    """
    from switchyard.cluster import reaper

    if not run_dir:
        return []
    return reaper.reap(Path(run_dir) / CLUSTER_FILE)


def _alive(pid: int | None, before: float) -> bool:
    """Whether ``pid`` is a live process (not a zombie) started no later than ``before``."""
    from switchyard.cluster import reaper

    return reaper.driver_alive(pid, before)
