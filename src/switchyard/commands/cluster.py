"""``switchyard cluster up|status|down|rotate-certs|trust APP`` and the remote-host side of ``switchyard install APP``.

``up`` starts (or completes) the app's warm cluster and waits until every worker joined;
``status`` lists workers per host with memory and tasks and the dashboard link; ``down``
stops every process; ``rotate-certs`` makes a new workspace cluster certificate (mutual
TLS) and says which cluster must restart (``--restart`` does it); ``trust HOST
--fingerprint SHA256:...`` records one remote host's SSH key in known_hosts only when the
host presents the fingerprint the operator confirmed. With ``--json`` each prints one JSON object.

``--ask-password`` asks once for the SSH password of the remote hosts; it is kept in
memory for this command only.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from switchyard.exceptions import SwitchyardError

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import Parser

    c = sub.add_parser("cluster", help="start, inspect and stop the app's warm cluster (here or over SSH)")
    csub = c.add_subparsers(dest="action", required=True, parser_class=Parser)

    up = csub.add_parser("up", parents=[common],
                         help="start the scheduler and workers; they stay up between runs")
    up.add_argument("app")
    up.add_argument("--workers", type=_workers, help="host:count[,host:count] (default: [cluster.workers])")
    up.add_argument("--scheduler", help="scheduler host:port (default: [cluster].scheduler)")
    up.add_argument("--timeout", type=float, default=60, help="seconds to wait for the workers to join")
    up.add_argument("--ask-password", action="store_true", help="ask for the SSH password (kept in memory)")
    up.set_defaults(func=cmd_up)

    st = csub.add_parser("status", parents=[common], help="workers per host, memory, tasks, dashboard")
    st.add_argument("app")
    st.set_defaults(func=cmd_status)

    down = csub.add_parser("down", parents=[common], help="stop every process of the warm cluster")
    down.add_argument("app")
    down.add_argument("--ask-password", action="store_true", help="ask for the SSH password (kept in memory)")
    down.set_defaults(func=cmd_down)

    rot = csub.add_parser("rotate-certs", parents=[common],
                          help="make a new cluster certificate for the workspace (its clusters use it once restarted)")
    rot.add_argument("app")
    rot.add_argument("--ca", action="store_true",
                     help="a new certificate authority too: every running cluster of the workspace must restart")
    rot.add_argument("--restart", action="store_true", help="restart the app's warm cluster with the new one")
    rot.add_argument("--ask-password", action="store_true", help="ask for the SSH password (kept in memory)")
    rot.set_defaults(func=cmd_rotate_certs)

    trust = csub.add_parser("trust", parents=[common],
                            help="record a remote host's SSH key in known_hosts once you confirmed its fingerprint")
    trust.add_argument("app")
    trust.add_argument("host", nargs="?", help="one remote host of the app")
    trust.add_argument("--fingerprint", metavar="SHA256:...",
                       help="the fingerprint you checked with the host's administrator; the key is "
                            "recorded only when the host presents exactly that one")
    trust.set_defaults(func=cmd_trust)

    install = sub.choices.get("install")
    if install is not None:  # the same command, with per-host results when hosts are remote
        install.add_argument("--ask-password", action="store_true",
                             help="ask for the SSH password of the remote hosts (kept in memory)")
        install.set_defaults(func=cmd_install)


def _workers(text: str) -> dict[str, int]:
    from switchyard.settings import parse_workers

    try:
        return parse_workers(text)
    except SwitchyardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _app_env(ns: argparse.Namespace):
    from switchyard.app import AppEnv

    return AppEnv(ns.app, apps_dir=ns.apps_dir).check()


def _log(ns: argparse.Namespace):
    stream = sys.stderr if ns.json else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


def _emit(ns: argparse.Namespace, obj: object, text: str) -> None:
    print(json.dumps(obj, default=str) if ns.json else text, flush=True)


def _remote_hosts(app_env, workers: dict[str, int] | None) -> list[str]:
    from switchyard.cluster.local import is_local_host
    from switchyard.settings import load_settings

    cluster = load_settings(app_env.settings_path).cluster
    return [h for h in (workers or cluster.workers) if not is_local_host(h)]


def _ask_password(ns: argparse.Namespace, app_env, hosts: list[str]) -> None:
    from switchyard.cluster import ssh
    from switchyard.settings import load_settings

    if not getattr(ns, "ask_password", False) or not hosts:
        return
    cluster = load_settings(app_env.settings_path).cluster
    accesses = [ssh.access_for(cluster, h) for h in hosts]
    users = ", ".join(sorted({a.user for a in accesses}))
    password = getpass.getpass(f"SSH password of {users} on {', '.join(hosts)} (kept in memory only): ")
    for access in accesses:
        ssh.remember_password(access, password)


def _size(n: object) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def format_status(st: dict) -> str:
    """The text form of a cluster status."""
    from switchyard.cluster.warm import traffic_of

    if st["state"] == "down":
        left = st.get("jobs") or []
        return (f"cluster of '{st['app']}': down (start it with: switchyard cluster up {st['app']})"
                + (f"\n  {len(left)} SLURM job(s) still listed: {', '.join(j['id'] + ' ' + j['state'] for j in left)} "
                   f"(switchyard cluster down {st['app']} cancels them)" if left else ""))
    dashboard = st["dashboard"] or "none (install bokeh in the worker environment for one)"
    lines = [f"cluster of '{st['app']}': {st['state']} at {st['address']}, {st['workers']} worker(s); "
             f"dashboard: {dashboard}", f"  traffic: {traffic_of(st)}"]
    for host, h in st["hosts"].items():
        wanted = f"/{h['wanted']}" if h.get("wanted") is not None else ""
        lines.append(f"  {host}: {len(h['workers'])}{wanted} worker(s)"
                     + (f", missing: {', '.join(h['missing'])}" if h["missing"] else ""))
        for w in h["workers"]:
            tasks = ", ".join(f"{k} {v}" for k, v in sorted((w.get("tasks") or {}).items())) or "none"
            lines.append(f"    {w['name']:<16} {w['address']:<26} memory {_size(w['memory'])} of "
                         f"{_size(w['memory_limit'])}, processing {w['processing']}, tasks: {tasks}")
    if st.get("kind") == "slurm":
        lines.append(f"  SLURM jobs: {len(st.get('jobs') or [])}")
        for j in st.get("jobs") or []:
            lines.append(f"    job {j['id']:<10} {j['state']:<11} node {j['node'] or '-':<12} "
                         f"workers: {', '.join(j['workers']) or 'none yet'}"
                         + (f" ({j['reason']})" if j.get("reason") not in (None, "", "None") else ""))
    return "\n".join(lines)


def cmd_rotate_certs(ns: argparse.Namespace) -> int:
    from switchyard.cluster import tls, warm

    app_env = _app_env(ns)
    made = tls.rotate(app_env.home, new_ca=ns.ca)
    say = _log(ns)
    say(f"new cluster certificate in {made['dir']}, expires {made['expires']}"
        + (" (and a new certificate authority)" if ns.ca else ""))
    out = {"certificate": made, "restarted": False}
    record = warm.read_record(app_env)
    if record is not None and ns.restart:
        _ask_password(ns, app_env, sorted({w.host for w in record.workers if not w.local}))
        warm.down_sync(app_env, on_line=say)
        # back at its own address (not [cluster].scheduler's): clients and workers know that one
        st = warm.up_sync(app_env, workers=dict(record.wanted), scheduler=tls.host_port(record.address),
                          on_line=say)
        out.update(restarted=True, status=st)
        text = format_status(st)
    elif record is not None:
        why = ("its processes present the old certificate, which the new CA no longer trusts" if ns.ca else
               "its processes present the old certificate until then")
        text = (f"the warm cluster of '{ns.app}' must be restarted to use it ({why}): "
                f"switchyard cluster rotate-certs {ns.app} --restart, or cluster down then up")
    else:
        text = f"new certificate expires {made['expires']}; clusters started from now on use it"
    _emit(ns, out, text)
    return 0


def cmd_up(ns: argparse.Namespace) -> int:
    from switchyard.cluster import warm

    app_env = _app_env(ns)
    _ask_password(ns, app_env, _remote_hosts(app_env, ns.workers))
    st = warm.up_sync(app_env, workers=ns.workers, scheduler=ns.scheduler, join_timeout=ns.timeout,
                      on_line=_log(ns))
    _emit(ns, st, format_status(st))
    return 0 if st["state"] == "up" else EXIT_FAILED


def cmd_status(ns: argparse.Namespace) -> int:
    from switchyard.cluster import warm

    st = warm.status(_app_env(ns))
    _emit(ns, st, format_status(st))
    return 0


def cmd_down(ns: argparse.Namespace) -> int:
    from switchyard.cluster import warm

    app_env = _app_env(ns)
    record = warm.read_record(app_env)
    _ask_password(ns, app_env, sorted({w.host for w in record.workers if not w.local}) if record else [])
    out = warm.down_sync(app_env, on_line=_log(ns))
    jobs = f", cancelled {len(out['jobs_cancelled'])} SLURM job(s)" if "jobs_cancelled" in out else ""
    text = (f"cluster of '{ns.app}': stopped {len(out['stopped'])} process(es){jobs}" if not out["left"] else
            f"cluster of '{ns.app}': still running: {', '.join(out['left'])} (run down again)")
    _emit(ns, out, text)
    return 0 if not out["left"] else EXIT_FAILED


def cmd_trust(ns: argparse.Namespace) -> int:
    from switchyard.cluster import warm

    t = warm.trust_sync(_app_env(ns), ns.host, ns.fingerprint)
    text = (f"{t['pattern']}: {t['key_type']} {t['fingerprint']} "
            + (f"recorded in {t['known_hosts']}" if t["added"] else "was already trusted"))
    _emit(ns, {"hosts": [t]}, text)
    return 0


def cmd_install(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI
    from switchyard.cli import cmd_install as install_here
    from switchyard.cluster.remote import InstallReport

    app_env = _app_env(ns)
    remote_hosts = _remote_hosts(app_env, ns.workers)
    if not remote_hosts:
        return install_here(ns)
    _ask_password(ns, app_env, remote_hosts)
    res = asyncio.run(AGI.install(app_env, modes_enabled=ns.mode, workers=ns.workers, on_line=_log(ns),
                                  force=ns.force))
    assert isinstance(res, InstallReport)  # remote hosts always give per-host results
    _emit(ns, res.to_dict(), res.summary())
    return 0 if res.ok else EXIT_FAILED
