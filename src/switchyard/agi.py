"""The ``AGI`` facade: install, get_distrib, run, benchmark (and serve).

The UI buttons, the generated snippets and the CLI all call these functions
with the same arguments. Arguments left out come from the app's
``app_settings.toml``; app args given as keywords override its ``[args]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from switchyard import workspace
from switchyard.app import App, AppEnv, Args, data_dir, load_app, validate_args
from switchyard.exceptions import InstallError, InvalidTransition, ModeError
from switchyard.modes import Mode, check_supported, enabled_modes, mode_string, parse_mode, unsupported_reason
from switchyard.settings import AppSettings, check_scheduler, check_workers, load_settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
Line = Callable[[str], None]


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


@dataclass
class Context:
    """An app call's resolved inputs: settings merged with the call's overrides, validated."""

    app_env: AppEnv
    app_cls: type[App]
    settings: AppSettings
    mode: Mode
    workers: dict[str, int]
    scheduler: str
    args: Args

    @property
    def args_dict(self) -> dict[str, Any]:
        return self.args.model_dump(mode="json")

    def new_app(self) -> App:
        return self.app_cls(self.args, data_dir(self.app_env))


def resolve(app_env: AppEnv, *, mode: int | str | None = None, scheduler: str | None = None,
            workers: dict[str, int] | None = None, args: dict[str, Any] | None = None) -> Context:
    """Validate everything at the edge, before any file is written or process started."""
    app_env.check()
    settings = load_settings(app_env.settings_path)
    app_cls = load_app(app_env)
    raw_args = {**settings.args, **(args or {})}
    source = f"{app_env.settings_path} [args]" if not args else "the call's args and [args]"
    model = validate_args(app_cls, raw_args, source)
    return Context(
        app_env=app_env, app_cls=app_cls, settings=settings,
        mode=parse_mode(settings.cluster.mode if mode is None else mode),
        workers=check_workers(settings.cluster.workers if workers is None else workers),
        scheduler=check_scheduler(settings.cluster.scheduler if scheduler is None else scheduler),
        args=model,
    )


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")


def _print(line: str) -> None:
    print(line, flush=True)


# --- install ---------------------------------------------------------------------------------

def install_sync(app_env: AppEnv, modes_enabled: int | str | None = None, workers: dict[str, int] | None = None,
                 on_line: Line | None = None, force: bool = False):
    from switchyard.cluster.env import install_local

    ctx = resolve(app_env, mode=modes_enabled, workers=workers)
    reason = unsupported_reason(ctx.mode & Mode.CYTHON)
    if reason:
        raise ModeError(reason)
    from switchyard.cluster.local import is_local_host, split_address as split_host_port
    from switchyard.cluster.warm import scheduler_runs_here

    scheduler_host = split_host_port(ctx.scheduler)[0]
    hosts = list(ctx.workers) + ([] if scheduler_runs_here(scheduler_host) or scheduler_host in ctx.workers
                                 else [scheduler_host])
    if any(not is_local_host(h) for h in hosts):
        # Remote hosts: the driver's env here and the workers' env on each host, over SSH.
        from switchyard.cluster.remote import install_everywhere

        return install_everywhere(app_env, ctx.settings.cluster, hosts, cython=bool(ctx.mode & Mode.CYTHON),
                                  force=force, on_line=on_line or _print)
    result = install_local(app_env, cython=bool(ctx.mode & Mode.CYTHON), on_line=on_line or _print,
                           force=force)
    if not result.ok:
        raise InstallError(f"install of app '{app_env.app}' failed: {result.error}: see {result.log_path}")
    return result


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


# --- distribute --------------------------------------------------------------------------------

def plan_path(app_env: AppEnv) -> Path:
    return app_env.home / "plans" / app_env.app / "plan.json"


def compute_plan(ctx: Context, partitions: list | None = None):
    from switchyard.plan import build_plan

    if partitions is None:
        app = ctx.new_app()
        app.prepare()
        partitions = app.partitions()
    return build_plan(ctx.app_env.app, ctx.args_dict, ctx.workers, ctx.scheduler, partitions), partitions


def get_distrib_sync(app_env: AppEnv, scheduler: str | None = None, workers: dict[str, int] | None = None,
                     save: bool = True, **args: Any):
    ctx = resolve(app_env, scheduler=scheduler, workers=workers, args=args)
    plan, _ = compute_plan(ctx)
    if save:
        plan.save(plan_path(app_env))
    return plan


def saved_plan(app_env: AppEnv):
    """The saved plan, or None when there is none or it cannot be read."""
    from switchyard.exceptions import PlanError
    from switchyard.plan import WorkPlan

    path = plan_path(app_env)
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


# --- run ---------------------------------------------------------------------------------------

def _choose_plan(ctx: Context, partitions: list, on_line: Line):
    from switchyard.plan import plan_fingerprint

    fp = plan_fingerprint(ctx.app_env.app, ctx.args_dict, ctx.workers)
    saved = saved_plan(ctx.app_env)
    names = sorted(p.name for p in partitions)
    if saved is not None and saved.fingerprint == fp and sorted(saved.assignment()) == names:
        note = "using the saved work plan" + (" with the operator's edits" if saved.edited else "")
        on_line(note)
        return saved, note
    plan, _ = compute_plan(ctx, partitions)
    why = ("no saved work plan" if saved is None else
           "the saved work plan was made for other args or workers")
    note = f"re-planned: {why} (makespan {plan.makespan:.4g}, lower bound {plan.lower_bound:.4g})"
    on_line(note)
    return plan, note


def start_run(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
              workers: dict[str, int] | None = None, on_line: Line | None = None,
              max_attempts: int = 3, max_inflight: int | None = None, origin: dict | None = None,
              **args: Any) -> tuple[str, subprocess.Popen | None]:
    """Validate, install if needed, plan, record the orchestration and start its driver process.

    ``origin`` says what launched the run when it was not an operator (e.g.
    ``{"by": "schedule", "schedule": "s-1a2b", "trigger": 7}``); it is kept in the
    orchestration's options as ``origin``.

    The driver process is returned, or None when every slot is taken: the orchestration
    then waits as ``pending`` and the queue starts it when a running one ends.
    ``max_inflight`` caps its batches in flight at once (default: ``$SWITCHYARD_MAX_INFLIGHT``,
    else no cap).
    """
    from switchyard.runs import launcher
    from switchyard.runs.driver import Job
    from switchyard.runs.store import RunStore
    from switchyard.runs.task import BatchSpec

    on_line = on_line or _print
    ctx = resolve(app_env, mode=mode, scheduler=scheduler, workers=workers, args=args)
    check_supported(ctx.mode)
    cython = bool(ctx.mode & Mode.CYTHON)
    cluster = "none"
    if ctx.mode & Mode.DASK:
        # The app's warm cluster, any scheduler at the address, a local cluster, or a cold start over SSH.
        from switchyard.cluster.warm import choose_cluster

        cluster, ctx.scheduler, ctx.workers = choose_cluster(app_env, ctx.scheduler, ctx.workers, cython,
                                                             on_line)
    installed = ensure_env(app_env, cython, on_line)
    app = ctx.new_app()
    app.prepare()
    partitions = app.partitions()
    plan, plan_note = _choose_plan(ctx, partitions, on_line)
    if installed:  # the run log tells it too, not only the caller's output
        plan_note = (f"the worker environment was missing or stale and was installed first "
                     f"(see {app_env.home / 'envs' / app_env.app / 'install.log'}); {plan_note}")
    by_name = {p.name: i for i, p in enumerate(partitions)}
    assignment = plan.assignment()
    slot_of = [assignment[p.name] for p in partitions]
    store = RunStore(app_env.home / "switchyard.db")
    oid = store.new_id()
    run_dir = app_env.home / "runs" / oid
    run_dir.mkdir(parents=True, exist_ok=True)
    pool_size = ctx.settings.cluster.pool_size if ctx.mode & Mode.POOL else 0
    if max_inflight is None:
        max_inflight = int(os.environ.get("SWITCHYARD_MAX_INFLIGHT") or 0)
    job = Job(
        spec=BatchSpec(app=app_env.app, app_dir=str(app_env.app_dir), args=ctx.args_dict,
                       data_dir=str(data_dir(app_env)), pool_size=pool_size),
        partitions=partitions, slot_of=slot_of, slot_names=[s.id for s in plan.slots],
        workers=ctx.workers, scheduler=ctx.scheduler, cluster=cluster, mode=int(ctx.mode),
        max_attempts=max_attempts, max_inflight=max(0, int(max_inflight)), plan_note=plan_note,
    )
    job.save(run_dir)
    plan.save(run_dir / "plan.json")
    store.create_orchestration(
        oid=oid, kind="app", app=app_env.app, mode=int(ctx.mode), args=ctx.args_dict, workers=ctx.workers,
        scheduler=ctx.scheduler, plan_fingerprint=plan.fingerprint, run_dir=str(run_dir),
        batches=[{"name": p.name, "weight": p.weight, "items": len(p.items), "planned_worker": slot_of[by_name[p.name]]}
                 for p in partitions],
        options={"apps_dir": str(app_env.apps_path), "pool_size": pool_size, "cluster": cluster,
                 "max_attempts": max_attempts, "max_inflight": job.max_inflight,
                 **({"origin": dict(origin)} if origin else {})},
        attempts_limit=max_attempts,
    )
    proc = launcher.pump(store).get(oid)
    if proc is not None:
        on_line(f"orchestration {oid} started: driver pid {proc.pid}, log {run_dir / 'run.log'}")
    else:
        busy, _ = store.queue_state()
        on_line(f"orchestration {oid} queued: {busy} orchestrations running (at most "
                f"{launcher.max_running(store)}): it starts when one ends")
    return oid, proc


def spawn_driver(app_env: AppEnv, oid: str, cython: bool) -> subprocess.Popen:
    """Start the driver process of an orchestration; it outlives the caller.

    Bypasses the queue (no concurrency limit): resume and retry go through
    :func:`switchyard.runs.control.resume` / ``retry`` instead.
    """
    from switchyard.runs.launcher import popen_driver

    return popen_driver(app_env, oid, cython)


def result_of(store, oid: str) -> RunResult:
    o = store.get(oid)
    return RunResult(orchestration_id=oid, status=str(o.status.value if hasattr(o.status, "value") else o.status),
                     batches=o.total_batches, completed=o.completed_batches, seconds=o.seconds,
                     output=o.output, run_dir=o.run_dir, mode=o.mode, error=o.error)


def follow_run(app_env: AppEnv, oid: str, proc: subprocess.Popen | None, on_line: Line,
               poll: float = 0.1) -> RunResult:
    """Stream the run log to ``on_line`` until the driver stops; return the result.

    With ``proc`` None (queued, or started by someone else) it relies on the store alone:
    the sweep declares a vanished driver's orchestration interrupted.
    """
    from switchyard.logs import follow
    from switchyard.runs.control import sweep
    from switchyard.runs.state import Status
    from switchyard.runs.store import RunStore

    store = RunStore(app_env.home / "switchyard.db")
    log = app_env.home / "runs" / oid / "run.log"
    offset = 0
    exited_at = None
    while True:
        lines, offset = follow(log, offset)
        for line in lines:
            on_line(line)
        sweep(store, min_interval=1.0)
        status = Status(store.get(oid).status)
        exited = proc is None or proc.poll() is not None
        if proc is None and not (status.is_finished or status == Status.PAUSED):
            time.sleep(poll)
            continue
        if status.is_finished or status == Status.PAUSED:
            if exited:
                lines, offset = follow(log, offset)
                for line in lines:
                    on_line(line)
                return result_of(store, oid)
        elif exited:
            exited_at = exited_at or time.time()
            if time.time() - exited_at > 2.0:  # the driver died without recording an outcome
                code = proc.returncode if proc is not None else "?"
                try:
                    store.command(oid, "interrupt", error=f"driver exited with code {code} before "
                                                          f"finishing: see {log.parent / 'driver.out'}")
                except InvalidTransition:
                    pass  # it reached a final status meanwhile
                return result_of(store, oid)
        time.sleep(poll)


def run_sync(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
             workers: dict[str, int] | None = None, detach: bool = False, on_line: Line | None = None,
             **args: Any) -> RunResult:
    on_line = on_line or _print
    oid, proc = start_run(app_env, mode=mode, scheduler=scheduler, workers=workers, on_line=on_line, **args)
    if detach:
        from switchyard.runs.store import RunStore

        return result_of(RunStore(app_env.home / "switchyard.db"), oid)
    return follow_run(app_env, oid, proc, on_line)


def benchmark_path(app_env: AppEnv) -> Path:
    return app_env.home / "benchmark" / app_env.app / "benchmark.json"


def benchmark_sync(app_env: AppEnv, modes_enabled: int | str | None = None, scheduler: str | None = None,
                   workers: dict[str, int] | None = None, on_line: Line | None = None, **args: Any) -> dict:
    """Run every mode allowed by ``modes_enabled`` that this machine supports; write benchmark.json."""
    on_line = on_line or _print
    ctx = resolve(app_env, mode=modes_enabled, scheduler=scheduler, workers=workers, args=args)
    rows = []
    for mode in enabled_modes(ctx.mode):
        reason = unsupported_reason(mode)
        if reason:
            on_line(f"benchmark: skipping mode {int(mode)} ({mode_string(mode)}): {reason}")
            rows.append({"mode": int(mode), "mode_string": mode_string(mode), "status": "skipped",
                         "seconds": None, "reason": reason})
            continue
        on_line(f"benchmark: mode {int(mode)} ({mode_string(mode)})")
        res = run_sync(app_env, mode=int(mode), scheduler=ctx.scheduler, workers=ctx.workers,
                       on_line=on_line, **ctx.args_dict)
        timing = _timing(res.run_dir)
        rows.append({"mode": int(mode), "mode_string": mode_string(mode), "status": res.status,
                     "seconds": res.seconds, "execution_seconds": timing.get("execution_seconds"),
                     "orchestration_id": res.orchestration_id})
    ok = [r for r in rows if r["status"] == "completed"]
    fastest = min(ok, key=lambda r: r["seconds"])["mode"] if ok else None
    doc = {"app": app_env.app, "args": ctx.args_dict, "workers": ctx.workers, "created_at": time.time(),
           "results": rows, "fastest": fastest}
    workspace.atomic_write_json(benchmark_path(app_env), doc)
    return doc


def _timing(run_dir: str) -> dict:
    try:
        return json.loads((Path(run_dir) / "timing.json").read_text())
    except (OSError, ValueError):
        return {}


class AGI:
    """Async facade; every method runs the same library code as the UI and the CLI."""

    PYTHON_MODE = 0
    POOL = int(Mode.POOL)
    CYTHON = int(Mode.CYTHON)
    DASK = int(Mode.DASK)
    RAPIDS = int(Mode.RAPIDS)

    @staticmethod
    async def install(app_env: AppEnv, modes_enabled: int | str | None = None,
                      workers: dict[str, int] | None = None, on_line: Line | None = None, force: bool = False):
        """Provision the app's worker environment (uv venv, deps, Cython build when asked)."""
        return await asyncio.to_thread(install_sync, app_env, modes_enabled, workers, on_line, force)

    @staticmethod
    async def get_distrib(app_env: AppEnv, scheduler: str | None = None, workers: dict[str, int] | None = None,
                          **args: Any):
        """Compute and save the work plan (partitions over worker slots); returns the WorkPlan."""
        return await asyncio.to_thread(get_distrib_sync, app_env, scheduler, workers, True, **args)

    @staticmethod
    async def run(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
                  workers: dict[str, int] | None = None, detach: bool = False, on_line: Line | None = None,
                  **args: Any) -> RunResult:
        """Run the app as an orchestration executed by a driver process; waits unless ``detach``."""
        return await asyncio.to_thread(run_sync, app_env, mode, scheduler, workers, detach, on_line, **args)

    @staticmethod
    async def serve(app_env: AppEnv, action: str = "status", **kwargs: Any) -> dict:
        """Service mode: ``start``, ``status``, ``health``, ``stop`` or ``submit`` jobs to long-lived loops.

        Returns the ``agi.service.health.v1`` payload (also written to health.json); see
        :func:`switchyard.service.service.serve_sync` for the keyword arguments.
        """
        from switchyard.service.service import serve_sync

        return await asyncio.to_thread(serve_sync, app_env, action, **kwargs)

    @staticmethod
    async def benchmark(app_env: AppEnv, modes_enabled: int | str | None = None, scheduler: str | None = None,
                        workers: dict[str, int] | None = None, on_line: Line | None = None, **args: Any) -> dict:
        """Run every enabled mode and write benchmark.json (seconds per mode)."""
        return await asyncio.to_thread(benchmark_sync, app_env, modes_enabled, scheduler, workers, on_line,
                                       **args)
