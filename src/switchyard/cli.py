"""The ``switchyard`` command: the same library calls as the snippets and the UI.

Operator errors print one line (``switchyard: error: ...``) and exit 2; a run
that fails exits 1. ``--json`` prints exactly one JSON object on stdout; log
lines then go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from switchyard.exceptions import SwitchyardError

EXIT_FAILED = 1
EXIT_USAGE = 2


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--arg {text!r} is not key=value: write e.g. --arg files=16")
    return key.strip(), value


def _workers(text: str) -> dict[str, int]:
    from switchyard.settings import parse_workers

    try:
        return parse_workers(text)
    except SwitchyardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _mode(text: str) -> int:
    from switchyard.modes import parse_mode

    try:
        return int(parse_mode(text))
    except SwitchyardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line."""

    def error(self, message: str):  # type: ignore[override]
        print(f"switchyard: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--apps-dir", help="folder holding the apps (default: ./apps or $SWITCHYARD_APPS)")
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    cluster = Parser(add_help=False)
    cluster.add_argument("--workers", type=_workers, help="host:count[,host:count] (default: [cluster.workers])")
    cluster.add_argument("--scheduler", help="scheduler host:port (default: [cluster].scheduler)")
    cluster.add_argument("--arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                         help="override an [args] value for this call (repeatable)")

    p = Parser(prog="switchyard", description="Operator workbench for distributed batch work.")
    sub = p.add_subparsers(dest="command", required=True)

    ui = sub.add_parser("ui", parents=[common], help="start the web workbench on 127.0.0.1")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--address", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1; any other needs --expose)")
    ui.add_argument("--expose", action="store_true",
                    help="allow a non-loopback --address: put a reverse proxy with authentication in front")

    sub.add_parser("apps", parents=[common], help="list the apps in the apps folder")

    inst = sub.add_parser("install", parents=[common], help="create or update the app's worker environment")
    inst.add_argument("app")
    inst.add_argument("--mode", type=_mode, help="modes to enable (int or rdcp; cython builds the app)")
    inst.add_argument("--workers", type=_workers)
    inst.add_argument("--force", action="store_true", help="rebuild even when nothing changed")

    dist = sub.add_parser("distrib", parents=[common, cluster], help="compute and save the work plan")
    dist.add_argument("app")
    dist.add_argument("--costs", choices=["weights", "measured"], default="weights",
                      help="plan from the app's weights (default) or from costs measured in its past runs")

    run = sub.add_parser("run", parents=[common, cluster], help="run the app (waits unless --detach)")
    run.add_argument("app")
    run.add_argument("--mode", type=_mode, help="0..15 or rdcp string, e.g. 4 or _d__ (default: [cluster])")
    run.add_argument("--detach", action="store_true", help="start the driver and print the orchestration id")
    run.add_argument("--engine-log", action="store_true",
                     help="also follow the engine's lines that run.log leaves out (runs/<id>/engine.log)")
    run.add_argument("--backup-tasks", action="store_true",
                     help="near the end, start a copy of a straggling batch on a free worker; the first "
                          "copy to complete wins (apps with pure_batches = True, dask modes)")

    bench = sub.add_parser("bench", parents=[common, cluster], help="run every enabled mode; write benchmark.json")
    bench.add_argument("app")
    bench.add_argument("--mode", type=_mode, help="modes to enable, e.g. 7 runs 0..7 (default: [cluster])")

    snip = sub.add_parser("snippet", parents=[common], help="print the Python snippet of an action")
    snip.add_argument("app")
    snip.add_argument("kind", choices=["install", "distrib", "run"])
    snip.add_argument("--save", action="store_true", help="also save it under the workspace snippets folder")
    for module in _command_modules():
        module.register(sub, common, cluster)
    return p


