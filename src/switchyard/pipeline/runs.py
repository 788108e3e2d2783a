"""Starting pipeline runs and reading them back: the one path behind the page and the CLI.

A pipeline run is an orchestration of kind ``pipeline`` with one batch per step
(named by the step id). The pipeline is snapshotted into the run folder
(``runs/<id>/pipeline.json``) so later edits do not change a run in flight, and
its workflow id (``pipeline:<app>:<digest>``) names the pipeline version.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Callable

from switchyard.app import AppEnv
from switchyard.pipeline import model
from switchyard.pipeline.breaker import Breakers, breakers_path
from switchyard.pipeline.driver import SNAPSHOT
from switchyard.pipeline.model import Pipeline, PipelineError
from switchyard.pipeline.runner import step_log
from switchyard.runs.store import RunStore
from switchyard.workspace import atomic_write_json

KIND = "pipeline"
DRIVER_MODULE = "switchyard.pipeline.driver"


def workflow_id(app: str, p: Pipeline) -> str:
    digest = hashlib.sha256(model.dumps(p).encode()).hexdigest()[:10]
    return f"pipeline:{app}:{digest}"


def open_store(app_env: AppEnv) -> RunStore:
    return RunStore(app_env.home / "switchyard.db")


def step_python(app_env: AppEnv, p: Pipeline) -> str:
    """The python of the steps: this (workbench) interpreter, or with ``python = "app"`` the app's
    worker environment python (this one while that environment is not installed)."""
    from switchyard.cluster.env import env_python

    py = env_python(app_env)
    return str(py) if p.python == "app" and py.exists() else sys.executable


def create_run(app_env: AppEnv, pipeline: Pipeline | None = None, *, only: str | None = None,
               allow_stale: bool = False, scheduler: str | None = None,
               store: RunStore | None = None, origin: dict | None = None) -> str:
    """Validate the pipeline and record a pending run of it (no driver started); return its id.

    Raises:
        PipelineError: the pipeline is invalid (ids named), empty, or has stale generated steps
            and ``allow_stale`` is false.
    """
    p = pipeline if pipeline is not None else model.load(app_env)
    model.validate(p)
    if not p.steps:
        raise PipelineError(f"app '{app_env.app}' has no pipeline steps: add a step on the Pipeline page "
                            f"or in {model.pipeline_path(app_env)}")
    chosen = [p.step(only)] if only else list(p.steps)
    if only and chosen[0].fallback:
        chosen.append(p.step(chosen[0].fallback))
    args = model.current_args(app_env) if app_env.settings_path.is_file() else {}
    stale = {sid: keys for sid, keys in model.stale_steps(p, args).items() if sid in {s.id for s in chosen}}
    if stale and not allow_stale:
        raise PipelineError(model.stale_message(stale) + ": Regenerate it, or confirm running it as is")
    store = store or open_store(app_env)
    oid = store.new_id()
    run_dir = app_env.home / "runs" / oid
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / SNAPSHOT, p.to_dict())
    from switchyard.cluster.env import worker_environ

    store.create_orchestration(
        oid=oid, kind=KIND, app=app_env.app, mode=0, args=args, workers={"127.0.0.1": p.workers},
        scheduler=scheduler, plan_fingerprint=None, run_dir=str(run_dir),
        batches=[{"name": s.id} for s in chosen],
        options={"driver": DRIVER_MODULE, "apps_dir": str(app_env.apps_path), "scheduler": scheduler,
                 "python": step_python(app_env, p), "workflow_id": workflow_id(app_env.app, p), "only": only,
                 "allow_stale": allow_stale, "stale": stale,
                 **({"origin": dict(origin)} if origin else {}),
                 "step_env": {k: v for k, v in worker_environ(app_env, False).items()
                              if k.startswith("SWITCHYARD_")}},
        attempts_limit=max(s.retries for s in chosen) + 1,
    )
    return oid


def start_run(app_env: AppEnv, *, only: str | None = None, allow_stale: bool = False,
              scheduler: str | None = None, on_line: Callable[[str], None] | None = None,
              origin: dict | None = None) -> str:
    """Record a run of the app's pipeline and hand it to the queue, which starts its driver
    (``python -m switchyard.pipeline.driver``) in the app's worker environment; return its id.

    ``origin`` (what launched it, e.g. a schedule) is kept in the run's options."""
    from switchyard.runs.submit import ensure_env
    from switchyard.runs import launcher

    say = on_line or (lambda line: None)
    ensure_env(app_env, False, say)  # the queue starts drivers with the app's env python
    store = open_store(app_env)
    oid = create_run(app_env, only=only, allow_stale=allow_stale, scheduler=scheduler, store=store,
                     origin=origin)
    proc = launcher.pump(store).get(oid)
    if proc is not None:
        say(f"pipeline run {oid} started: driver pid {proc.pid}")
    else:
        say(f"pipeline run {oid} queued: it starts when a running orchestration ends")
    return oid


def history(app_env: AppEnv, limit: int = 50, store: RunStore | None = None) -> list[dict[str, Any]]:
    """The app's pipeline runs, newest first: id, workflow id, status, times, error, step statuses."""
    store = store or open_store(app_env)
    out = []
    for o in store.list(app=app_env.app, kind=KIND, limit=limit):
        d = {"orchestration_id": o.id, "workflow_id": o.options.get("workflow_id"), "status": o.status.value,
             "created_at": o.created_at, "started_at": o.started_at, "ended_at": o.ended_at,
             "seconds": o.seconds, "error": o.error, "run_dir": o.run_dir,
             "steps": {b.name: b.status.value for b in store.batches(o.id)}}
        out.append(d)
    return out


def run_detail(store: RunStore, oid: str) -> dict[str, Any]:
    """One run: status, error and per step its status, attempts, worker, seconds, error and log path."""
    o = store.get(oid)
    steps = []
    for b in store.batches(oid):
        steps.append({"id": b.name, "status": b.status.value, "attempts": b.attempts, "worker": b.worker,
                      "seconds": b.seconds, "error": b.error, "log": str(step_log(o.run_dir, b.name))})
    return {"orchestration_id": o.id, "workflow_id": o.options.get("workflow_id"), "app": o.app,
            "status": o.status.value, "error": o.error, "commands": o.to_dict()["commands"],
            "run_dir": o.run_dir, "steps": steps}


def last_statuses(app_env: AppEnv, store: RunStore | None = None) -> dict[str, str]:
    """Step id -> status in the app's most recent pipeline run (empty when none)."""
    runs = history(app_env, limit=1, store=store)
    return runs[0]["steps"] if runs else {}


def step_log_text(run_dir: str | Path, sid: str, n: int = 400) -> str:
    from switchyard.logs import tail

    path = step_log(run_dir, sid)
    return "\n".join(tail(path, n)) if path.is_file() else ""


def breaker_states(app_env: AppEnv, p: Pipeline) -> dict[str, dict[str, Any]]:
    """Kind -> breaker state for every step kind of the pipeline (closed when never failed)."""
    b = Breakers(breakers_path(app_env.home), app_env.app, p.breaker)
    return {s.breaker_kind: b.state(s.breaker_kind) for s in p.steps}
