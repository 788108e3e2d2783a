"""``switchyard metrics APP``: run metrics of an app from the run store.

``--json`` prints ``{"runs": [...]}`` (see :func:`switchyard.analysis.metrics.run_metrics`);
``--prometheus`` prints the Prometheus text exposition of every app, as ``GET /metrics``
serves it; without either, one line per run.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    p = sub.add_parser("metrics", parents=[common], help="run metrics of an app (JSON or Prometheus text)")
    p.add_argument("app", help="the app whose runs to report")
    p.add_argument("--limit", type=int, default=50, help="newest runs to report (default 50)")
    p.add_argument("--no-batches", action="store_true", help="leave out the per-batch timings")
    p.add_argument("--prometheus", action="store_true",
                   help="print the Prometheus text format (all apps) instead")
    p.set_defaults(func=cmd_metrics)


def cmd_metrics(ns: argparse.Namespace) -> int:
    from switchyard import workspace
    from switchyard.analysis.metrics import prometheus_text, run_metrics
    from switchyard.app import AppEnv, discover_apps
    from switchyard.exceptions import AppNotFound, SwitchyardError
    from switchyard.runs.store import RunStore

    if ns.limit < 1:
        raise SwitchyardError(f"--limit {ns.limit}: give a whole number >= 1")
    store = RunStore(workspace.home() / "switchyard.db")
    if ns.prometheus:
        print(prometheus_text(store, limit=max(ns.limit, 500)), end="")
        return 0
    doc = run_metrics(store, app=ns.app, limit=ns.limit, with_batches=not ns.no_batches)
    if not doc["runs"]:
        # An app without runs is fine; a name that is neither an app nor in the store is a typo.
        apps_path = AppEnv(ns.app, apps_dir=ns.apps_dir).apps_path
        known = discover_apps(apps_path)
        if ns.app not in known:
            raise AppNotFound(ns.app, apps_path, known)
    if ns.json:
        print(json.dumps(doc, default=str))
        return 0
    if not doc["runs"]:
        print(f"no runs of app '{ns.app}' in {store.path}")
    for r in doc["runs"]:
        took = f"{r['seconds']:.2f} s" if r["seconds"] is not None else "-"
        mean = r["batch_seconds"]["mean"]
        print(f"{r['id']}  {r['status']:<11} mode {r['mode']:>2} ({r['mode_string']})  "
              f"{r['worker_count']} workers  {r['completed_batches']}/{r['total_batches']} batches  {took}"
              + (f"  mean batch {mean:.2f} s" if mean is not None else ""))
    return 0
