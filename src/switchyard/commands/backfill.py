"""``switchyard backfill run|list|show|stop``: one run of an app per value of one of its args.

``run APP --key K (--from A --to B [--step N] | --keys a,b,c)`` launches the runs, at most
``--concurrency`` unfinished at once, and waits for them; ``--dry-run`` prints what it would
launch or skip and why (with ``--json``: ``{"items": [...]}``). ``list`` shows every backfill
with its progress, ``show ID`` one, ``stop ID`` asks a running backfill to stop launching.
Ctrl-C stops launching too; runs already launched go on in their driver processes.
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import Parser, _mode

    b = sub.add_parser("backfill", help="run an app once per value of one of its args (a range or a list)")
    bsub = b.add_subparsers(dest="action", required=True, parser_class=Parser)

    run = bsub.add_parser("run", parents=[common, cluster],
                          help="launch one run per value, at most --concurrency at once, and wait")
    run.add_argument("app")
    run.add_argument("--key", required=True, help="the arg the backfill varies (an int, date or other arg)")
    run.add_argument("--from", dest="start", metavar="A", help="first value: a whole number or YYYY-MM-DD")
    run.add_argument("--to", dest="end", metavar="B", help="last value, inclusive")
    run.add_argument("--step", help="range step: whole numbers, or days for a date (default 1)")
    run.add_argument("--keys", help="the values as a list instead of a range: a,b,c")
    run.add_argument("--concurrency", default="3", help="most runs unfinished at once (default 3)")
    run.add_argument("--only", default="all",
                     help="all (default), missing (no completed run), failed (newest run failed), "
                          "or missing,failed; a value with a run in progress is never relaunched")
    run.add_argument("--dry-run", action="store_true", help="print what would be launched and why; launch nothing")
    run.add_argument("--mode", type=_mode, help="0..15 or rdcp string for every run (default: [cluster])")
    run.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the run store")
    run.set_defaults(func=cmd_run)

    ls = bsub.add_parser("list", parents=[common], help="backfills, newest first, with their progress")
    ls.add_argument("--app", help="only this app")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_list)

    show = bsub.add_parser("show", parents=[common], help="one backfill: progress and the run of each value")
    show.add_argument("id")
    show.set_defaults(func=cmd_show)

    stop = bsub.add_parser("stop", parents=[common], help="stop launching (launched runs go on)")
    stop.add_argument("id")
    stop.set_defaults(func=cmd_stop)


from switchyard.commands.orchestrations import _emit, _store, _when  # noqa: E402 - one way to print


def cmd_run(ns: argparse.Namespace) -> int:
    from switchyard.app import AppEnv
    from switchyard.schedule.backfill import check_concurrency, label, plan_backfill, run_backfill
    from switchyard.schedule.backfill_keys import backfill_values

    app_env = AppEnv(ns.app, apps_dir=ns.apps_dir).check()
    concurrency = check_concurrency(ns.concurrency)
    args = dict(ns.arg)
    values = backfill_values(app_env, ns.key, start=ns.start, end=ns.end, step=ns.step, keys=ns.keys, args=args)
    if ns.dry_run:
        items = plan_backfill(app_env, ns.key, values, ns.only)
        launch = [i for i in items if i.action == "launch"]
        head = (f"backfill of '{ns.app}' over {ns.key} (only {ns.only}, at most {concurrency} at once): "
                f"{len(launch)} of {len(items)} values would be launched")
        width = max((len(label(i.value)) for i in items), default=0)
        lines = [f"{i.action:<6} {ns.key}={label(i.value):<{width}}  {i.reason}" for i in items]
        _emit(ns, {"app": ns.app, "key": ns.key, "only": ns.only, "concurrency": concurrency, "dry_run": True,
                   "to_launch": len(launch), "items": [i.to_dict() for i in items]}, "\n".join([head, *lines]))
        return 0
    stream = sys.stderr if ns.json else sys.stdout
    summary = run_backfill(app_env, ns.key, values, concurrency=concurrency, only=ns.only, mode=ns.mode,
                           args=args, workers=ns.workers, scheduler=ns.scheduler, poll=ns.poll,
                           on_line=lambda line: print(line, file=stream, flush=True))
    if ns.json:
        print(json.dumps(summary, default=str))
    return 0 if summary["status"] == "completed" else EXIT_FAILED


def _row_text(d: dict) -> str:
    return (f"{d['id']}  {d['status']:<11} {d['app']:<12} {d['key']:<10} {len(d['values']):>5} values  "
            f"launched {len(d['launched'])}/{d['to_launch']}: {d['completed']} completed, {d['failed']} failed, "
            f"{d['active']} unfinished  peak {d['peak_concurrency']}/{d['concurrency']}  {_when(d['created_at'])}")


def cmd_list(ns: argparse.Namespace) -> int:
    from switchyard.exceptions import SwitchyardError
    from switchyard.schedule.backfill import list_backfills

    if ns.limit < 1:
        raise SwitchyardError(f"--limit {ns.limit}: give a whole number >= 1")
    rows = list_backfills(_store(), app=ns.app, limit=ns.limit)
    _emit(ns, {"backfills": rows, "count": len(rows)}, "\n".join(_row_text(r) for r in rows) or "no backfills")
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    from switchyard.schedule.backfill import get_backfill

    d = get_backfill(_store(), ns.id)
    lines = [_row_text(d), f"  only {d['only']}, {d['skipped']} skipped, ended {_when(d['ended_at'])}"]
    if d["error"]:
        lines.append(f"  error: {d['error']}")
    lines += [f"  {d['key']}={value}: {oid}" for value, oid in d["launched"].items()]
    _emit(ns, d, "\n".join(lines))
    return 0


def cmd_stop(ns: argparse.Namespace) -> int:
    from switchyard.schedule.backfill import stop_backfill

    d = stop_backfill(_store(), ns.id)
    _emit(ns, d, f"backfill {d['id']}: asked to stop launching (status {d['status']}); launched runs go on")
    return 0
