"""Service mode: start, watch, feed and stop the long-running worker loops of an app.

The loops run on the app's warm cluster (:mod:`switchyard.cluster.warm`), so the
cluster and the loops outlive the call that started them. What the service
wants is recorded in ``<workspace>/service/<app>/state.json``; every action
observes the loops (their Dask task state and heartbeat files), restarts the
unhealthy ones, cleans old artifacts up and writes ``health.json`` atomically.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from switchyard.app import AppEnv, Partition
from switchyard.exceptions import ClusterError, SwitchyardError
from switchyard.service import artifacts
from switchyard.service.health import (
    DEFAULT_HEARTBEAT_TIMEOUT, LoopSeen, build_payload, check_gate_settings, worker_health)
from switchyard.workspace import atomic_write_json

SUBMIT_GRACE = 5.0  # seconds a submitted loop may be unknown to the scheduler
ACTIONS = ("start", "status", "health", "stop", "submit")
Line = Callable[[str], None]

# Scheduler task state of a loop -> the loop's state in the health rows.
_TASK_STATES = {"processing": "running", "waiting": "pending", "queued": "pending", "released": "pending",
                "no-worker": "pending", "memory": "finished", "erred": "error"}


def service_dir(app_env: AppEnv) -> Path:
    """``<workspace>/service/<app>``: state.json, health.json, jobs/, done/, failed/, heartbeats/."""
    return app_env.home / "service" / app_env.app


def read_state(app_env: AppEnv) -> dict | None:
    path = service_dir(app_env) / "state.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise SwitchyardError(f"{path}: not valid JSON ({e}): stop the service with "
                              f"`switchyard serve {app_env.app} stop` or delete the file") from e


def _save_state(app_env: AppEnv, state: dict) -> None:
    atomic_write_json(service_dir(app_env) / "state.json", state)


# ----------------------------------------------------------------------------- scheduler side

def _client(address: str):
    from switchyard.cluster.connect import connect

    try:
        return connect(address, timeout=15)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"the service's scheduler at {address} does not answer ({e}): start the service "
                           "again (switchyard serve APP start)") from e


def _task_states(dask_scheduler, keys: list[str]) -> dict[str, list]:
    out = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is not None:
            out[key] = [ts.state, ts.processing_on.address if ts.processing_on else None]
    return out


def _workers_by_name(client) -> dict[str, str]:
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
    return {str(w.get("name")): addr for addr, w in info.get("workers", {}).items()}


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _spec(app_env: AppEnv, args: dict[str, Any]):
    from switchyard.runs.request import resolve
    from switchyard.app import data_dir
    from switchyard.runs.task import BatchSpec

    ctx = resolve(app_env, args=args)
    return ctx, BatchSpec(app=app_env.app, app_dir=str(app_env.app_dir), args=ctx.args_dict,
                          data_dir=str(data_dir(app_env)))


def _submit_loop(client, app_env: AppEnv, state: dict, slot: str, address: str) -> None:
    from distributed import fire_and_forget

    from switchyard.runs.task import BatchSpec
    from switchyard.service.loop import serve_loop

    key = f"sy-serve-{app_env.app}-{slot}-{secrets.token_hex(4)}"
    spec = BatchSpec(**state["spec"])
    fut = client.submit(serve_loop, str(service_dir(app_env)), slot, key, spec, key=key, pure=False,
                        workers=[address], allow_other_workers=False)
    fire_and_forget(fut)  # the loop outlives this client
    state["loops"][slot] = {"key": key, "worker": address, "started_at": time.time()}


def _cancel(client, keys: list[str]) -> None:
    from distributed import Future

    if keys:
        client.cancel([Future(k, client) for k in keys], force=True)


def _requeue(app_env: AppEnv, slot: str) -> list[str]:
    """Jobs a lost loop had claimed go back to the queue."""
    root = service_dir(app_env)
    back = []
    for claimed in (root / "running").glob(f"{slot}--*.json"):
        name = claimed.name.split("--", 1)[1]
        claimed.rename(root / "jobs" / name)
        back.append(name)
    return back


def _observe(client, app_env: AppEnv, state: dict, now: float) -> tuple[list[dict], dict[str, dict]]:
    """Health rows of the recorded loops, and slot -> row."""
    loops = state["loops"]
    tasks = client.run_on_scheduler(_task_states, keys=[lp["key"] for lp in loops.values()])
    alive = set(_workers_by_name(client).values())
    seen, by_slot = [], {}
    for slot, lp in loops.items():
        task = tasks.get(lp["key"])
        if task is None:
            # A loop just submitted may not have reached the scheduler yet.
            future_state = "pending" if now - lp["started_at"] < SUBMIT_GRACE else "cancelled"
        elif lp["worker"] not in alive:
            future_state = "lost"
        else:
            future_state = _TASK_STATES.get(task[0], "pending")
        seen.append(LoopSeen(lp["worker"], future_state, _beat_at(app_env, slot, lp), lp["started_at"]))
        by_slot[slot] = seen[-1]
    rows = worker_health(seen, now=now, timeout=state["heartbeat_timeout_sec"])
    row_of = {r["worker"]: r for r in rows}
    return rows, {slot: row_of[s.worker] for slot, s in by_slot.items()}


def _beat_at(app_env: AppEnv, slot: str, loop: dict) -> float | None:
    """Time of the slot's last heartbeat from this loop (an earlier loop's heartbeat does not count)."""
    beat = _heartbeat(app_env, slot)
    return beat["at"] if beat and beat.get("key") == loop["key"] else None


def _heartbeat(app_env: AppEnv, slot: str) -> dict | None:
    try:
        return json.loads((service_dir(app_env) / "heartbeats" / f"{slot}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _status_of(rows: list[dict]) -> str:
    return "running" if all(r["healthy"] for r in rows) else "degraded"


def _wait_known(client, keys: list[str], timeout: float = SUBMIT_GRACE) -> None:
    deadline = time.monotonic() + timeout
    while len(client.run_on_scheduler(_task_states, keys=keys)) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.05)


def _restart_unhealthy(client, app_env: AppEnv, state: dict, by_slot: dict[str, dict], say: Line,
                       join_timeout: float) -> list[dict]:
    sick = {slot: row for slot, row in by_slot.items() if not row["healthy"]}
    if not sick:
        return []
    for slot in sick:  # the old loop, if it still runs, ends and frees its worker's thread
        (service_dir(app_env) / "cancel").mkdir(exist_ok=True)
        (service_dir(app_env) / "cancel" / state["loops"][slot]["key"]).touch()
    _cancel(client, [state["loops"][s]["key"] for s in sick])
    deadline = time.monotonic() + join_timeout
    names = _workers_by_name(client)
    while any(s not in names for s in sick) and time.monotonic() < deadline:
        time.sleep(0.25)  # a killed worker's nanny brings it back under the same name
        names = _workers_by_name(client)
    done = []
    for slot, row in sick.items():
        if slot not in names:
            say(f"{slot}: its worker did not come back within {join_timeout:g} s: the loop stays down")
            continue
        _requeue(app_env, slot)
        _submit_loop(client, app_env, state, slot, names[slot])
        _wait_known(client, [state["loops"][slot]["key"]])
        entry = {"worker": row["worker"], "slot": slot, "reason": row["reason"], "at": time.time()}
        state["restarts"].append(entry)
        done.append(entry)
        say(f"{slot}: restarted its loop ({row['reason']}) on {names[slot]}")
    return done


# ----------------------------------------------------------------------------- actions

def _finish(app_env: AppEnv, state: dict | None, status: str, rows: list[dict], health_output_path,
            retention: artifacts.Retention | None, now: float | None, extra: dict) -> dict:
    removed = artifacts.cleanup(service_dir(app_env), retention, now=now)
    settings_health = _gate_settings(app_env)
    payload = build_payload(app_env.app, status, rows, (state or {}).get("restarts", []), settings_health,
                            timeout=(state or {}).get("heartbeat_timeout_sec", DEFAULT_HEARTBEAT_TIMEOUT),
                            now=now, cleanup=removed)
    target = Path(health_output_path) if health_output_path else service_dir(app_env) / "health.json"
    atomic_write_json(target, payload)
    return {**payload, **extra, "cleanup_removed": removed, "health_path": str(target)}


def _gate_settings(app_env: AppEnv) -> dict:
    from switchyard.settings import load_settings

    return check_gate_settings(load_settings(app_env.settings_path).cluster.service_health, app_env.settings_path)


def serve_sync(app_env: AppEnv, action: str = "status", *, workers: dict[str, int] | None = None,
               scheduler: str | None = None, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
               health_output_path: str | Path | None = None, jobs: list[dict] | None = None,
               wait: float | None = None, stop_cluster: bool = False, auto_restart: bool = True,
               retention: artifacts.Retention | None = None, join_timeout: float = 60,
               on_line: Line | None = None, **args: Any) -> dict:
    """One service action; returns the ``agi.service.health.v1`` payload plus the action's extras.

    Args:
        app_env: The app.
        action: start, status, health, stop or submit.
        workers: Host -> worker count for ``start`` (default ``[cluster.workers]``).
        scheduler: Scheduler address for ``start`` (default ``[cluster].scheduler``).
        heartbeat_timeout: Seconds without a heartbeat before a loop is stale (``start``).
        health_output_path: Where to write the snapshot (default ``<workspace>/service/<app>/health.json``).
        jobs: For ``submit``: partitions as dicts (name, weight, items); default the app's partitions.
        wait: For ``submit``: seconds to wait for the jobs' results (None: do not wait).
        stop_cluster: For ``stop``: also stop the warm cluster.
        auto_restart: Restart unhealthy loops (status, health, submit).
        retention: Artifact TTLs and limits (default 168/336/24 h, 2000/2000/1000 files).
        join_timeout: Seconds to wait for workers to join (start, restart).
        on_line: Receives progress lines.
        **args: App args overriding ``[args]`` (start, submit).

    Raises:
        SwitchyardError: An unknown action, or an action that needs a running service without one.
        ClusterError: The cluster could not start or its scheduler does not answer.
    """
    say = on_line or (lambda line: None)
    if action not in ACTIONS:
        raise SwitchyardError(f"unknown service action '{action}': use one of {', '.join(ACTIONS)}")
    if heartbeat_timeout <= 0:
        raise SwitchyardError(f"heartbeat_timeout {heartbeat_timeout}: give a number of seconds > 0")
    app_env.check()
    _gate_settings(app_env)  # a bad [cluster.service_health] fails before anything starts
    state = read_state(app_env)
    if action == "start":
        return _start(app_env, state, workers, scheduler, heartbeat_timeout, health_output_path, retention,
                      join_timeout, say, args)
    if state is None or state.get("status") != "running":
        if action == "stop":
            return _finish(app_env, state, "stopped", [], health_output_path, retention, None,
                           {"action": action})
        if action == "submit":
            raise SwitchyardError(f"the service of '{app_env.app}' is not running: start it first "
                                  f"(switchyard serve {app_env.app} start)")
        return _finish(app_env, state, "stopped", [], health_output_path, retention, None, {"action": action})
    if action == "stop":
        return _stop(app_env, state, stop_cluster, health_output_path, retention, say)
    extra: dict[str, Any] = {"action": action}
    from switchyard.cluster.warm import answers

    if not answers(state["scheduler"]):
        # The cluster is gone: every loop is lost and nothing can restart here; say so in health.json.
        now = time.time()
        rows = worker_health([LoopSeen(lp["worker"], "lost", _beat_at(app_env, slot, lp), lp["started_at"])
                              for slot, lp in state["loops"].items()], now=now,
                             timeout=state["heartbeat_timeout_sec"])
        extra["error"] = (f"the service's scheduler at {state['scheduler']} does not answer: start the "
                          f"service again (switchyard serve {app_env.app} start)")
        say(extra["error"])
        if action == "submit":
            raise ClusterError(extra["error"])
        return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, now, extra)
    with _client(state["scheduler"]) as client:
        now = time.time()
        rows, by_slot = _observe(client, app_env, state, now)
        extra["observed"] = rows
        if auto_restart:
            restarted = _restart_unhealthy(client, app_env, state, by_slot, say, join_timeout)
            if restarted:
                _save_state(app_env, state)
                rows, _ = _observe(client, app_env, state, time.time())
            extra["restarted_now"] = restarted
    if action == "submit":
        extra.update(_submit_jobs(app_env, state, jobs, wait, args))
    return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, None, extra)


def _start(app_env, state, workers, scheduler, timeout, health_output_path, retention, join_timeout, say,
           args) -> dict:
    from switchyard.cluster import warm

    if state and state.get("status") == "running" and warm.answers(state["scheduler"]):
        say(f"the service of '{app_env.app}' already runs at {state['scheduler']}")
        return serve_sync(app_env, "status", health_output_path=health_output_path, retention=retention,
                          on_line=say)
    ctx, spec = _spec(app_env, args)
    app = ctx.new_app()
    app.prepare()  # the data the jobs read exists before the first job
    cluster = warm.up_sync(app_env, workers=workers, scheduler=scheduler, join_timeout=join_timeout,
                           on_line=say)
    root = service_dir(app_env)
    (root / "stop").unlink(missing_ok=True)
    for old in (root / "cancel").glob("*"):
        old.unlink(missing_ok=True)
    for sub in ("jobs", "running", "done", "failed", "heartbeats", "hooks", "cancel"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    state = {"app": app_env.app, "status": "running", "scheduler": cluster["address"],
             "started_at": time.time(), "heartbeat_timeout_sec": float(timeout),
             "spec": {k: getattr(spec, k) for k in ("app", "app_dir", "args", "data_dir", "pool_size")},
             "loops": {}, "restarts": []}
    with _client(cluster["address"]) as client:
        for slot, address in sorted(_workers_by_name(client).items()):
            _submit_loop(client, app_env, state, slot, address)
        _save_state(app_env, state)
        _wait_known(client, [lp["key"] for lp in state["loops"].values()])
        say(f"service of '{app_env.app}': {len(state['loops'])} loop(s) on {cluster['address']}")
        rows, _ = _observe(client, app_env, state, time.time())
    return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, None, {"action": "start"})


def _submit_jobs(app_env: AppEnv, state: dict, jobs: list[dict] | None, wait: float | None,
                 args: dict) -> dict:
    if jobs is None:
        ctx, _ = _spec(app_env, {**state["spec"]["args"], **args})
        jobs = [p.to_dict() for p in ctx.new_app().partitions()]
    root = service_dir(app_env)
    ids = []
    batch = f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"
    for i, raw in enumerate(jobs):
        part = Partition.from_dict(raw)
        job_id = f"{batch}-{i:05d}"
        atomic_write_json(root / "jobs" / f"{job_id}.json", {"id": job_id, "partition": part.to_dict()})
        ids.append(job_id)
    out: dict[str, Any] = {"jobs": ids}
    if wait is not None:
        out["results"] = wait_for_jobs(app_env, ids, wait)
    return out


def wait_for_jobs(app_env: AppEnv, ids: list[str], timeout: float) -> list[dict]:
    """The outcomes (done/ or failed/ files) of ``ids`` in order; raises ClusterError after ``timeout``."""
    root = service_dir(app_env)
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while True:
        for job_id in ids:
            if job_id in found:
                continue
            for kind in ("done", "failed"):
                try:
                    found[job_id] = json.loads((root / kind / f"{job_id}.json").read_text())
                except (FileNotFoundError, ValueError):
                    continue
        if len(found) == len(ids):
            return [found[i] for i in ids]
        if time.monotonic() > deadline:
            raise ClusterError(f"{len(ids) - len(found)} of {len(ids)} service job(s) of '{app_env.app}' had no "
                               f"result after {timeout:g} s: check `switchyard serve {app_env.app} status`")
        time.sleep(0.1)


def _stop(app_env: AppEnv, state: dict, stop_cluster: bool, health_output_path, retention, say) -> dict:
    from switchyard.cluster import warm

    root = service_dir(app_env)
    (root / "stop").touch()
    keys = [lp["key"] for lp in state["loops"].values()]
    if warm.answers(state["scheduler"]):
        with _client(state["scheduler"]) as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                tasks = client.run_on_scheduler(_task_states, keys=keys)
                if all(t[0] in ("memory", "erred") for t in tasks.values()):
                    break
                time.sleep(0.2)
            _cancel(client, keys)  # a loop still busy after 10 s (or stuck on a lost worker)
    say(f"service of '{app_env.app}': {len(keys)} loop(s) stopped")
    state["status"] = "stopped"
    state["stopped_at"] = time.time()
    _save_state(app_env, state)
    extra: dict[str, Any] = {"action": "stop"}
    if stop_cluster:
        extra["cluster"] = warm.down_sync(app_env, on_line=say)
    return _finish(app_env, state, "stopped", [], health_output_path, retention, None, extra)
