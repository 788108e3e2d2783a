"""Service mode: start, watch, feed and stop the long-running worker loops of an app.

The loops run on the app's warm cluster (:mod:`switchyard.cluster.warm`), so the
cluster and the loops outlive the call that started them. Jobs, claims, results and
heartbeats travel over the cluster's own channel, the board on the scheduler
(:mod:`switchyard.service.board`), so the loops need no file of the workspace. What the
service wants is recorded in ``<workspace>/service/<app>/state.json``; the watcher
(:mod:`switchyard.service.watcher`, started with the service and stopped with it) and
every action observe the loops (their Dask task state and heartbeats), restart the
unhealthy ones, collect the results into ``done/`` and ``failed/``, clean old artifacts
up and write ``health.json`` atomically. Whoever observes holds the service's lock, so a
loop is never restarted twice.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from switchyard.app import AppEnv, Partition
from switchyard.exceptions import ClusterError, SwitchyardError
from switchyard.service import artifacts, board
from switchyard.service.health import (
    DEFAULT_HEARTBEAT_TIMEOUT, LoopSeen, build_payload, check_gate_settings, restart_allowed, worker_health)
from switchyard.workspace import atomic_write_json, file_lock

SUBMIT_GRACE = 5.0  # seconds a submitted loop may be unknown to the scheduler
ACTIONS = ("start", "status", "health", "stop", "submit")
Line = Callable[[str], None]

# Scheduler task state of a loop -> the loop's state in the health rows.
_TASK_STATES = {"processing": "running", "waiting": "pending", "queued": "pending", "released": "pending",
                "no-worker": "pending", "memory": "finished", "erred": "error"}


def service_dir(app_env: AppEnv) -> Path:
    """``<workspace>/service/<app>``: state.json, health.json, done/, failed/, heartbeats/, hooks/."""
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


def save_state(app_env: AppEnv, state: dict) -> None:
    atomic_write_json(service_dir(app_env) / "state.json", state)


@contextlib.contextmanager
def locked(app_env: AppEnv) -> Iterator[None]:
    """The service's lock: one observer (watcher or action) at a time restarts loops and saves state."""
    root = service_dir(app_env)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        yield


# ----------------------------------------------------------------------------- scheduler side

def client_for(app_env: AppEnv, address: str, timeout: float = 15):
    """A client of the service's scheduler, with the certificates of the app's workspace (a TLS cluster)."""
    from switchyard.cluster.connect import connect

    try:
        return connect(address, timeout=timeout, home=app_env.home)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"the service's scheduler at {address} does not answer ({e}): start the service "
                           "again (switchyard serve APP start)") from e


def _workers_by_name(client) -> dict[str, str]:
    return client.run_on_scheduler(board.workers)


def _spec(app_env: AppEnv, args: dict[str, Any]):
    from switchyard.runs.request import resolve
    from switchyard.app import data_dir
    from switchyard.runs.task import BatchSpec

    ctx = resolve(app_env, args=args)
    return ctx, BatchSpec(app=app_env.app, app_dir=str(app_env.app_dir), args=ctx.args_dict,
                          data_dir=str(data_dir(app_env)))


def _submit_loop(client, app_env: AppEnv, state: dict, slot: str, address: str) -> list[dict]:
    """Start a loop on ``address`` for ``slot``; return the jobs its previous loop had claimed (requeued)."""
    from distributed import fire_and_forget

    from switchyard.runs.task import BatchSpec
    from switchyard.service.loop import serve_loop

    key = f"sy-serve-{app_env.app}-{slot}-{secrets.token_hex(4)}"
    back = client.run_on_scheduler(board.own, app=app_env.app, slot=slot, key=key)
    fut = client.submit(serve_loop, slot, key, BatchSpec(**state["spec"]), key=key, pure=False,
                        workers=[address], allow_other_workers=False)
    fire_and_forget(fut)  # the loop outlives this client
    state["loops"][slot] = {"key": key, "worker": address, "started_at": time.time()}
    return back


def _cancel(client, keys: list[str]) -> None:
    from distributed import Future

    if keys:
        client.cancel([Future(k, client) for k in keys], force=True)


def _muted(app_env: AppEnv) -> list[str]:
    """Test hook: slots with a ``hooks/<slot>.no-heartbeat`` file (their heartbeats are ignored)."""
    return sorted(p.name[:-len(".no-heartbeat")] for p in (service_dir(app_env) / "hooks").glob("*.no-heartbeat"))


