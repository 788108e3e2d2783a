"""``switchyard schedule add|list|show|pause|resume|delete`` and ``switchyard scheduler``.

``schedule add --json`` prints the new schedule (its ``id`` first among the fields);
``scheduler`` runs the scheduler in the foreground (``start`` / ``stop`` / ``status`` to
run it in the background, stop it, or see whether one runs).
"""

from __future__ import annotations

import argparse
import json
import time


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds: write e.g. 60") from None
    return value


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import _kv, _mode

    p = sub.add_parser("schedule", help="schedules and file triggers that launch runs")
    ssub = p.add_subparsers(dest="schedule_command", required=True)

    add = ssub.add_parser("add", parents=[common], help="add a schedule (prints its id)")
    add.add_argument("app")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=_seconds, metavar="SECONDS", help="fire every SECONDS (aligned to the epoch)")
    when.add_argument("--cron", metavar="EXPR", help="cron expression: minute hour day month weekday")
    when.add_argument("--watch", nargs="?", const=True, metavar="FOLDER",
                      help="fire when new files appear in FOLDER (default: the app's inbox folder)")
    add.add_argument("--tz", default="UTC", help="time zone of --cron, an IANA name (default UTC)")
    add.add_argument("--pipeline", action="store_true", help="run the app's pipeline instead of the app")
    add.add_argument("--overlap", default="skip", help="when its last run still runs: skip (default), queue, cancel")
    add.add_argument("--catch-up", default="last", help="fires missed while no scheduler ran: none, last (default), all")
    add.add_argument("--catch-up-window", type=_seconds, metavar="SECONDS",
                     help="only catch up missed fires this recent")
    add.add_argument("--debounce", type=_seconds, default=5.0,
                     help="seconds without new files before they start a run (default 5)")
    add.add_argument("--pattern", default="*", help="file name pattern of --watch (default *)")
    add.add_argument("--files-arg", default="inputs", help="the run argument that receives the new files")
    add.add_argument("--when", dest="condition", metavar="EXPR",
                     help="launch only if this holds, e.g. \"n_files >= 2 and last_status != 'failed'\"")
    add.add_argument("--arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                     help="run argument for every launch (repeatable)")
    add.add_argument("--mode", type=_mode, help="run mode (default: the app's [cluster] settings)")
    add.add_argument("--name", default="", help="a label shown in listings")
    add.set_defaults(func=cmd_add)

    ls = ssub.add_parser("list", parents=[common], help="list schedules")
    ls.add_argument("--app", help="only this app's schedules")
    ls.set_defaults(func=cmd_list)

    show = ssub.add_parser("show", parents=[common], help="one schedule with its recent triggers")
    show.add_argument("id")
    show.add_argument("--triggers", type=int, default=20, help="newest triggers to show (default 20)")
    show.set_defaults(func=cmd_show)

    for name, helptext in (("pause", "stop firing (nothing is replayed on resume)"),
                           ("resume", "fire again from now on"),
                           ("delete", "remove it and its trigger records (its runs stay)")):
        c = ssub.add_parser(name, parents=[common], help=helptext)
        c.add_argument("id")
        c.set_defaults(func=cmd_change, change=name)

    sch = sub.add_parser("scheduler", parents=[common], help="run the scheduler (foreground by default)")
    sch.add_argument("action", nargs="?", default="run", choices=["run", "start", "stop", "status"],
                     help="run: in the foreground; start: in the background; stop; status")
    sch.add_argument("--once", action="store_true", help="run: one pass, then exit")
    sch.set_defaults(func=cmd_scheduler)


def _home():
    from switchyard import workspace

    return workspace.home()


def _clock(t) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _print_schedule(d: dict) -> None:
    last = d.get("last_trigger")
    tail = f"  last: {last['outcome']} {_clock(last['at'])}" if last else ""
    print(f"{d['id']}  {d['status']:<6}  {d['target']} of {d['app']}  {d['describe']}  "
          f"next {_clock(d['next_fire_at'])}{tail}")


def cmd_add(ns: argparse.Namespace) -> int:
    from switchyard.app import AppEnv
    from switchyard.schedule import actions

    env = AppEnv(ns.app, apps_dir=ns.apps_dir)
    d = actions.add(env, every=ns.every, cron=ns.cron, tz=ns.tz, watch=ns.watch, pattern=ns.pattern,
                    debounce=ns.debounce, files_arg=ns.files_arg, pipeline=ns.pipeline, overlap=ns.overlap,
                    catch_up=ns.catch_up, catch_up_window=ns.catch_up_window, condition=ns.condition,
                    args=dict(ns.arg), mode=ns.mode, name=ns.name)
    status = actions.scheduler_status(env.home)
    if ns.json:
        print(json.dumps({"id": d["id"], **d, "scheduler_running": status["running"]}, default=str))
        return 0
    print(f"schedule {d['id']} added: {d['target']} of {d['app']}, {d['describe']}")
    if not status["running"]:
        print("no scheduler is running: start one with `switchyard scheduler start` (or open the workbench)")
    return 0


def cmd_list(ns: argparse.Namespace) -> int:
    from switchyard.schedule import actions

    rows = actions.listing(_home(), app=ns.app)
    if ns.json:
        print(json.dumps({"schedules": rows, "scheduler": actions.scheduler_status(_home())}, default=str))
        return 0
    if not rows:
        print("no schedules: add one with `switchyard schedule add APP --every 3600`")
    for d in rows:
        _print_schedule(d)
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    from switchyard.schedule import actions

    d = actions.detail(ns.id, _home(), triggers=max(1, ns.triggers))
    if ns.json:
        print(json.dumps(d, default=str))
        return 0
    _print_schedule({**d, "last_trigger": d["triggers"][0] if d["triggers"] else None})
    print(f"  overlap {d['overlap']}, catch-up {d['catch_up']}"
          + (f", condition {d['condition']!r}" if d["condition"] else ""))
    for t in d["triggers"]:
        files = f"  {len(t['files'])} files" if t["files"] else ""
        print(f"  #{t['id']}  due {_clock(t['due_at'])}  {t['outcome']:<15} {t['orchestration_id'] or ''}"
              f"{files}  {t['message']}")
    return 0


def cmd_change(ns: argparse.Namespace) -> int:
    from switchyard.schedule import actions

    d = getattr(actions, ns.change)(ns.id, _home())
    if ns.json:
        print(json.dumps(d, default=str))
    else:
        past = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[ns.change]
        print(f"schedule {d['id']} {past}")
    return 0


def cmd_scheduler(ns: argparse.Namespace) -> int:
    import logging

    from switchyard.runs.store import RunStore
    from switchyard.schedule import actions, scheduler

    home = _home()
    if ns.action == "status":
        st = actions.scheduler_status(home)
        if ns.json:
            print(json.dumps(st, default=str))
        elif st["running"]:
            print(f"scheduler running: pid {st['pid']} on {st['host']} since {_clock(st['started_at'])}, "
                  f"{st['schedules']} schedules")
        else:
            print(f"no scheduler running ({st['schedules']} schedules)")
        return 0
    if ns.action == "start":
        lease = scheduler.start_detached(home, ns.apps_dir)
        out = {"running": True, "pid": lease["pid"], "log": str(scheduler.log_path(home))}
        print(json.dumps(out) if ns.json else f"scheduler running: pid {lease['pid']}, log {out['log']}")
        return 0
    if ns.action == "stop":
        lease = scheduler.stop_running(home)
        out = {"stopped": lease is not None, "pid": lease["pid"] if lease else None}
        print(json.dumps(out) if ns.json else
              (f"scheduler pid {lease['pid']} stopped" if lease else "no scheduler was running"))
        return 0
    store = RunStore(home / "switchyard.db")
    if ns.once:
        written = scheduler.Scheduler(store).tick()
        if ns.json:
            print(json.dumps({"triggers": written}, default=str))
        else:
            for t in written:
                print(f"{t['schedule_id']}: {t['outcome']} {t['orchestration_id'] or ''} {t['message']}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scheduler.serve(store)
    return 0
