"""The service watcher: restarts unhealthy loops by itself, between any operator action.

A process of its own (``python -m switchyard.service.watcher APP``) started with the
service and stopped with it, on the machine of the workspace. Once a second it observes
the loops (as a STATUS does), restarts the unhealthy ones within the gate's
``max_restart_rate`` (:func:`switchyard.service.health.restart_allowed`; a restart beyond
it is held and shown), collects the loops' results into ``done/`` and ``failed/``,
mirrors their heartbeats into ``heartbeats/`` and writes ``health.json`` (at once after a
restart, else every few seconds). Each restart is recorded in ``state.json`` with its
reason, so the health table and ``health.json`` show it.

It holds a lease, like the scheduler: one row per app in the workspace's store
(``service_watchers``), renewed every 2 s by a thread of its own, independent of the
work, with a TTL (30 s) longer than the store's lock wait; a second watcher of the same
app refuses to start while the lease is live. It ends when the service is stopped (or
started anew), when the warm cluster goes down, when its scheduler has not answered for
30 s, on SIGTERM/SIGINT, or when it lost its lease.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from switchyard.app import AppEnv
from switchyard.exceptions import ClusterError, SwitchyardError

log = logging.getLogger("switchyard.service.watcher")

TICK = 1.0
LEASE_TTL = 30.0  # longer than the store's 10 s lock wait
RENEW_EVERY = 2.0
HEALTH_EVERY = 5.0
CLEANUP_EVERY = 60.0
SCHEDULER_GONE = 30.0  # seconds without an answer from the scheduler before the watcher ends

_DDL = """CREATE TABLE IF NOT EXISTS service_watchers (
    app TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    service_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at REAL NOT NULL
)"""


# ----------------------------------------------------------------------------- the lease

class Lease:
    """The watcher lease of one app in the workspace's run store."""

    def __init__(self, app_env: AppEnv):
        from switchyard.runs.store import RunStore

        self.app = app_env.app
        self.store = RunStore(app_env.home / "switchyard.db")
        with self.store.transaction() as c:
            c.execute(_DDL)

    def take(self, owner: str, service_id: str, now: float | None = None) -> dict | None:
        """Take or renew the lease for ``owner``; return the other live holder when it cannot (None: taken)."""
        now = time.time() if now is None else now
        with self.store.transaction() as c:
            row = c.execute("SELECT * FROM service_watchers WHERE app = ?", (self.app,)).fetchone()
            if row is not None and row["owner"] != owner and row["expires_at"] > now:
                return dict(row)
            if row is not None and row["owner"] == owner:
                c.execute("UPDATE service_watchers SET heartbeat_at = ?, expires_at = ? WHERE app = ?",
                          (now, now + LEASE_TTL, self.app))
            else:
                c.execute("INSERT OR REPLACE INTO service_watchers (app, owner, host, pid, service_id, started_at, "
                          "heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (self.app, owner, socket.gethostname(), os.getpid(), service_id, now, now,
                           now + LEASE_TTL))
        return None

    def release(self, owner: str) -> None:
        with self.store.transaction() as c:
            c.execute("DELETE FROM service_watchers WHERE app = ? AND owner = ?", (self.app, owner))

    def live(self, now: float | None = None) -> dict | None:
        rows = self.store._read("SELECT * FROM service_watchers WHERE app = ?", (self.app,))
        if not rows or rows[0]["expires_at"] <= (time.time() if now is None else now):
            return None
        return dict(rows[0])


def describe(app_env: AppEnv) -> dict:
    """What STATUS shows of the watcher: ``{"running": bool}`` plus pid, host, started_at, heartbeat_at."""
    if not (app_env.home / "switchyard.db").exists():
        return {"running": False}
    try:
        held = Lease(app_env).live()
    except SwitchyardError:
        return {"running": False}
    if held is None:
        return {"running": False}
    return {"running": True, **{k: held[k] for k in ("pid", "host", "started_at", "heartbeat_at")}}


def _renew(lease: Lease, owner: str, service_id: str, lost: threading.Event, done: threading.Event) -> None:
    while not done.wait(RENEW_EVERY):
        try:
            holder = lease.take(owner, service_id)
        except SwitchyardError as e:  # the store is busy: the TTL covers a few missed renewals
            log.warning("lease renewal: %s", e)
            continue
        if holder is not None:
            log.error("the watcher lease was taken by pid %s on %s: stopping", holder["pid"], holder["host"])
            lost.set()
            return


# ----------------------------------------------------------------------------- the watcher