def add_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command with subcommands (``switchyard NAME ACTION``), each reporting usage errors in one line."""
    return sub.add_parser(name, help=help).add_subparsers(dest="action", required=True, parser_class=Parser)


# Subcommand groups that live in their own modules: each has
# register(subparsers, common_parent, cluster_parent) adding parsers whose
# defaults carry func=<callable(ns) -> int>.
COMMAND_MODULES: tuple[str, ...] = ("switchyard.commands.orchestrations", "switchyard.commands.cluster",
                                    "switchyard.commands.metrics", "switchyard.commands.pipeline",
                                    "switchyard.commands.serve", "switchyard.commands.schedule",
                                    "switchyard.commands.alerts", "switchyard.commands.backfill",
                                    "switchyard.commands.agent", "switchyard.commands.data",
                                    "switchyard.commands.new", "switchyard.commands.notebook")


def _command_modules():
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


def _app_env(ns: argparse.Namespace):
    from switchyard.app import AppEnv

    return AppEnv(ns.app, apps_dir=ns.apps_dir).check()


def _emit(ns: argparse.Namespace, obj: Any, text: str) -> None:
    if ns.json:
        print(json.dumps(obj, default=str))
    else:
        print(text)


def _log_line(ns: argparse.Namespace):
    stream = sys.stderr if ns.json else sys.stdout

    def on_line(line: str) -> None:
        print(line, file=stream, flush=True)

    return on_line


def cmd_ui(ns: argparse.Namespace) -> int:
    import subprocess

    from switchyard.binds import check_ui_bind

    check_ui_bind(ns.address, ns.expose)
    root = Path(__file__).resolve().parents[2]
    entry = root / "streamlit_app.py"
    env = dict(os.environ)
    if ns.apps_dir:
        env["SWITCHYARD_APPS"] = str(Path(ns.apps_dir).resolve())
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.address", ns.address,
           "--server.port", str(ns.port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    print(f"switchyard: workbench on http://{ns.address}:{ns.port}", flush=True)
    return subprocess.call(cmd, env=env, cwd=root)


def cmd_apps(ns: argparse.Namespace) -> int:
    from switchyard.app import AppEnv, discover_apps

    root = AppEnv("_", apps_dir=ns.apps_dir).apps_path
    names = discover_apps(root)
    _emit(ns, {"apps_dir": str(root), "apps": names}, "\n".join(names) or f"no apps in {root}")
    return 0


def cmd_install(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI

    res = asyncio.run(AGI.install(_app_env(ns), modes_enabled=ns.mode, workers=ns.workers,
                                  on_line=_log_line(ns), force=ns.force))
    obj = {"app": ns.app, "ok": res.ok, "skipped": res.skipped, "seconds": res.seconds,
           "env_dir": str(res.env_dir), "log": str(res.log_path), "hosts": {"127.0.0.1": "ok" if res.ok else "failed"}}
    _emit(ns, obj, f"install of '{ns.app}': {'up to date' if res.skipped else 'done'} in {res.seconds:.1f} s "
                   f"({res.env_dir})")
    return 0 if res.ok else EXIT_FAILED


def cmd_distrib(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI
    from switchyard.runs.submit import plan_path

    app_env = _app_env(ns)
    plan = asyncio.run(AGI.get_distrib(app_env, scheduler=ns.scheduler, workers=ns.workers, costs=ns.costs,
                                       **dict(ns.arg)))
    summary = plan.summary()
    summary["path"] = str(plan_path(app_env))
    loads = ", ".join(f"{k} {v:.1f}%" for k, v in plan.load_percent().items())
    predicted = summary["predicted_makespan_seconds"]
    _emit(ns, summary, f"{summary['partitions']} partitions over {summary['workers']} workers: makespan "
                       f"{plan.makespan:.4g} (lower bound {plan.lower_bound:.4g}); loads {loads}; saved to "
                       f"{summary['path']}" + (f"\nnote: {plan.note}" if plan.note else "")
                       + f"\ncosts: {plan.cost_note}" + (f"; predicted makespan {predicted:.3g} s"
                                                         if predicted is not None else ""))
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI

    res = asyncio.run(AGI.run(_app_env(ns), mode=ns.mode, scheduler=ns.scheduler, workers=ns.workers,
                              detach=ns.detach, on_line=_log_line(ns), engine_log=ns.engine_log,
                              backups=True if ns.backup_tasks else None, **dict(ns.arg)))
    _emit(ns, res.to_dict(), str(res))
    if ns.detach:
        return 0
    return 0 if res.status in ("completed", "paused") else EXIT_FAILED


def cmd_bench(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI
    from switchyard.runs.bench import benchmark_path

    app_env = _app_env(ns)
    doc = asyncio.run(AGI.benchmark(app_env, modes_enabled=ns.mode, scheduler=ns.scheduler,
                                    workers=ns.workers, on_line=_log_line(ns), **dict(ns.arg)))
    lines = [f"mode {r['mode']:>2} {r['mode_string']}: " +
             (f"{r['seconds']:.2f} s" if r["seconds"] is not None else r["status"]) for r in doc["results"]]
    lines.append(f"fastest: mode {doc['fastest']}; written to {benchmark_path(app_env)}")
    _emit(ns, doc, "\n".join(lines))
    return 0 if doc["fastest"] is not None else EXIT_FAILED


def cmd_snippet(ns: argparse.Namespace) -> int:
    from switchyard import snippets

    app_env = _app_env(ns)
    text = snippets.render_from_settings(ns.kind, app_env)
    path = snippets.save(app_env, ns.kind, text) if ns.save else None
    _emit(ns, {"kind": ns.kind, "code": text, "path": str(path) if path else None}, text.rstrip())
    return 0


COMMANDS = {"ui": cmd_ui, "apps": cmd_apps, "install": cmd_install, "distrib": cmd_distrib, "run": cmd_run,
            "bench": cmd_bench, "snippet": cmd_snippet}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        func = getattr(ns, "func", None) or COMMANDS[ns.command]
        return func(ns)
    except SwitchyardError as e:
        print(f"switchyard: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("switchyard: interrupted (a started run goes on in its driver process)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