def observe(client, app_env: AppEnv, state: dict) -> tuple[list[dict], dict[str, dict]]:
    """Health rows of the recorded loops, and slot -> row; mirrors the heartbeats into ``heartbeats/``."""
    loops = state["loops"]
    seen_at = client.run_on_scheduler(board.observe, app=app_env.app, keys=[lp["key"] for lp in loops.values()],
                                      muted=_muted(app_env))
    now = time.time()
    skew = now - seen_at["now"]  # heartbeats carry the scheduler's clock
    seen, by_slot = [], {}
    for slot, lp in loops.items():
        task = seen_at["tasks"].get(lp["key"])
        if task is None:
            # A loop just submitted may not have reached the scheduler yet.
            future_state = "pending" if now - lp["started_at"] < SUBMIT_GRACE else "cancelled"
        elif lp["worker"] not in seen_at["workers"].values():
            future_state = "lost"
        else:
            future_state = _TASK_STATES.get(task[0], "pending")
        beat = seen_at["beats"].get(slot)
        beat_at = beat["at"] + skew if beat and beat.get("key") == lp["key"] else None
        if beat_at is not None:
            atomic_write_json(service_dir(app_env) / "heartbeats" / f"{slot}.json", {**beat, "at": beat_at},
                              durable=False)
        seen.append(LoopSeen(lp["worker"], future_state, beat_at, lp["started_at"]))
        by_slot[slot] = seen[-1]
    rows = worker_health(seen, now=now, timeout=state["heartbeat_timeout_sec"])
    row_of = {r["worker"]: r for r in rows}
    return rows, {slot: row_of[s.worker] for slot, s in by_slot.items()}