def watch(app_env: AppEnv, stop: threading.Event | None = None, tick: float = TICK) -> str:
    """Watch the service of ``app_env`` until it ends; return why the watcher ended.

    Raises:
        SwitchyardError: no service runs, or another watcher holds the lease.
    """
    from switchyard.service import service as svc

    stop = stop or threading.Event()
    state = svc.read_state(app_env)
    if not state or state.get("status") != "running":
        raise SwitchyardError(f"the service of '{app_env.app}' is not running: nothing to watch")
    service_id = state.get("id", "")
    owner = f"watcher@{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    lease = Lease(app_env)
    holder = lease.live()
    client = None
    if holder is None:
        # connected before the lease is taken: once start_detached sees the lease, the watcher watches
        client = svc.client_for(app_env, state["scheduler"], timeout=30)
        holder = lease.take(owner, service_id)
    if holder is not None:
        if client is not None:
            _close(client)
        raise SwitchyardError(f"a watcher of '{app_env.app}' already runs (pid {holder['pid']} on {holder['host']})")
    lost, done = threading.Event(), threading.Event()
    threading.Thread(target=_renew, args=(lease, owner, service_id, lost, done), daemon=True,
                     name="watcher-lease").start()
    log.info("watcher %s of '%s' started (scheduler %s)", owner, app_env.app, state["scheduler"])
    why = "stopped"
    last_health = last_cleanup = 0.0
    unanswered_since = None
    try:
        while True:
            if stop.is_set():
                why = "signal"
                break
            if lost.is_set():
                why = "lease lost"
                break
            state = svc.read_state(app_env)
            if not state or state.get("status") != "running" or state.get("id", "") != service_id:
                why = ("service stopped" if not state or state.get("status") != "running"
                       else f"service {service_id} replaced by {state.get('id')}")
                break
            from switchyard.cluster.record import read_record

            if read_record(app_env) is None:
                why = "cluster down"
                break
            try:
                client = client or svc.client_for(app_env, state["scheduler"], timeout=5)
                last_health = _tick(svc, client, app_env, service_id, last_health)
                if time.time() - last_cleanup >= CLEANUP_EVERY:
                    from switchyard.service import artifacts

                    artifacts.cleanup(svc.service_dir(app_env))
                    last_cleanup = time.time()
                unanswered_since = None
            except Exception as e:  # noqa: BLE001 - the watcher outlives any one failed tick
                log.warning("tick: %s: %s", type(e).__name__, e)
                if isinstance(e, (OSError, TimeoutError, ClusterError)) or "Comm" in type(e).__name__:
                    if client is not None:
                        _close(client)
                        client = None
                    unanswered_since = unanswered_since or time.monotonic()
                    if time.monotonic() - unanswered_since > SCHEDULER_GONE:
                        why = f"scheduler {state['scheduler']} gone"
                        break
            stop.wait(tick)
    finally:
        done.set()
        if client is not None:
            _close(client)
        try:
            lease.release(owner)
        except SwitchyardError:
            pass
        log.info("watcher %s ended: %s", owner, why)
    return why


def _tick(svc, client, app_env: AppEnv, service_id: str, last_health: float) -> float:
    """One observation; return when health.json was last written."""
    with svc.locked(app_env):
        state = svc.read_state(app_env)
        if not state or state.get("status") != "running" or state.get("id", "") != service_id:
            return last_health
        held_before = json.dumps(state.get("held", {}), sort_keys=True)
        rows, by_slot = svc.observe(client, app_env, state)
        restarted = svc.restart_unhealthy(client, app_env, state, by_slot, log.info, 0,
                                          limit=svc.gate_settings(app_env))
        if restarted:
            rows, _ = svc.observe(client, app_env, state)
        changed = restarted or json.dumps(state.get("held", {}), sort_keys=True) != held_before
        if changed:
            svc.save_state(app_env, state)
    svc.collect(client, app_env)
    if changed or time.time() - last_health >= HEALTH_EVERY:
        svc.write_health(app_env, state, "running" if all(r["healthy"] for r in rows) else "degraded", rows)
        return time.time()
    return last_health


def _close(client) -> None:
    try:
        client.close(timeout=5)
    except Exception:  # noqa: BLE001 - a client of a gone scheduler may fail to close
        pass


# ----------------------------------------------------------------------------- start / stop

def log_path(app_env: AppEnv) -> Path:
    return app_env.home / "service" / app_env.app / "watcher.log"


def start_detached(app_env: AppEnv, wait: float = 60.0) -> dict:
    """Start the watcher of ``app_env`` in the background unless one runs; return its lease.

    Raises:
        ClusterError: it did not take its lease within ``wait`` seconds (its log says why).
    """
    lease = Lease(app_env)
    running = lease.live()
    if running:
        return running
    path = log_path(app_env)
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "switchyard.service.watcher", app_env.app, "--apps-dir", str(app_env.apps_path),
            "--home", str(app_env.home)]
    from switchyard.environ import child_environ

    with open(path, "ab") as out:  # a long-lived process: none of the caller's secrets
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=app_env.home, env=child_environ(), start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        held = lease.live()
        if held and held["pid"] == proc.pid:
            return held
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise ClusterError(f"the service watcher of '{app_env.app}' did not start (exit {proc.poll()}): see {path}")


def stop_running(app_env: AppEnv, wait: float = 15.0) -> dict | None:
    """Stop the watcher of ``app_env`` (SIGTERM to the lease holder on this host); return its lease or None."""
    import psutil

    if not (app_env.home / "switchyard.db").exists():
        return None
    held = Lease(app_env).live()
    if not held or held["host"] != socket.gethostname():
        return held  # one on another host ends by itself: the service is marked stopped
    try:
        proc = psutil.Process(int(held["pid"]))
        ours = "switchyard.service.watcher" in " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return held
    if ours:  # (a pid reused by another process is left alone: the lease expires by itself)
        proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([proc], timeout=wait)  # also reaps it when it is our child
        for left in alive:
            left.kill()
    return held


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m switchyard.service.watcher",
                                description="restart the unhealthy loops of an app's service")
    p.add_argument("app")
    p.add_argument("--apps-dir", required=True)
    p.add_argument("--home", required=True)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        watch(AppEnv(ns.app, apps_dir=ns.apps_dir, workspace=ns.home), stop)
    except SwitchyardError as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
