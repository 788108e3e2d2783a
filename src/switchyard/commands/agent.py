"""``switchyard agent status|stop``: the run agents of the workspace.

A run agent (:mod:`switchyard.runs.agent`) is the resident process that forks the
drivers of one app environment. ``status`` lists every agent of the workspace: key,
pid, version, up since, idle seconds, drivers running; ``stop [APP]`` stops them (the
drivers they started go on; the next run starts a fresh agent). ``--json`` prints one
object: ``{"agents": [...]}`` or ``{"stopped": [...], "left": [...]}``.
"""

from __future__ import annotations

import argparse
import json

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import Parser

    a = sub.add_parser("agent", help="status and stop of the run agents (resident driver fork servers)")
    asub = a.add_subparsers(dest="action", required=True, parser_class=Parser)
    st = asub.add_parser("status", parents=[common], help="every run agent of the workspace")
    st.set_defaults(func=cmd_status)
    stop = asub.add_parser("stop", parents=[common], help="stop the run agents (of APP only, when given)")
    stop.add_argument("app", nargs="?", help="the app whose agents to stop (default: all)")
    stop.set_defaults(func=cmd_stop)


def cmd_status(ns: argparse.Namespace) -> int:
    from switchyard import workspace
    from switchyard.runs import agent

    rows = agent.status(workspace.home())
    text = ("\n".join(agent.describe(r) for r in rows)
            or "no run agent in this workspace (the next run starts one)")
    print(json.dumps({"agents": rows}) if ns.json else text, flush=True)
    return 0


def cmd_stop(ns: argparse.Namespace) -> int:
    from switchyard import workspace
    from switchyard.runs import agent

    out = agent.stop(workspace.home(), ns.app)
    if out["left"]:
        text = f"still running: {', '.join(out['left'])} (stop again, or kill its pid)"
    else:
        text = f"stopped: {', '.join(out['stopped'])}" if out["stopped"] else "no run agent was running"
    print(json.dumps(out) if ns.json else text, flush=True)
    return EXIT_FAILED if out["left"] else 0
