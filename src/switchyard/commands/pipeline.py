"""``switchyard pipeline list|show|run APP``: the app's pipeline steps, its runs, and running it.

With ``--json`` each prints one JSON object on stdout. ``run --json`` prints the
orchestration id, the workflow id, the status and the status of each step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import Parser

    pipe = sub.add_parser("pipeline", help="the app's pipeline of steps: list, show runs, run it")
    psub = pipe.add_subparsers(dest="action", required=True, parser_class=Parser)

    ls = psub.add_parser("list", parents=[common], help="the steps, their order and staleness")
    ls.add_argument("app")
    ls.set_defaults(func=cmd_list)

    show = psub.add_parser("show", parents=[common], help="a pipeline run (default: the latest) and the history")
    show.add_argument("app")
    show.add_argument("--run", metavar="ID", help="this orchestration id instead of the latest run")
    show.add_argument("--log", action="store_true", help="include each step's log")
    show.add_argument("--limit", type=int, default=10, help="runs in the history (default 10)")
    show.set_defaults(func=cmd_show)

    run = psub.add_parser("run", parents=[common], help="run the pipeline (waits unless --detach)")
    run.add_argument("app")
    run.add_argument("--step", metavar="ID", help="run only this step (and its fallback)")
    run.add_argument("--detach", action="store_true", help="start the driver and print the orchestration id")
    run.add_argument("--allow-stale", action="store_true",
                     help="run generated steps even when [args] changed since they were generated")
    run.add_argument("--scheduler", help="an existing Dask scheduler host:port (default: a local cluster)")
    run.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the end (default 3600)")
    run.set_defaults(func=cmd_run)


def _env(ns: argparse.Namespace):
    from switchyard.app import AppEnv

    return AppEnv(ns.app, apps_dir=ns.apps_dir).check()


def _emit(ns: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, default=str) if ns.json else text)


def cmd_list(ns: argparse.Namespace) -> int:
    from switchyard.pipeline import model
    from switchyard.pipeline.runs import breaker_states, last_statuses

    env = _env(ns)
    p = model.load(env)
    stale = model.stale_steps(p, model.current_args(env))
    last = last_statuses(env)
    steps = [{"id": s.id, "title": s.title, "source": s.source, "depends_on": s.depends_on,
              "fallback": s.fallback, "enabled": s.enabled, "retries": s.retries, "timeout": s.timeout,
              "stale": stale.get(s.id, []), "last_status": last.get(s.id)} for s in p.steps]
    d = {"app": env.app, "path": str(model.pipeline_path(env)), "steps": steps,
         "problems": model.problems(p), "breakers": breaker_states(env, p)}
    if not d["problems"]:
        d.update(order=p.order(), entry_points=p.entry_points(), finish_points=p.finish_points())
    lines = [f"pipeline of {env.app}: {len(steps)} steps ({d['path']})"]
    for s in steps:
        lines.append(f"  {s['id']:<16} {s['source']:<10} after [{', '.join(s['depends_on'])}]"
                     + (f" fallback {s['fallback']}" if s["fallback"] else "")
                     + f"  last: {s['last_status'] or '-'}"
                     + (f"  STALE ({', '.join(s['stale'])})" if s["stale"] else "")
                     + ("" if s["enabled"] else "  (disabled)"))
    lines += [f"  problem: {x}" for x in d["problems"]]
    _emit(ns, d, "\n".join(lines))
    return 0


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def cmd_show(ns: argparse.Namespace) -> int:
    from switchyard.exceptions import NotFound
    from switchyard.pipeline.runs import history, open_store, run_detail, step_log_text
    from switchyard.runs.control import sweep

    env = _env(ns)
    store = open_store(env)
    sweep(store)
    runs = history(env, limit=ns.limit, store=store)
    oid = ns.run or (runs[0]["orchestration_id"] if runs else None)
    if oid is None:
        raise NotFound(f"app '{env.app}' has no pipeline runs yet: switchyard pipeline run {env.app}")
    d = run_detail(store, oid)
    if ns.log:
        for s in d["steps"]:
            s["log_text"] = step_log_text(d["run_dir"], s["id"])
    d["history"] = runs
    lines = [f"{d['orchestration_id']}  {d['status']}  workflow {d['workflow_id']}"]
    for s in d["steps"]:
        secs = f"{s['seconds']:.2f} s" if s["seconds"] is not None else "-"
        lines.append(f"  {s['id']:<16} {s['status']:<9} attempts {s['attempts']}  {secs}"
                     + (f"  {s['error']}" if s["error"] else ""))
        if ns.log and s["log_text"]:
            lines += [f"    | {x}" for x in s["log_text"].splitlines()]
    if d["error"]:
        lines.append(f"  error: {d['error']}")
    lines.append("history:")
    lines += [f"  {r['orchestration_id']}  {r['status']:<11} {_when(r['created_at'])}" for r in runs]
    _emit(ns, d, "\n".join(lines))
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from switchyard.cli import EXIT_FAILED
    from switchyard.pipeline.runs import open_store, run_detail, start_run
    from switchyard.runs.control import sweep

    env = _env(ns)
    say = (lambda line: print(line, file=sys.stderr if ns.json else sys.stdout, flush=True))
    oid = start_run(env, only=ns.step, allow_stale=ns.allow_stale, scheduler=ns.scheduler, on_line=say)
    store = open_store(env)
    if not ns.detach:
        deadline = time.monotonic() + ns.timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            sweep(store, min_interval=2.0)
            for b in store.batches(oid):
                if seen.get(b.name) != b.status.value:
                    seen[b.name] = b.status.value
                    say(f"step {b.name}: {b.status.value}")
            if store.status(oid).is_finished or store.status(oid).value == "paused":
                break
            time.sleep(0.3)
    d = run_detail(store, oid)
    out = {"orchestration_id": oid, "workflow_id": d["workflow_id"], "status": d["status"],
           "error": d["error"], "steps": {s["id"]: s["status"] for s in d["steps"]}, "run_dir": d["run_dir"]}
    text = (f"pipeline run {oid}: {d['status']}\n"
            + "\n".join(f"  {k}: {v}" for k, v in out["steps"].items())
            + (f"\n  error: {d['error']}" if d["error"] else ""))
    _emit(ns, out, text)
    if ns.detach:
        return 0
    return 0 if d["status"] in ("completed", "paused") else EXIT_FAILED
