"""``switchyard alerts list|check|test|channels|channel add|channel remove|rule``: the same
functions as the alerts section of the Orchestrations page (:mod:`switchyard.alerts`).

With ``--json`` each prints one JSON object on stdout. Invalid settings or values exit 2
with one line; ``alerts test`` exits 1 when the channel could not deliver.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.alerts.config import KINDS, RULE_DEFAULTS
    from switchyard.cli import Parser

    alerts = sub.add_parser("alerts", help="alerts on failed, slow runs and failing service health gates")
    asub = alerts.add_subparsers(dest="action", required=True, parser_class=Parser)

    ls = asub.add_parser("list", parents=[common], help="recent alerts with their delivery per channel")
    ls.add_argument("--app", help="only alerts about this app")
    ls.add_argument("--limit", type=int, default=50, help="newest alerts to show (default 50)")
    ls.set_defaults(func=cmd_list)

    chk = asub.add_parser("check", parents=[common], help="one evaluation pass: record, deliver, retry")
    chk.add_argument("--no-deliver", action="store_true", help="record new alerts but send nothing")
    chk.set_defaults(func=cmd_check)

    test = asub.add_parser("test", parents=[common], help="send a test alert through one channel")
    test.add_argument("channel")
    test.set_defaults(func=cmd_test)

    chs = asub.add_parser("channels", parents=[common], help="the channels and rules in alerts.toml")
    chs.set_defaults(func=cmd_channels)

    ch = asub.add_parser("channel", help="add or remove a channel")
    chsub = ch.add_subparsers(dest="channel_action", required=True, parser_class=Parser)
    add = chsub.add_parser("add", parents=[common], help="add a file, webhook or smtp channel")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=KINDS)
    add.add_argument("--path", help="file: the JSON-lines file (relative to the workspace)")
    add.add_argument("--url", help="webhook: the http(s) URL that receives the JSON POST")
    add.add_argument("--timeout", type=float, help="webhook/smtp: seconds to wait (default 5 / 10)")
    add.add_argument("--host", help="smtp: server host")
    add.add_argument("--port", type=int, help="smtp: server port (default 25)")
    add.add_argument("--sender", help="smtp: From address")
    add.add_argument("--to", action="append", help="smtp: recipient (repeatable)")
    add.add_argument("--starttls", action="store_true", help="smtp: upgrade the connection with STARTTLS")
    add.add_argument("--smtps", action="store_true", help="smtp: TLS from the start (SMTPS; the default on port 465)")
    add.add_argument("--ca-file", help="smtp: PEM file of the CA the server certificate is checked against "
                                       "(default: the system store)")
    add.add_argument("--allow-plaintext-login", action="store_true",
                     help="smtp: allow a login without TLS (a trusted relay on loopback only)")
    add.add_argument("--username", help="smtp: login name (the password comes from --password-env)")
    add.add_argument("--password-env", help="smtp: environment variable holding the password "
                                            "(default SWITCHYARD_SMTP_PASSWORD)")
    add.add_argument("--app", action="append", dest="apps", help="only alerts about this app (repeatable)")
    add.set_defaults(func=cmd_channel_add)
    rm = chsub.add_parser("remove", parents=[common], help="remove a channel")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_channel_remove)

    rule = asub.add_parser("rule", parents=[common], help="show the rules, or set one")
    rule.add_argument("name", nargs="?", choices=list(RULE_DEFAULTS))
    rule.add_argument("value", nargs="?", help="true/false, a number (duration_factor 0 turns it off)")
    rule.set_defaults(func=cmd_rule)


def _emit(ns: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, default=str) if ns.json else text)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def alert_line(a: dict) -> str:
    from switchyard.alerts.records import delivery_text

    deliveries = "; ".join(delivery_text(d) for d in a["deliveries"]) or "no channel"
    return (f"#{a['id']} {_when(a['at_epoch'])} {a['severity']:<7} {a['rule']:<11} {a['app'] or '-'}: "
            f"{a['message']}  [{deliveries}]")


def cmd_list(ns: argparse.Namespace) -> int:
    from switchyard.alerts import list_alerts
    from switchyard.exceptions import SwitchyardError

    if ns.limit < 1:
        raise SwitchyardError(f"--limit {ns.limit}: give a whole number >= 1, e.g. --limit 20")
    rows = list_alerts(limit=ns.limit, app=ns.app)
    _emit(ns, {"alerts": rows, "count": len(rows)}, "\n".join(alert_line(a) for a in rows) or "no alerts")
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    from switchyard.alerts import check

    rows = check(deliver=not ns.no_deliver)
    new = [a for a in rows if a["new"]]
    text = "\n".join(alert_line(a) for a in rows)
    text = (text + "\n" if text else "") + f"{len(new)} new alert(s), {len(rows) - len(new)} retried"
    _emit(ns, {"alerts": rows, "new": len(new), "retried": len(rows) - len(new)}, text)
    return 0


def cmd_test(ns: argparse.Namespace) -> int:
    from switchyard.alerts import send_test

    a = send_test(ns.channel)
    d = a["deliveries"][0]
    _emit(ns, a, f"test alert #{a['id']} through {d['channel']} ({d['target']}): "
                 + ("delivered" + (f", {d['note']}" if d.get("note") else "") if d["delivered"]
                    else f"FAILED: {d['error']}"))
    return 0 if d["delivered"] else EXIT_FAILED


def channels_text(view: dict) -> str:
    lines = [f"{view['path']}" + ("" if view["exists"] else " (not written yet: defaults)"),
             "rules: " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in view["rules"].items())]
    for c in view["channels"]:
        only = f" (apps: {', '.join(c['apps'])})" if c["apps"] else ""
        lines.append(f"  {c['name']:<14} {c['kind']:<8} {c['target']}{only}")
    return "\n".join(lines)


def cmd_channels(ns: argparse.Namespace) -> int:
    from switchyard.alerts import channels_view

    view = channels_view()
    _emit(ns, view, channels_text(view))
    return 0


def cmd_channel_add(ns: argparse.Namespace) -> int:
    from switchyard.alerts import add_channel, channels_view

    spec = {"name": ns.name, "kind": ns.kind, "path": ns.path, "url": ns.url, "timeout": ns.timeout,
            "host": ns.host, "port": ns.port, "sender": ns.sender, "to": ns.to, "username": ns.username,
            "password_env": ns.password_env, "apps": ns.apps}
    for flag in ("starttls", "smtps", "allow_plaintext_login"):
        if getattr(ns, flag):
            spec[flag] = True
    if ns.ca_file:
        spec["ca_file"] = ns.ca_file
    add_channel(spec)
    view = channels_view()
    _emit(ns, view, f"channel '{ns.name}' added\n" + channels_text(view))
    return 0


def cmd_channel_remove(ns: argparse.Namespace) -> int:
    from switchyard.alerts import channels_view, remove_channel

    remove_channel(ns.name)
    view = channels_view()
    _emit(ns, view, f"channel '{ns.name}' removed\n" + channels_text(view))
    return 0


def cmd_rule(ns: argparse.Namespace) -> int:
    from switchyard.alerts import channels_view, set_rule
    from switchyard.exceptions import SwitchyardError

    if ns.name is not None:
        if ns.value is None:
            raise SwitchyardError(f"alerts rule {ns.name}: give a value, e.g. switchyard alerts rule {ns.name} "
                                  + ("3.0" if ns.name == "duration_factor" else "3" if ns.name == "min_history"
                                     else "true"))
        set_rule(ns.name, ns.value)
    rules = channels_view()["rules"]
    _emit(ns, {"rules": rules}, "\n".join(f"{k} = {json.dumps(v)}" for k, v in rules.items()))
    return 0