def _mirrored_beat(app_env: AppEnv, slot: str, loop: dict) -> float | None:
    """The last heartbeat of this loop that an observer mirrored into ``heartbeats/<slot>.json``."""
    try:
        beat = json.loads((service_dir(app_env) / "heartbeats" / f"{slot}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return beat["at"] if beat.get("key") == loop["key"] else None


def collect(client, app_env: AppEnv) -> int:
    """Write the outcomes the loops handed in to ``done/`` or ``failed/``; return how many."""
    root = service_dir(app_env)
    got = client.run_on_scheduler(board.take_results, app=app_env.app)
    for outcome in got:
        path = root / ("done" if outcome["error"] is None else "failed") / f"{outcome['id']}.json"
        if not path.exists():  # a job run twice (its loop was replaced meanwhile) keeps its first outcome
            atomic_write_json(path, outcome, durable=False)
    return len(got)


def _status_of(rows: list[dict]) -> str:
    return "running" if all(r["healthy"] for r in rows) else "degraded"


def _wait_known(client, app: str, keys: list[str], timeout: float = SUBMIT_GRACE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(client.run_on_scheduler(board.observe, app=app, keys=keys, muted=[])["tasks"]) == len(keys):
            return
        time.sleep(0.05)


def restart_unhealthy(client, app_env: AppEnv, state: dict, by_slot: dict[str, dict], say: Line,
                      join_timeout: float, limit: dict | None = None) -> list[dict]:
    """Replace the loops of the unhealthy slots; return the restarts done (also added to ``state``).

    Args:
        join_timeout: Seconds to wait for a killed worker to come back (0: a slot whose worker is
            not back is left for the next call, as the watcher does).
        limit: The gate's thresholds: restarts beyond ``max_restart_rate`` are held (recorded in
            ``state["held"]``) instead of done. None: no limit (an operator's action).
    """
    held = state.setdefault("held", {})
    for slot in [s for s in held if s not in by_slot or by_slot[s]["healthy"]]:
        del held[slot]
    sick = {slot: row for slot, row in by_slot.items() if not row["healthy"]}
    if not sick:
        return []
    deadline = time.monotonic() + join_timeout
    names = _workers_by_name(client)
    while any(s not in names for s in sick) and time.monotonic() < deadline:
        time.sleep(0.25)  # a killed worker's nanny brings it back under the same name
        names = _workers_by_name(client)
    done = []
    for slot, row in sick.items():
        if slot not in names:
            if join_timeout:
                say(f"{slot}: its worker did not come back within {join_timeout:g} s: the loop stays down")
            continue
        if limit is not None and not restart_allowed(state["restarts"], len(state["loops"]),
                                                     limit["max_restart_rate"], time.time()):
            if slot not in held:
                held[slot] = {"worker": row["worker"], "slot": slot, "reason": row["reason"], "at": time.time(),
                              "why": f"max_restart_rate {limit['max_restart_rate']:g} reached"}
                say(f"{slot}: restart held ({row['reason']}): max_restart_rate {limit['max_restart_rate']:g} "
                    "reached; `switchyard serve APP status` restarts it")
            continue
        _cancel(client, [state["loops"][slot]["key"]])  # the old loop, if it still runs, ends at its next call
        back = _submit_loop(client, app_env, state, slot, names[slot])
        _wait_known(client, app_env.app, [state["loops"][slot]["key"]])
        entry = {"worker": row["worker"], "slot": slot, "reason": row["reason"], "at": time.time(),
                 "by": "watcher" if limit is not None else "action", "requeued": [j["id"] for j in back]}
        state["restarts"].append(entry)
        held.pop(slot, None)
        done.append(entry)
        say(f"{slot}: restarted its loop ({row['reason']}) on {names[slot]}")
    return done


# ----------------------------------------------------------------------------- actions

def _finish(app_env: AppEnv, state: dict | None, status: str, rows: list[dict], health_output_path,
            retention: artifacts.Retention | None, now: float | None, extra: dict) -> dict:
    removed = artifacts.cleanup(service_dir(app_env), retention, now=now)
    payload = write_health(app_env, state, status, rows, health_output_path, now, removed)
    return {**payload, **extra, "cleanup_removed": removed}


def write_health(app_env: AppEnv, state: dict | None, status: str, rows: list[dict], health_output_path=None,
                 now: float | None = None, removed: dict | None = None) -> dict:
    """Build the ``agi.service.health.v1`` snapshot and write it atomically; return it with ``health_path``."""
    from switchyard.service import watcher

    payload = build_payload(app_env.app, status, rows, (state or {}).get("restarts", []), _gate_settings(app_env),
                            timeout=(state or {}).get("heartbeat_timeout_sec", DEFAULT_HEARTBEAT_TIMEOUT),
                            now=now, cleanup=removed, held=list((state or {}).get("held", {}).values()),
                            watcher=watcher.describe(app_env))
    target = Path(health_output_path) if health_output_path else service_dir(app_env) / "health.json"
    atomic_write_json(target, payload)
    return {**payload, "health_path": str(target)}


def gate_settings(app_env: AppEnv) -> dict:
    from switchyard.settings import load_settings

    return check_gate_settings(load_settings(app_env.settings_path).cluster.service_health, app_env.settings_path)


_gate_settings = gate_settings


def serve_sync(app_env: AppEnv, action: str = "status", *, workers: dict[str, int] | None = None,
               scheduler: str | None = None, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
               health_output_path: str | Path | None = None, jobs: list[dict] | None = None,
               wait: float | None = None, stop_cluster: bool = False, auto_restart: bool = True,
               retention: artifacts.Retention | None = None, join_timeout: float = 60, watch: bool = True,
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
        watch: For ``start``: start the watcher that restarts unhealthy loops between actions.
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
                      join_timeout, watch, say, args)
    if state is None or state.get("status") != "running":
        if action == "stop":
            done: dict[str, Any] = {"action": action}
            if stop_cluster:  # the loops are already stopped; the warm cluster may still run
                from switchyard.cluster import warm

                done["cluster"] = warm.down_sync(app_env, on_line=say)
            return _finish(app_env, state, "stopped", [], health_output_path, retention, None, done)
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
        rows = worker_health([LoopSeen(lp["worker"], "lost", _mirrored_beat(app_env, slot, lp), lp["started_at"])
                              for slot, lp in state["loops"].items()], now=now,
                             timeout=state["heartbeat_timeout_sec"])
        extra["error"] = (f"the service's scheduler at {state['scheduler']} does not answer: start the "
                          f"service again (switchyard serve {app_env.app} start)")
        say(extra["error"])
        if action == "submit":
            raise ClusterError(extra["error"])
        return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, now, extra)
    with client_for(app_env, state["scheduler"]) as client:
        with locked(app_env):
            state = read_state(app_env) or state
            rows, by_slot = observe(client, app_env, state)
            extra["observed"] = rows
            if auto_restart:
                restarted = restart_unhealthy(client, app_env, state, by_slot, say, join_timeout)
                if restarted:
                    rows, _ = observe(client, app_env, state)
                extra["restarted_now"] = restarted
                save_state(app_env, state)
        collect(client, app_env)
        if action == "submit":
            extra.update(_submit_jobs(client, app_env, state, jobs, wait, args))
    return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, None, extra)


def _start(app_env, state, workers, scheduler, timeout, health_output_path, retention, join_timeout, watch, say,
           args) -> dict:
    from switchyard.cluster import warm

    if state and state.get("status") == "running" and warm.answers(state["scheduler"]):
        say(f"the service of '{app_env.app}' already runs at {state['scheduler']}")
        if watch:
            _start_watcher(app_env, say)
        return serve_sync(app_env, "status", health_output_path=health_output_path, retention=retention,
                          on_line=say)
    ctx, spec = _spec(app_env, args)
    app = ctx.new_app()
    app.prepare()  # the data the jobs read exists before the first job
    cluster = warm.up_sync(app_env, workers=workers, scheduler=scheduler, join_timeout=join_timeout,
                           on_line=say)
    root = service_dir(app_env)
    for sub in ("done", "failed", "heartbeats", "hooks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    state = {"app": app_env.app, "id": secrets.token_hex(6), "status": "running", "scheduler": cluster["address"],
             "started_at": time.time(), "heartbeat_timeout_sec": float(timeout),
             "spec": {k: getattr(spec, k) for k in ("app", "app_dir", "args", "data_dir", "pool_size")},
             "loops": {}, "restarts": [], "held": {}}
    with client_for(app_env, cluster["address"]) as client, locked(app_env):
        client.run_on_scheduler(board.reset, app=app_env.app, slots={})
        for slot, address in sorted(_workers_by_name(client).items()):
            _submit_loop(client, app_env, state, slot, address)
        save_state(app_env, state)
        _wait_known(client, app_env.app, [lp["key"] for lp in state["loops"].values()])
        say(f"service of '{app_env.app}': {len(state['loops'])} loop(s) on {cluster['address']}")
        rows, _ = observe(client, app_env, state)
    if watch:
        _start_watcher(app_env, say)
    return _finish(app_env, state, _status_of(rows), rows, health_output_path, retention, None, {"action": "start"})


def _start_watcher(app_env: AppEnv, say: Line) -> None:
    from switchyard.service import watcher

    try:
        lease = watcher.start_detached(app_env)
        say(f"service of '{app_env.app}': watcher pid {lease['pid']} restarts unhealthy loops")
    except ClusterError as e:  # the loops run: say so; STATUS shows the watcher missing
        say(f"{e}: loops are restarted only by status/health/submit until `switchyard serve "
            f"{app_env.app} start` starts the watcher")


def _submit_jobs(client, app_env: AppEnv, state: dict, jobs: list[dict] | None, wait: float | None,
                 args: dict) -> dict:
    if jobs is None:
        ctx, _ = _spec(app_env, {**state["spec"]["args"], **args})
        jobs = [p.to_dict() for p in ctx.new_app().partitions()]
    batch = f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"
    queued = [{"id": f"{batch}-{i:05d}", "partition": Partition.from_dict(raw).to_dict()}
              for i, raw in enumerate(jobs)]
    client.run_on_scheduler(board.put, app=app_env.app, jobs=queued)
    ids = [j["id"] for j in queued]
    out: dict[str, Any] = {"jobs": ids}
    if wait is not None:
        out["results"] = wait_for_jobs(app_env, ids, wait, client=client)
    return out


def wait_for_jobs(app_env: AppEnv, ids: list[str], timeout: float, client=None) -> list[dict]:
    """The outcomes (done/ or failed/ files) of ``ids`` in order; raises ClusterError after ``timeout``.

    With ``client``, the outcomes the loops handed in are collected here too (else the watcher does).
    """
    root = service_dir(app_env)
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while True:
        if client is not None:
            collect(client, app_env)
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


def cluster_note(app: str, scheduler: str | None, up: bool) -> str:
    """What ``serve stop`` says about the warm cluster it leaves alone."""
    if not up:
        return f"no warm cluster answers at {scheduler}: nothing else is running"
    return (f"the warm cluster at {scheduler} stays up (other runs may use it): stop it with "
            f"`switchyard cluster down {app}`, or use `serve stop --stop-cluster` to stop both")


def _stop(app_env: AppEnv, state: dict, stop_cluster: bool, health_output_path, retention, say) -> dict:
    from switchyard.cluster import warm
    from switchyard.service import watcher

    keys = [lp["key"] for lp in state["loops"].values()]
    with locked(app_env):
        state = read_state(app_env) or state
        state["status"] = "stopped"  # the watcher ends at its next tick
        state["stopped_at"] = time.time()
        save_state(app_env, state)
    watcher.stop_running(app_env)
    if warm.answers(state["scheduler"]):
        with client_for(app_env, state["scheduler"]) as client:
            client.run_on_scheduler(board.stop, app=app_env.app)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                tasks = client.run_on_scheduler(board.observe, app=app_env.app, keys=keys, muted=[])["tasks"]
                if all(t[0] in ("memory", "erred") for t in tasks.values()):
                    break
                time.sleep(0.2)
            _cancel(client, keys)  # a loop still busy after 10 s (or stuck on a lost worker)
            collect(client, app_env)
    say(f"service of '{app_env.app}': {len(keys)} loop(s) stopped")
    extra: dict[str, Any] = {"action": "stop"}
    if stop_cluster:
        extra["cluster"] = warm.down_sync(app_env, on_line=say)
    else:
        extra["cluster_stays_up"] = bool(warm.answers(state["scheduler"]))
        say(cluster_note(app_env.app, state["scheduler"], extra["cluster_stays_up"]))
    return _finish(app_env, state, "stopped", [], health_output_path, retention, None, extra)
