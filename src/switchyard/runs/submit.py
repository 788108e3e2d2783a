"""The run core below the faces: plan a request, submit it, follow it to its end.

``get_distrib`` and ``start_run`` both resolve the call into one
:class:`~switchyard.runs.request.RunRequest` (cluster chosen), so CHECK
DISTRIBUTE plans on the workers RUN uses and RUN takes that saved plan as is.
``start_run`` records the orchestration (request, batches with their items) in
the store and hands it to the queue; ``follow_run`` returns as soon as the
store says the run ended, not when a driver process exits.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from switchyard.app import AppEnv
from switchyard.exceptions import InstallError, InvalidTransition
from switchyard.modes import Mode, check_supported, mode_string
from switchyard.runs.request import Resolved, RunRequest, resolve

Line = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass
class RunResult:
    orchestration_id: str
    status: str
    batches: int
    completed: int
    seconds: float | None
    output: str | None
    run_dir: str
    mode: int
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        s = (f"orchestration {self.orchestration_id}: {self.status}, {self.completed}/{self.batches} batches, "
             f"mode {self.mode} ({mode_string(self.mode)})")
        if self.seconds is not None:
            s += f", {self.seconds:.2f} s"
        if self.output:
            s += f", output {self.output}"
        if self.error:
            s += f", error: {self.error}"
        return s


def open_store(app_env: AppEnv):
    from switchyard.runs.store import RunStore

    return RunStore(app_env.home / "switchyard.db")


# --- environment -------------------------------------------------------------------------------

def ensure_env(app_env: AppEnv, cython: bool, on_line: Line) -> bool:
    """Install the worker environment when it is missing or stale (and say so); True if it did."""
    from switchyard.cluster.env import install_local, is_current

    if is_current(app_env, cython):
        return False
    on_line(f"worker environment of app '{app_env.app}' is missing or stale: installing it first")
    result = install_local(app_env, cython=cython, on_line=on_line)
    if not result.ok:
        raise InstallError(f"install of app '{app_env.app}' failed: {result.error}: see {result.log_path}")
    return True


def check_rapids(app_env: AppEnv, mode: int, workers: dict[str, int], action: str, on_line: Line,
                 need_packages: bool = True) -> dict[str, dict]:
    """Refuse a rapids mode unless the GPU probe passes on every host that runs its batches
    (remote worker hosts over SSH, with the settings' access); host -> probe."""
    from switchyard.cluster.gpus import check_hosts
    from switchyard.settings import load_settings

    cluster = load_settings(app_env.settings_path).cluster
    return check_hosts(app_env, mode, workers, cluster, action=action, need_packages=need_packages,
                       on_line=on_line)


def _check_cluster_gpus(app_env: AppEnv, address: str) -> None:
    """A rapids run on a cluster it did not start: every worker there must have a GPU."""
    from switchyard.cluster.gpus import check_cluster_gpus
    from switchyard.cluster.record import read_record

    record = read_record(app_env)
    if record is not None and record.address.split("://")[-1] == address.split("://")[-1]:
        check_cluster_gpus(address, f"the warm cluster of '{app_env.app}'",
                           f"stop it (switchyard cluster down {app_env.app}) so the run starts its own GPU "
                           "workers, or turn rapids off")
    else:
        check_cluster_gpus(address, "the running Dask scheduler",
                           "start its workers with --resources GPU=1 (one per GPU), or turn rapids off")


# --- the work plan -------------------------------------------------------------------------------

def plan_path(app_env: AppEnv) -> Path:
    return app_env.home / "plans" / app_env.app / "plan.json"


def saved_plan(app_env: AppEnv):
    """The saved plan, or None when there is none or it cannot be read."""
    return saved_plan_at(plan_path(app_env))


def saved_plan_at(path: Path):
    """The plan file at ``path``, or None when there is none or it cannot be read."""
    from switchyard.exceptions import PlanError
    from switchyard.plan import WorkPlan

    if not path.is_file():
        return None
    try:
        return WorkPlan.load(path)
    except PlanError:
        return None


def save_plan(app_env: AppEnv, plan) -> Path:
    path = plan_path(app_env)
    plan.save(path)
    return path


def plan_costs_of(res: Resolved, partitions: list):
    """What the plan of ``res`` is made from: the request's cost source (``options["costs"]``,
    default the app's weights) and the measured costs of the app's completed runs in its mode."""
    from switchyard.cluster.addresses import slot_names
    from switchyard.plan.costs import measured_model, plan_costs

    req = res.request
    with open_store(res.app_env) as store:
        model = measured_model(store, req.app, int(req.mode or 0), req.args,
                               getattr(res.app_cls, "cost_args", None))
    return plan_costs(cost_source(req), model, partitions, slot_names(dict(req.workers)),
                      what=f"app '{req.app}' in mode {int(req.mode or 0)}")


def cost_source(request: RunRequest) -> str:
    from switchyard.plan.costs import check_source

    return check_source(request.options.get("costs"))


def compute_plan(res: Resolved, partitions: list | None = None):
    """A fresh plan of the app's partitions over the request's workers; (plan, partitions)."""
    from switchyard.plan import build_plan

    if partitions is None:
        app = res.new_app()
        app.prepare()
        partitions = app.partitions()
    req = res.request
    costs = plan_costs_of(res, partitions)
    plan = build_plan(req.app, req.args, req.workers, req.scheduler, partitions, costs=costs)
    plan.workers_from, plan.note = req.workers_from, req.note
    return plan, partitions


def get_distrib(app_env: AppEnv, scheduler: str | None = None, workers: dict[str, int] | None = None,
                save: bool = True, on_line: Line | None = None, costs: str | None = None, **args: Any):
    """Plan on the workers RUN will use (the warm cluster's, a running scheduler's, or the
    settings'); save the plan unless ``save`` is false. ``plan.note`` says when those workers
    differ from ``[cluster].workers``. ``costs`` is the cost source: ``"weights"`` (the app's
    weights, the default) or ``"measured"`` (costs measured in its completed runs, falling
    back to the weights without any; ``plan.cost_note`` says which it used)."""
    from switchyard.plan.costs import check_source

    options = {"costs": check_source(costs)}
    res = resolve(app_env, scheduler=scheduler, workers=workers, args=args, place=True, options=options,
                  on_line=on_line or (lambda line: None))
    plan, _ = compute_plan(res)
    if on_line is not None and plan.cost_note:
        on_line(plan.cost_note)
    if save:
        save_plan(app_env, plan)
    return plan


def choose_plan(res: Resolved, partitions: list, on_line: Line):
    """The saved plan when it was made for this request (fingerprint and partitions), else a new one."""
    from switchyard.plan import plan_fingerprint

    req = res.request
    fp = plan_fingerprint(req.app, req.args, req.workers)
    saved = saved_plan(res.app_env)
    names = sorted(p.name for p in partitions)
    if saved is not None and saved.fingerprint == fp and sorted(saved.assignment()) == names:
        note = "using the saved work plan" + (" with the operator's edits" if saved.edited else "")
        on_line(note)
        return saved, note
    plan, _ = compute_plan(res, partitions)
    why = ("no saved work plan" if saved is None else
           "the saved work plan was made for other args or workers")
    note = f"re-planned: {why} (makespan {plan.makespan:.4g}, lower bound {plan.lower_bound:.4g})"
    on_line(note)
    return plan, note


# --- submitting ----------------------------------------------------------------------------------

def start_run(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
              workers: dict[str, int] | None = None, on_line: Line | None = None,
              max_attempts: int = 3, max_inflight: int | None = None, origin: dict | None = None,
              request: RunRequest | None = None, options: dict | None = None,
              **args: Any) -> tuple[str, Any]:
    """Resolve, install if needed, plan, record the orchestration and hand it to the queue.

    ``origin`` says what launched the run when it was not an operator (e.g.
    ``{"by": "schedule", "schedule": "s-1a2b", "trigger": 7}``). ``request`` gives the
    run's options and args as one :class:`RunRequest` instead of keywords (its unset
    fields come from the settings). Returns (orchestration id, driver handle or None when
    every slot is taken: it then waits as ``pending``). ``max_inflight`` caps its batches
    in flight (default ``$SWITCHYARD_MAX_INFLIGHT``, else no cap).
    """
    on_line = on_line or _print
    if request is not None:
        mode = request.mode if mode is None else mode
        scheduler = request.scheduler if scheduler is None else scheduler
        workers = dict(request.workers) if workers is None and request.workers else workers
        args = {**dict(request.args or {}), **args}
        max_attempts, origin = request.max_attempts, origin or request.origin
        max_inflight = request.max_inflight if max_inflight is None else max_inflight
    res = resolve(app_env, mode=mode, scheduler=scheduler, workers=workers, args=args,
                  max_attempts=max_attempts, max_inflight=max_inflight, origin=origin,
                  options={**(dict(request.options) if request is not None else {}), **(options or {})})
    check_supported(res.mode & ~Mode.RAPIDS)  # the rapids bit is checked on each host that runs batches
    if res.mode.uses_rapids:
        check_rapids(app_env, res.mode, dict(res.request.workers), "RUN", on_line)
    res.request = _place(app_env, res.request, on_line)
    if res.mode.uses_rapids and res.mode.uses_dask and res.request.cluster == "existing":
        _check_cluster_gpus(app_env, res.request.scheduler or "")
    installed = ensure_env(app_env, res.mode.uses_cython, on_line)
    app = res.new_app()
    app.prepare()
    partitions = app.partitions()
    plan, plan_note = choose_plan(res, partitions, on_line)
    if installed:  # the run log tells it too, not only the caller's output
        plan_note = (f"the worker environment was missing or stale and was installed first "
                     f"(see {app_env.home / 'envs' / app_env.app / 'install.log'}); {plan_note}")
    if res.request.note:
        plan_note = f"{res.request.note}; {plan_note}"
    return submit(app_env, res.request.with_(options={**res.request.options, "plan_note": plan_note}),
                  plan, partitions, on_line)


def _place(app_env: AppEnv, request: RunRequest, on_line: Line) -> RunRequest:
    from switchyard.runs.request import placed

    return placed(app_env, request, start_cluster=True, on_line=on_line)


def submit(app_env: AppEnv, request: RunRequest, plan, partitions: list, on_line: Line) -> tuple[str, Any]:
    """Record the orchestration of ``request`` with ``plan`` (pending) and pump the queue."""
    from switchyard.runs import launcher

    store = open_store(app_env)
    assignment = plan.assignment()
    oid = store.new_id()
    run_dir = app_env.home / "runs" / oid
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.save(run_dir / "plan.json")
    request = request.with_(plan_fingerprint=plan.fingerprint)
    dump = pickle.dumps
    # A generator: the store inserts each batch as it is made, so the caller holds one
    # payload at a time, not 100,000 dicts and their pickles.
    batches = ({"name": p.name, "weight": p.weight, "items": len(p.items), "planned_worker": assignment[p.name],
                "payload": dump(tuple(p.items), protocol=pickle.HIGHEST_PROTOCOL)} for p in partitions)
    store.create_orchestration(
        oid=oid, kind="app", app=app_env.app, mode=request.mode, args=dict(request.args),
        workers=dict(request.workers), scheduler=request.scheduler, plan_fingerprint=plan.fingerprint,
        run_dir=str(run_dir), request=request.to_dict(), batches=batches,
        options={"apps_dir": request.apps_dir, "pool_size": request.pool_size, "cluster": request.cluster,
                 "max_attempts": request.max_attempts, "max_inflight": request.max_inflight,
                 **({"origin": dict(request.origin)} if request.origin else {})},
        attempts_limit=request.max_attempts,
    )
    proc = launcher.pump(store).get(oid)
    if proc is not None:
        on_line(f"orchestration {oid} started: driver pid {proc.pid}, log {run_dir / 'run.log'}")
    else:
        busy, _ = store.queue_state()
        on_line(f"orchestration {oid} queued: {busy} orchestrations running (at most "
                f"{launcher.max_running(store)}): it starts when one ends")
    return oid, proc


def spawn_driver(app_env: AppEnv, oid: str, cython: bool):
    """Start the driver process of an orchestration; it outlives the caller.

    Bypasses the queue (no concurrency limit): resume and retry go through
    :func:`switchyard.runs.control.resume` / ``retry`` instead.
    """
    from switchyard.runs.launcher import popen_driver

    return popen_driver(app_env, oid, cython)


# --- following ----------------------------------------------------------------------------------

def result_of(store, oid: str) -> RunResult:
    o = store.get(oid)
    return RunResult(orchestration_id=oid, status=str(o.status.value if hasattr(o.status, "value") else o.status),
                     batches=o.total_batches, completed=o.completed_batches, seconds=o.seconds,
                     output=o.output, run_dir=o.run_dir, mode=o.mode, error=o.error)


def follow_run(app_env: AppEnv, oid: str, proc: Any, on_line: Line, poll: float = 0.1,
               engine_log: bool = False) -> RunResult:
    """Stream the run log to ``on_line`` until the store says the run ended (or paused).

    With ``engine_log`` the engine's lines that run.log leaves out (``runs/<id>/engine.log``)
    are streamed too, as they arrive, so both logs are followed without a line twice.

    Returns as soon as the store has the outcome. With ``proc`` None (queued, or started
    by someone else) it relies on the store alone: the sweep declares a vanished driver's
    orchestration interrupted. The store is read every few milliseconds at first, then
    every ``poll`` seconds, so a short run returns right after it ends.
    """
    from switchyard.logs import EngineSplit, follow
    from switchyard.runs.control import sweep
    from switchyard.runs.state import Status

    store = open_store(app_env)
    log = app_env.home / "runs" / oid / "run.log"
    offset = engine_offset = 0
    split = EngineSplit()
    exited_at = None
    started = time.monotonic()

    def drain() -> None:
        nonlocal offset, engine_offset
        if engine_log:
            lines, engine_offset = follow(log.parent / "engine.log", engine_offset)
            for line in lines:
                if not split.for_people(line):  # the others are in run.log
                    on_line(line)
        lines, offset = follow(log, offset)
        for line in lines:
            on_line(line)

    while True:
        drain()
        sweep(store, min_interval=1.0)
        status = store.status(oid)
        if status.is_finished or status == Status.PAUSED:
            drain()
            return result_of(store, oid)
        exited = proc is not None and proc.poll() is not None
        if exited:
            exited_at = exited_at or time.time()
            if time.time() - exited_at > 2.0:  # the driver died without recording an outcome
                code = getattr(proc, "returncode", None)
                try:
                    store.command(oid, "interrupt", error=f"driver exited with code {code if code is not None else '?'} "
                                                          f"before finishing: see {log.parent / 'driver.out'}")
                except InvalidTransition:
                    pass  # it reached a final status meanwhile
                return result_of(store, oid)
        # 5 ms steps for the first half second, then up to ``poll``.
        time.sleep(0.005 if time.monotonic() - started < 0.5 else min(poll, 0.05 if time.monotonic() - started < 3 else poll))


def run_sync(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
             workers: dict[str, int] | None = None, detach: bool = False, on_line: Line | None = None,
             request: RunRequest | None = None, engine_log: bool = False, options: dict | None = None,
             **args: Any) -> RunResult:
    """Start the run and, unless ``detach``, follow it to its end (``engine_log``: see :func:`follow_run`).
    ``options``: engine options of the request (e.g. ``{"backups": True}``), over the request's."""
    on_line = on_line or _print
    oid, proc = start_run(app_env, mode=mode, scheduler=scheduler, workers=workers, on_line=on_line,
                          request=request, options=options, **args)
    if detach:
        return result_of(open_store(app_env), oid)
    return follow_run(app_env, oid, proc, on_line, engine_log=engine_log)
