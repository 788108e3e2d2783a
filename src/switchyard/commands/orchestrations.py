"""``switchyard orchestrations list|show|pause|resume|cancel|retry|reprocess|dead|limit`` and
``switchyard api``: the same lifecycle functions as the HTTP API and the Orchestrations page.

With ``--json`` each prints one JSON object on stdout. ``show --json`` has the keys of
``run --json`` (orchestration_id, status, batches, completed, seconds, output) plus
progress and ``counts`` (batches per status).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

LIFECYCLE = ("pause", "resume", "cancel", "retry")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import Parser
    from switchyard.runs.state import BatchStatus, Status

    orch = sub.add_parser("orchestrations", aliases=["orch"], help="list, show and control orchestrations")
    osub = orch.add_subparsers(dest="action", required=True, parser_class=Parser)

    ls = osub.add_parser("list", parents=[common], help="orchestrations, newest first")
    ls.add_argument("--status", action="append", choices=[s.value for s in Status],
                    help="only these statuses (repeatable)")
    ls.add_argument("--app", help="only this app")
    ls.add_argument("--kind", help="only this kind (app, pipeline)")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_list)

    show = osub.add_parser("show", parents=[common], help="status, progress and batch counts of one")
    show.add_argument("id")
    show.add_argument("--batches", action="store_true",
                      help="include one page of batches (--limit, --offset or --after, filters)")
    show.add_argument("--limit", type=int, default=100, help="batches per page (default 100, at most 1000)")
    show.add_argument("--offset", type=int, default=0, help="skip this many matching batches")
    show.add_argument("--after", type=int, metavar="IDX",
                      help="the page after batch IDX (the previous page's next_after: cheap at any depth)")
    show.add_argument("--batch-status", action="append", choices=[s.value for s in BatchStatus],
                      help="only batches with this status (repeatable)")
    show.add_argument("--worker", help="only batches that ran on this worker")
    show.add_argument("--name", help="only batches whose name contains this text")
    show.add_argument("--error", help="only batches whose error contains this text")
    show.add_argument("--errors", action="store_true", help="include the error groups (by signature, with counts)")
    show.add_argument("--log", type=int, default=0, metavar="N", help="include the last N log lines")
    show.set_defaults(func=cmd_show)

    helps = {"pause": "stop submitting; paused once in-flight batches checkpointed",
             "resume": "continue a paused or interrupted one with a new driver",
             "cancel": "stop for good (cannot be resumed)",
             "retry": "run a failed one again (completed batches are kept)"}
    for command in LIFECYCLE:
        p = osub.add_parser(command, parents=[common], help=helps[command])
        p.add_argument("id")
        p.set_defaults(func=cmd_lifecycle, command_name=command)

    dead = osub.add_parser("dead", parents=[common], help="the dead-letter list of one")
    dead.add_argument("id")
    dead.set_defaults(func=cmd_dead)

    rep = osub.add_parser("reprocess", parents=[common], help="run dead-lettered batches again")
    rep.add_argument("id")
    rep.add_argument("--batch", type=int, action="append", metavar="IDX",
                     help="only this batch index (repeatable; default: every dead letter)")
    rep.set_defaults(func=cmd_reprocess)

    lim = osub.add_parser("limit", parents=[common], help="show or set how many run at once")
    lim.add_argument("max_running", nargs="?", type=int)
    lim.add_argument("--reset", action="store_true", help="back to the default")
    lim.set_defaults(func=cmd_limit)

    api = sub.add_parser("api", parents=[common], help="serve the HTTP API over the run store")
    api.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1; any other needs a token)")
    api.add_argument("--port", type=int, default=8787)
    api.add_argument("--token-file", metavar="FILE",
                     help="file (mode 0600) holding the bearer token every request must carry "
                          "(default: $SWITCHYARD_API_TOKEN)")
    api.add_argument("--token", help=argparse.SUPPRESS)  # refused: argv shows in `ps`
    api.set_defaults(func=cmd_api)


def _store():
    from switchyard.runs.control import open_store, sweep

    store = open_store()
    sweep(store)
    return store


def _emit(ns: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, default=str) if ns.json else text)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def describe(d: dict) -> str:
    """One orchestration summary in a few lines of text."""
    lines = [f"{d['orchestration_id']}  {d['status']}  {d['app']} ({d['kind']}, mode {d['mode']})",
             f"  progress {d['progress'] * 100:.0f}%: {d['completed']}/{d['batches']} batches"
             + (" (queued: waits for a free slot)" if d.get("queued") else "")]
    counts = {k: v for k, v in (d.get("counts") or {}).items() if v}
    if counts:
        lines.append("  batches: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    lines.append(f"  created {_when(d['created_at'])}, started {_when(d['started_at'])}, "
                 f"ended {_when(d['ended_at'])}")
    if d.get("seconds") is not None:
        lines.append(f"  took {d['seconds']:.2f} s; output {d['output']}")
    if d.get("error"):
        lines.append(f"  error: {d['error']}")
    if d.get("commands"):
        lines.append(f"  you can: {', '.join(d['commands'])}")
    return "\n".join(lines)


def cmd_list(ns: argparse.Namespace) -> int:
    from switchyard.runs.control import listing

    rows = listing(_store(), status=ns.status, app=ns.app, kind=ns.kind, limit=ns.limit)
    text = "\n".join(
        f"{r['orchestration_id']}  {r['status']:<11} {r['app']:<12} {r['kind']:<8} "
        f"{_when(r['created_at'])}  {r['completed']:>5}/{r['batches']:<5} {r['progress'] * 100:3.0f}%"
        for r in rows) or "no orchestrations"
    _emit(ns, {"orchestrations": rows, "count": len(rows)}, text)
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    from switchyard.logs import tail
    from switchyard.runs.batch_reads import BatchFilter, batch_listing
    from switchyard.runs.control import log_path, summary

    store = _store()
    d = summary(store, ns.id)
    text = describe(d)
    if ns.batches:
        if not 1 <= ns.limit <= 1000 or ns.offset < 0:
            from switchyard.exceptions import SwitchyardError

            raise SwitchyardError(f"--limit {ns.limit} / --offset {ns.offset}: the limit runs from 1 to "
                                  "1000 and the offset from 0 (e.g. --limit 100 --offset 200)")
        filt = BatchFilter.of(ns.batch_status, worker=ns.worker, name=ns.name, error=ns.error)
        page = batch_listing(store, ns.id, filt, limit=ns.limit, offset=ns.offset, after=ns.after)
        d["batch_list"] = page.pop("batches")
        d["batch_page"] = {k: page[k] for k in ("count", "total", "limit", "offset", "next_after")}
        text += "\n" + "\n".join(
            f"  #{b['idx']:<4} {b['name']:<20} {b['status']:<9} {b['worker'] or '-':<14} "
            f"attempts {b['attempts']}" + (f"  {b['error']}" if b["error"] else "")
            for b in d["batch_list"])
        if ns.after is None:
            text += f"\n  batches {ns.offset + 1}-{ns.offset + page['count']} of {page['total']} matching"
        else:
            text += f"\n  {page['count']} batches after #{ns.after} of {page['total']} matching"
        if page["next_after"] is not None:
            text += f"; next page: --after {page['next_after']}"
    if ns.errors:
        d["error_groups"] = store.error_groups(ns.id)
        text += "\n" + ("\n".join(f"  {g['count']:>6} x {g['signature']}  (dead {g['dead']}, first "
                                  f"#{g['first_idx']} {g['first_name']})" for g in d["error_groups"])
                         or "  no errors")
    if ns.log:
        d["log"] = tail(log_path(store, ns.id), ns.log)
        text += "\n" + "\n".join(d["log"])
    _emit(ns, d, text)
    return 0


def cmd_lifecycle(ns: argparse.Namespace) -> int:
    from switchyard.runs.control import apply, summary

    store = _store()
    apply(store, ns.id, ns.command_name)
    d = summary(store, ns.id)
    _emit(ns, d, f"{ns.command_name}: {describe(d)}")
    return 0


def cmd_dead(ns: argparse.Namespace) -> int:
    from switchyard.runs.control import dead_letters

    rows = dead_letters(_store(), ns.id)
    text = "\n".join(f"#{r['idx']} {r['name']} ({r['items']} items, {r['attempts']} attempts): {r['error']}"
                     for r in rows) or "no dead letters"
    _emit(ns, {"orchestration_id": ns.id, "dead_letters": rows}, text)
    return 0


def cmd_reprocess(ns: argparse.Namespace) -> int:
    from switchyard.runs.control import reprocess, summary

    store = _store()
    idxs = reprocess(store, ns.id, ns.batch)
    d = summary(store, ns.id)
    d["requeued"] = idxs
    _emit(ns, d, f"{len(idxs)} dead batches back to work: {describe(d)}")
    return 0


def cmd_limit(ns: argparse.Namespace) -> int:
    from switchyard.runs.control import set_max_running
    from switchyard.runs.launcher import max_running

    store = _store()
    if ns.reset or ns.max_running is not None:
        if ns.max_running is not None and ns.max_running < 1:
            from switchyard.exceptions import SwitchyardError

            raise SwitchyardError(f"max running {ns.max_running} must be at least 1: "
                                  "e.g. switchyard orchestrations limit 2")
        n = set_max_running(store, None if ns.reset else ns.max_running)
    else:
        n = max_running(store)
    busy, waiting = store.queue_state()
    _emit(ns, {"max_running": n, "running": busy, "queued": waiting},
          f"at most {n} orchestrations run at once ({busy} running, {waiting} queued)")
    return 0


def cmd_api(ns: argparse.Namespace) -> int:
    from switchyard.api import TOKEN_ENV, serve
    from switchyard.exceptions import GuardError

    if ns.token is not None:
        raise GuardError(f"--token is refused: a command line is visible to every user in `ps`: "
                         f"put the token in a file (chmod 600) and pass --token-file FILE, or set ${TOKEN_ENV}")
    serve(host=ns.host, port=ns.port, token_file=ns.token_file)
    return 0
