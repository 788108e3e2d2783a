"""``switchyard serve APP start|status|health|stop|submit``: service mode from the shell.

Each action prints a short summary, or with ``--json`` the ``agi.service.health.v1``
payload (see docs/service.md). ``health`` exits 1 when the health gate fails, so
scripts can use it as a check; ``submit`` queues the app's partitions as jobs and,
with ``--wait``, prints their results.
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common, cluster],
                       help="service mode: persistent worker loops (start, status, health, stop, submit)")
    p.add_argument("app")
    p.add_argument("action", choices=["start", "status", "health", "stop", "submit"])
    p.add_argument("--heartbeat-timeout", type=float, default=10.0,
                   help="seconds without a heartbeat before a loop is stale (start; default 10)")
    p.add_argument("--health-output", help="write health.json here (default <workspace>/service/<app>/)")
    p.add_argument("--wait", type=float, help="submit: wait up to this many seconds for the results")
    p.add_argument("--stop-cluster", action="store_true", help="stop: also stop the warm cluster")
    p.add_argument("--no-restart", action="store_true", help="report unhealthy loops without restarting them")
    p.add_argument("--no-watch", action="store_true",
                   help="start: no watcher (loops are then restarted only by status/health/submit)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(ns: argparse.Namespace) -> int:
    from switchyard.app import AppEnv
    from switchyard.service.service import serve_sync

    app_env = AppEnv(ns.app, apps_dir=ns.apps_dir).check()
    stream = sys.stderr if ns.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    payload = serve_sync(app_env, ns.action, workers=ns.workers, scheduler=ns.scheduler,
                         heartbeat_timeout=ns.heartbeat_timeout, health_output_path=ns.health_output,
                         wait=ns.wait, stop_cluster=ns.stop_cluster, auto_restart=not ns.no_restart,
                         watch=not ns.no_watch,
                         on_line=say, **dict(ns.arg))
    if ns.json:
        print(json.dumps(payload, default=str))
    else:
        print(summary(payload))
    if ns.action == "health" and not payload["gate"]["passed"]:
        return EXIT_FAILED
    return 0


def summary(p: dict) -> str:
    """A few lines for an operator: status, counts, unhealthy rows, the gate's verdict."""
    gate = p["gate"]
    lines = [f"service of '{p['app']}': {p['status']}: {p['workers_running_count']} loop(s), "
             f"{p['workers_healthy_count']} healthy, {p['workers_unhealthy_count']} unhealthy, "
             f"{p['restarts_total']} restart(s)"]
    for r in p["worker_health"]:
        if not r["healthy"]:
            lines.append(f"  {r['worker']}: {r['reason']} (loop {r['future_state']}, heartbeat "
                         f"{r['heartbeat_state']})")
    for r in p.get("restarted_now", []):
        lines.append(f"  restarted {r['slot']} ({r['reason']})")
    for r in p.get("restarts_held", []):
        lines.append(f"  restart held for {r['slot']} ({r['reason']}): {r['why']}")
    watcher = p.get("watcher") or {"running": False}
    if p["status"] != "stopped" or watcher["running"]:
        lines.append(f"watcher: running (pid {watcher['pid']} on {watcher['host']})" if watcher["running"]
                     else "watcher: not running (loops are restarted only by status/health/submit)")
    if p.get("jobs"):
        lines.append(f"  queued {len(p['jobs'])} job(s)")
    for r in p.get("results", []):
        lines.append(f"  {r['partition']['name']}: " + (f"error {r['error']}" if r["error"] else f"{r['result']}"))
    lines.append("gate: passed" if gate["passed"] else f"gate: FAILED: {'; '.join(gate['reasons'])}")
    lines.append(f"health: {p['health_path']}")
    return "\n".join(lines)
